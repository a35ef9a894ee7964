#include "tern/shared/program.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tern/shared/version.h"

namespace tern::shared {

std::string versionLine(std::string_view program) {
    return fmt::format("{} {} (wire schema {})", program, projectVersion(), schemaVersion());
}

void addCommonOptions(CLI::App& app, std::string_view program, CommonOptions& options) {
    app.set_version_flag("--version", versionLine(program),
                         "Print the version and the wire schema version");
    app.add_option("-c,--config", options.config_path, "Configuration file (TOML)")
        ->capture_default_str();
    app.add_flag("--check-config", options.check_config,
                 "Validate the configuration, print every error, and exit (0: valid, 2: invalid)");
    app.add_flag("--print-config-reference", options.print_config_reference,
                 "Print every configuration key with its type, default, range and meaning "
                 "(Markdown)");
}

std::optional<int> parseCommandLine(CLI::App& app, int argc, const char* const* argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version arrive here too, with exit status 0.
        return app.exit(e);
    }
    return std::nullopt;
}

void logReloadRefused(const std::string& path, const ConfigErrors& errors) {
    spdlog::error("SIGHUP: {} not reloaded, the running config stays:\n{}", path,
                  formatConfigErrors(errors));
}

void reloadLogging(LogConfig& current, const LogConfig& next, std::string_view program) {
    if (next.level == current.level && next.format == current.format) return;
    if (auto logging = initLogging(next, program); logging) {
        current = next;
    } else {
        spdlog::error("SIGHUP: logging not changed: {}", logging.error().message());
    }
}

}  // namespace tern::shared
