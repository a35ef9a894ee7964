#pragma once

// What a benchmark reads about other processes from /proc: CPU time, resident memory, children.

#include <sys/types.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "process.h"

namespace tern::bench {

// User + system CPU seconds from the text of /proc/<pid>/stat (0 if it cannot be parsed).
inline double statCpuSeconds(const std::string& stat) {
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(stat.substr(close + 1));
    std::vector<std::string> after;
    for (std::string field; fields >> field;) after.push_back(field);
    if (after.size() < 13) return 0;
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return static_cast<double>(std::stoull(after[11]) + std::stoull(after[12])) / ticks;
}

inline double cpuSecondsOf(pid_t pid) {
    return statCpuSeconds(
        test::readFile(std::filesystem::path("/proc") / std::to_string(pid) / "stat"));
}

// VmRSS in KiB (0 if the process is gone).
inline double rssKibOf(pid_t pid) {
    std::istringstream status(
        test::readFile(std::filesystem::path("/proc") / std::to_string(pid) / "status"));
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) return std::stod(line.substr(6));
    }
    return 0;
}

// The processes whose parent is `pid`.
inline std::vector<pid_t> childrenOf(pid_t pid) {
    std::vector<pid_t> children;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        const std::string stat = test::readFile(entry.path() / "stat");
        const auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream fields(stat.substr(close + 1));
        std::string state;
        pid_t parent = 0;
        fields >> state >> parent;
        if (parent == pid) children.push_back(static_cast<pid_t>(std::stoi(name)));
    }
    return children;
}

}  // namespace tern::bench
