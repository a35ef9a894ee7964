#pragma once

// What every Tern program has on its command line: --help, --version, --config, --check-config.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace tern::shared {

// "<program> <release version> (wire schema <N>)"
std::string versionLine(std::string_view program);

struct CommonOptions {
    std::string config_path;
    bool check_config = false;
};

// Adds --version, --config (defaulting to options.config_path) and --check-config to app.
void addCommonOptions(CLI::App& app, std::string_view program, CommonOptions& options);

// Parses argv. Returns the exit status when the program should stop now (--help, --version,
// a usage error), std::nullopt when it should go on.
std::optional<int> parseCommandLine(CLI::App& app, int argc, const char* const* argv);

}  // namespace tern::shared
