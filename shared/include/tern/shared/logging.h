#pragma once

// Process-wide logging on spdlog. Every binary logs to stderr, one line per event (journald,
// Docker and systemd all collect stderr), so a message never spans lines: newlines and other
// control characters in it are escaped. "text" is for people, "json" for log collectors.

#include <spdlog/common.h>
#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>

#include "tern/shared/config.h"
#include "tern/shared/result.h"

namespace tern::shared {

struct LogConfig {
    std::string level = "info";   // trace, debug, info, warn, error, critical, off
    std::string format = "text";  // text, json
};

// The [log] table.
ConfigTable<LogConfig> logTable();

// A logger named program_name that writes to sink in config's level and format. Tests pass an
// ostream sink to read what was logged. Fails (Error::stop) on a level or format not listed in
// LogConfig, which only code that bypasses logTable() can produce.
Result<std::shared_ptr<spdlog::logger>> makeLogger(const LogConfig& config,
                                                   std::string_view program_name,
                                                   spdlog::sink_ptr sink);

// Makes that logger, writing to stderr (or to sink), spdlog's default, so that spdlog::info()
// and friends use it. Call once at startup, before other threads log.
Result<void> initLogging(const LogConfig& config, std::string_view program_name);
Result<void> initLogging(const LogConfig& config, std::string_view program_name,
                         spdlog::sink_ptr sink);

}  // namespace tern::shared
