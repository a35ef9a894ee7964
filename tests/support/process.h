#pragma once

// Child processes for test fixtures, started with posix_spawn (no shell, no quoting issues).

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tern::test {

// Starts argv[0] (an absolute path) with stdin from /dev/null and stdout + stderr appended to
// `output`. Throws std::system_error if it cannot be started.
pid_t spawnProcess(const std::vector<std::string>& argv, const std::filesystem::path& output);

// Waits up to `timeout` for `pid` to exit; returns its wait status, or nullopt if it is still
// running. Polls, because waitpid has no timeout.
std::optional<int> waitForExit(pid_t pid, std::chrono::milliseconds timeout);

// Runs a process to completion (bounded by `timeout`, then SIGKILL) and returns its exit status
// (-1 if it did not exit normally).
int runProcess(const std::vector<std::string>& argv, const std::filesystem::path& output,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The last `maxBytes` of a text file, for failure messages.
std::string readTail(const std::filesystem::path& file, std::size_t maxBytes = 4096);

}  // namespace tern::test
