#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

extern char** environ;

namespace tern::test {

pid_t spawnProcess(const std::vector<std::string>& argv, const std::filesystem::path& output) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    // Not O_CLOEXEC: this descriptor is the child's standard output across exec.
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv[0]);
    return pid;
}

std::optional<int> waitForExit(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;  // not our child (already reaped)
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval, bounded
    }
}

int runProcess(const std::vector<std::string>& argv, const std::filesystem::path& output,
               std::chrono::milliseconds timeout) {
    const pid_t pid = spawnProcess(argv, output);
    auto status = waitForExit(pid, timeout);
    if (!status) {
        ::kill(pid, SIGKILL);
        status = waitForExit(pid, std::chrono::seconds(5));
        return -1;
    }
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::string readFile(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream all;
    all << in.rdbuf();
    return all.str();
}

bool waitForFileText(const std::filesystem::path& file, const std::string& text,
                     std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (readFile(file).find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return readFile(file).find(text) != std::string::npos;
}

std::string readTail(const std::filesystem::path& file, std::size_t maxBytes) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return "(no " + file.string() + ")";
    std::ostringstream all;
    all << in.rdbuf();
    std::string text = all.str();
    if (text.size() > maxBytes) text = "..." + text.substr(text.size() - maxBytes);
    return text;
}

int terminateProcess(pid_t& pid, std::chrono::milliseconds timeout) {
    if (pid <= 0) return -1;
    ::kill(pid, SIGTERM);
    const auto status = waitForExit(pid, timeout);
    if (!status) {
        killProcess(pid);
        return -1;
    }
    pid = -1;
    if (WIFSIGNALED(*status)) return 128 + WTERMSIG(*status);
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

void killProcess(pid_t& pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    waitForExit(pid, std::chrono::seconds(10));
    pid = -1;
}

}  // namespace tern::test
