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

// SIGTERM, then waits up to `timeout`; SIGKILL if it has not exited by then. Sets pid to -1.
// Returns the exit status as a shell reports it (128 + n if killed by signal n), or -1 if it
// had to be killed (or pid was already -1).
int terminateProcess(pid_t& pid, std::chrono::milliseconds timeout);

// SIGKILL and reap (bounded); sets pid to -1. Nothing if pid is -1.
void killProcess(pid_t& pid);

// Runs a process to completion (bounded by `timeout`, then SIGKILL) and returns its exit status
// (-1 if it did not exit normally).
int runProcess(const std::vector<std::string>& argv, const std::filesystem::path& output,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The whole of a file ("" if it cannot be read).
std::string readFile(const std::filesystem::path& file);

// Waits (polling) until `file` contains `text`; false after `timeout`.
bool waitForFileText(const std::filesystem::path& file, const std::string& text,
                     std::chrono::milliseconds timeout);

// The last `maxBytes` of a text file, for failure messages.
std::string readTail(const std::filesystem::path& file, std::size_t maxBytes = 4096);

}  // namespace tern::test
