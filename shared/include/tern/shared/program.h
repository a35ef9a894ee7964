#pragma once

// What every Tern program does before its own work: parse the command line (--help, --version,
// --config, --check-config, --print-config-reference), load and validate the configuration
// (every error at once, then exit status 2), and set up logging.

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "tern/shared/config.h"
#include "tern/shared/logging.h"

namespace tern::shared {

// "<program> <release version> (wire schema <N>)"
std::string versionLine(std::string_view program);

struct CommonOptions {
    std::string config_path;
    bool check_config = false;
    bool print_config_reference = false;
};

// Adds the common options to app; options.config_path holds the default config file.
void addCommonOptions(CLI::App& app, std::string_view program, CommonOptions& options);

// Parses argv. Returns the exit status when the program should stop now (--help, --version,
// a usage error), std::nullopt when it should go on.
std::optional<int> parseCommandLine(CLI::App& app, int argc, const char* const* argv);

struct ProgramInfo {
    std::string_view name;            // "tern-edge"
    std::string_view summary;         // one line for --help
    std::string default_config_path;  // used when --config is not given
    // Options of the program's own, added after the common ones; their values are set by the time
    // run() is called.
    std::function<void(CLI::App&)> add_options{};
};

// Runs a program whose configuration is bound by schema (its root table must hold the [log]
// table as Config::log). A default config file that does not exist means "all defaults"; a file
// named with --config must exist. run() gets the validated config and its path (to reload it)
// once logging is set up.
// validate, if given, checks what the tables cannot (names that must be unique, references
// between tables); its errors are reported like the loader's.
template <class Config>
int runProgram(
    const ProgramInfo& info, int argc, const char* const* argv, const ConfigTable<Config>& schema,
    const std::function<int(const Config&, const std::string& config_path)>& run,
    const std::function<ConfigErrors(const Config&, const std::string& file)>& validate = {}) {
    CLI::App app{std::string(info.summary), std::string(info.name)};
    CommonOptions options{info.default_config_path};
    addCommonOptions(app, info.name, options);
    if (info.add_options) info.add_options(app);
    if (auto exit_code = parseCommandLine(app, argc, argv)) return *exit_code;
    if (options.print_config_reference) {
        std::cout << renderMarkdown(schema);
        return 0;
    }

    // Only a default file that does not exist means "all defaults": one that exists but cannot
    // be read is an error, as is any problem with a file named on the command line.
    const bool explicit_config = app.count("--config") > 0;
    std::error_code status_error;
    const auto file_status = std::filesystem::status(options.config_path, status_error);
    const bool use_defaults =
        !explicit_config && file_status.type() == std::filesystem::file_type::not_found;
    ConfigResult<Config> config = use_defaults ? loadConfigString("", "(defaults)", schema)
                                               : loadConfigFile(options.config_path, schema);
    if (!config) {
        std::cerr << formatConfigErrors(config.error());
        return kConfigErrorExitStatus;
    }
    if (validate) {
        if (const auto errors = validate(config.value(), options.config_path); !errors.empty()) {
            std::cerr << formatConfigErrors(errors);
            return kConfigErrorExitStatus;
        }
    }
    if (options.check_config) {
        if (use_defaults) {
            std::cout << info.name << ": " << options.config_path
                      << " does not exist; the defaults are valid\n";
        } else {
            std::cout << info.name << ": configuration " << options.config_path << " is valid\n";
        }
        return 0;
    }
    if (auto logging = initLogging(config.value().log, info.name); !logging) {
        std::cerr << info.name << ": " << logging.error().message() << '\n';
        return kConfigErrorExitStatus;
    }
    return run(config.value(), options.config_path);
}

// Logs why a SIGHUP reload was refused (the running configuration stays).
void logReloadRefused(const std::string& path, const ConfigErrors& errors);

// SIGHUP: loads and validates the file again. Any error is logged with logReloadRefused and
// yields nullopt, so the caller keeps what it runs.
template <class Config>
std::optional<Config> reloadConfig(
    const std::string& path, const ConfigTable<Config>& schema,
    const std::function<ConfigErrors(const Config&, const std::string& file)>& validate) {
    ConfigResult<Config> loaded = loadConfigFile(path, schema);
    if (!loaded) {
        logReloadRefused(path, loaded.error());
        return std::nullopt;
    }
    if (const auto errors = validate(loaded.value(), path); !errors.empty()) {
        logReloadRefused(path, errors);
        return std::nullopt;
    }
    return std::move(loaded.value());
}

// Applies a [log] table that changed; if the new one cannot be set up, the current one stays and
// the error is logged.
void reloadLogging(LogConfig& current, const LogConfig& next, std::string_view program);

}  // namespace tern::shared
