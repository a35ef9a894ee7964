#include "tern/shared/logging.h"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <ctime>
#include <exception>
#include <utility>

namespace tern::shared {

namespace {

// Our names, not spdlog's ("warning"), so that the config value and the logged level agree.
constexpr std::array<std::string_view, 7> kLevelNames{"trace", "debug",    "info", "warn",
                                                      "error", "critical", "off"};
static_assert(spdlog::level::trace == 0 && spdlog::level::off == 6);

enum class LineFormat { Text, Json };

void append(spdlog::memory_buf_t& dest, std::string_view text) {
    dest.append(text.data(), text.data() + text.size());
}

void appendHexEscape(spdlog::memory_buf_t& dest, unsigned char byte) {
    static constexpr char kHex[] = "0123456789abcdef";
    const std::array<char, 6> escape{'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xf]};
    dest.append(escape.data(), escape.data() + escape.size());
}

// Length of the valid UTF-8 sequence starting at text[i], or 0 if there is none.
std::size_t utf8SequenceLength(std::string_view text, std::size_t i) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
        length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        length = 3;
        if (lead == 0xe0) second_min = 0xa0;  // overlong
        if (lead == 0xed) second_max = 0x9f;  // surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        length = 4;
        if (lead == 0xf0) second_min = 0x90;  // overlong
        if (lead == 0xf4) second_max = 0x8f;  // beyond U+10FFFF
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        const auto byte = static_cast<unsigned char>(text[i + k]);
        const unsigned char min = k == 1 ? second_min : 0x80;
        const unsigned char max = k == 1 ? second_max : 0xbf;
        if (byte < min || byte > max) return 0;
    }
    return length;
}

// JSON string contents: quotes, backslashes and control characters escaped; bytes that are not
// UTF-8 become U+FFFD, since a collector rejects the whole line otherwise.
void appendJsonEscaped(spdlog::memory_buf_t& dest, std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x80) {
            switch (byte) {
                case '"':
                    append(dest, "\\\"");
                    break;
                case '\\':
                    append(dest, "\\\\");
                    break;
                case '\n':
                    append(dest, "\\n");
                    break;
                case '\r':
                    append(dest, "\\r");
                    break;
                case '\t':
                    append(dest, "\\t");
                    break;
                default:
                    if (byte < 0x20 || byte == 0x7f) {
                        appendHexEscape(dest, byte);
                    } else {
                        dest.push_back(static_cast<char>(byte));
                    }
            }
            ++i;
            continue;
        }
        const std::size_t length = utf8SequenceLength(text, i);
        if (length == 0) {
            append(dest, "\\ufffd");
            ++i;
        } else {
            append(dest, text.substr(i, length));
            i += length;
        }
    }
}

// Text lines keep everything printable as written and escape only what would break the line.
void appendTextEscaped(spdlog::memory_buf_t& dest, std::string_view text) {
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '\n') {
            append(dest, "\\n");
        } else if (c == '\r') {
            append(dest, "\\r");
        } else if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
            appendHexEscape(dest, byte);
        } else {
            dest.push_back(c);
        }
    }
}

// "2024-05-01T10:00:00.123Z": UTC, so that lines from devices in different zones sort together.
void appendTimestamp(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point time) {
    const auto since_epoch = time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
    std::time_t t = static_cast<std::time_t>(seconds.count());
    if (millis.count() < 0) {
        millis += std::chrono::seconds(1);
        --t;
    }
    std::tm utc{};
    gmtime_r(&t, &utc);
    std::array<char, 32> buffer{};
    const std::size_t length =
        std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%S", &utc);
    dest.append(buffer.data(), buffer.data() + length);
    const auto ms = static_cast<int>(millis.count());
    const std::array<char, 5> fraction{'.', static_cast<char>('0' + ms / 100),
                                       static_cast<char>('0' + ms / 10 % 10),
                                       static_cast<char>('0' + ms % 10), 'Z'};
    dest.append(fraction.data(), fraction.data() + fraction.size());
}

class LineFormatter final : public spdlog::formatter {
public:
    explicit LineFormatter(LineFormat format) : format_(format) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const std::string_view level = kLevelNames.at(static_cast<std::size_t>(msg.level));
        const std::string_view program(msg.logger_name.data(), msg.logger_name.size());
        const std::string_view text(msg.payload.data(), msg.payload.size());
        if (format_ == LineFormat::Json) {
            append(dest, "{\"ts\":\"");
            appendTimestamp(dest, msg.time);
            append(dest, "\",\"level\":\"");
            append(dest, level);
            append(dest, "\",\"program\":\"");
            appendJsonEscaped(dest, program);
            append(dest, "\",\"msg\":\"");
            appendJsonEscaped(dest, text);
            append(dest, "\"}\n");
        } else {
            appendTimestamp(dest, msg.time);
            append(dest, " ");
            append(dest, level);
            append(dest, " ");
            appendTextEscaped(dest, program);
            append(dest, ": ");
            appendTextEscaped(dest, text);
            append(dest, "\n");
        }
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<LineFormatter>(format_);
    }

private:
    LineFormat format_;
};

std::vector<std::string> levelNames() { return {kLevelNames.begin(), kLevelNames.end()}; }

}  // namespace

ConfigTable<LogConfig> logTable() {
    return ConfigTable<LogConfig>("log", "Diagnostics on stderr, one line per event")
        .string("level", &LogConfig::level, "info", "least severe level that is written",
                {.one_of = levelNames()})
        .string("format", &LogConfig::format, "text",
                "line format: text for people, json for log collectors",
                {.one_of = {"text", "json"}});
}

Result<std::shared_ptr<spdlog::logger>> makeLogger(const LogConfig& config,
                                                   std::string_view program_name,
                                                   spdlog::sink_ptr sink) {
    std::size_t level = 0;
    while (level < kLevelNames.size() && kLevelNames[level] != config.level) ++level;
    if (level == kLevelNames.size()) {
        return Error::stop("invalid_log_config", "unknown log level \"" + config.level + "\"");
    }
    LineFormat format = LineFormat::Text;
    if (config.format == "json") {
        format = LineFormat::Json;
    } else if (config.format != "text") {
        return Error::stop("invalid_log_config", "unknown log format \"" + config.format + "\"");
    }
    if (!sink) return Error::stop("invalid_log_config", "no sink to log to");
    try {
        auto logger = std::make_shared<spdlog::logger>(std::string(program_name), std::move(sink));
        logger->set_formatter(std::make_unique<LineFormatter>(format));
        logger->set_level(static_cast<spdlog::level::level_enum>(level));
        return logger;
    } catch (const std::exception& e) {
        return Error::stop("logging_unavailable", e.what());
    }
}

Result<void> initLogging(const LogConfig& config, std::string_view program_name) {
    try {
        return initLogging(config, program_name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    } catch (const std::exception& e) {
        return Error::stop("logging_unavailable", e.what());
    }
}

Result<void> initLogging(const LogConfig& config, std::string_view program_name,
                         spdlog::sink_ptr sink) {
    auto logger = makeLogger(config, program_name, std::move(sink));
    if (!logger) return logger.error();
    try {
        spdlog::set_default_logger(std::move(logger).value());
    } catch (const std::exception& e) {
        return Error::stop("logging_unavailable", e.what());
    }
    return success();
}

}  // namespace tern::shared
