#include "tern/edge/downsample/downsample.h"

#include <utility>

#include "tern/edge/downsample/aggregate.h"
#include "tern/edge/downsample/deadband.h"
#include "tern/edge/downsample/raw.h"
#include "tern/edge/downsample/swinging_door.h"

namespace tern::edge {
namespace {

using std::chrono::milliseconds;

// Aggregate::window_ms is a uint32 of ms (49.7 days); a week is well inside it.
constexpr milliseconds kMaxWindow = std::chrono::days(7);
constexpr double kMaxBand = 1e15;

std::string modeName(DownsampleMode mode) {
    switch (mode) {
        case DownsampleMode::Raw:
            return "raw";
        case DownsampleMode::Aggregate:
            return "aggregate";
        case DownsampleMode::Deadband:
            return "deadband";
        case DownsampleMode::SwingingDoor:
            return "swinging-door";
    }
    return "?";
}

}  // namespace

std::optional<DownsampleMode> parseDownsampleMode(std::string_view text) {
    for (DownsampleMode mode : {DownsampleMode::Raw, DownsampleMode::Aggregate,
                                DownsampleMode::Deadband, DownsampleMode::SwingingDoor}) {
        if (text == modeName(mode)) return mode;
    }
    return std::nullopt;
}

shared::ConfigTable<DownsampleConfig> downsampleTable() {
    const DownsampleConfig defaults;
    return shared::ConfigTable<DownsampleConfig>(
               "downsample", "How a sensor's readings are reduced before they are stored and sent")
        .string("mode", &DownsampleConfig::mode, defaults.mode,
                "raw: every reading; aggregate: windowed statistics; deadband: report by "
                "exception; swinging-door: line segments within an error bound",
                {.one_of = {"raw", "aggregate", "deadband", "swinging-door"}})
        .duration("window", &DownsampleConfig::window, defaults.window,
                  {milliseconds(100), kMaxWindow},
                  "aggregate: window length; windows start at multiples of it in Unix time")
        .duration("grace", &DownsampleConfig::grace, defaults.grace,
                  {milliseconds(0), std::chrono::hours(1)},
                  "aggregate: how long past a window's end to wait for late readings before "
                  "closing it when no newer reading arrives")
        .boolean("emit_raw", &DownsampleConfig::emit_raw, defaults.emit_raw,
                 "aggregate: also send every reading raw")
        .number(
            "deadband", &DownsampleConfig::deadband, defaults.deadband, {0.0, kMaxBand},
            "value units or %",
            "deadband: a reading is sent when it differs from the last one sent by more than this")
        .string("deadband_mode", &DownsampleConfig::deadband_mode, defaults.deadband_mode,
                "deadband: absolute, or percent of the last sent value's magnitude",
                {.one_of = {"absolute", "percent"}})
        .number("error", &DownsampleConfig::error, defaults.error, {0.0, kMaxBand}, "value units",
                "swinging-door: largest distance of any reading from the line between kept "
                "points; required (> 0) in that mode")
        .duration("max_interval", &DownsampleConfig::max_interval, defaults.max_interval,
                  {milliseconds(0), kMaxWindow},
                  "deadband, swinging-door: send the latest held reading once this long has "
                  "passed since the last one sent (heartbeat); 0 turns it off");
}

shared::ConfigErrors validateDownsampleConfig(const DownsampleConfig& config,
                                              const std::string& path) {
    shared::ConfigErrors errors;
    auto fail = [&](std::string_view key, std::string message) {
        shared::ConfigError error;
        error.key = path.empty() ? std::string(key) : path + "." + std::string(key);
        error.message = std::move(message);
        errors.push_back(std::move(error));
    };

    const std::optional<DownsampleMode> mode = parseDownsampleMode(config.mode);
    if (!mode) {
        fail("mode",
             "\"" + config.mode +
                 "\" is not one of \"raw\", \"aggregate\", \"deadband\", \"swinging-door\"");
        return errors;
    }
    const std::string in_mode = " (mode is \"" + config.mode + "\")";
    const DownsampleConfig defaults;

    // A key that does nothing in this mode is most likely a mistake (a mode changed, a key put in
    // the wrong sensor): say so rather than silently ignore it.
    const bool aggregate = *mode == DownsampleMode::Aggregate;
    const bool deadband = *mode == DownsampleMode::Deadband;
    const bool door = *mode == DownsampleMode::SwingingDoor;
    if (!aggregate && config.window != defaults.window) {
        fail("window", "applies only to mode \"aggregate\"" + in_mode);
    }
    if (!aggregate && config.grace != defaults.grace) {
        fail("grace", "applies only to mode \"aggregate\"" + in_mode);
    }
    if (!aggregate && config.emit_raw != defaults.emit_raw) {
        fail("emit_raw", "applies only to mode \"aggregate\"" + in_mode);
    }
    if (!deadband && config.deadband != defaults.deadband) {
        fail("deadband", "applies only to mode \"deadband\"" + in_mode);
    }
    if (!deadband && config.deadband_mode != defaults.deadband_mode) {
        fail("deadband_mode", "applies only to mode \"deadband\"" + in_mode);
    }
    if (!door && config.error != defaults.error) {
        fail("error", "applies only to mode \"swinging-door\"" + in_mode);
    }
    if (!deadband && !door && config.max_interval != defaults.max_interval) {
        fail("max_interval", "applies only to modes \"deadband\" and \"swinging-door\"" + in_mode);
    }

    if (aggregate && (config.window <= milliseconds(0) || config.window > kMaxWindow)) {
        fail("window", "must be greater than 0 and at most 7d");
    }
    if (aggregate && config.grace < milliseconds(0)) fail("grace", "must not be negative");
    if (deadband && config.deadband_mode != "absolute" && config.deadband_mode != "percent") {
        fail("deadband_mode",
             "\"" + config.deadband_mode + "\" is not one of \"absolute\", \"percent\"");
    }
    if (deadband && config.deadband < 0.0) fail("deadband", "must not be negative");
    if (door && !(config.error > 0.0)) {
        fail("error",
             "must be set greater than 0 for mode \"swinging-door\" (the largest "
             "acceptable distance from a reading to the stored line, in value units)");
    }
    if ((deadband || door) && config.max_interval < milliseconds(0)) {
        fail("max_interval", "must not be negative");
    }
    return errors;
}

std::unique_ptr<Downsampler> makeDownsampler(const DownsampleConfig& config, std::uint16_t sensor) {
    const std::optional<DownsampleMode> mode = parseDownsampleMode(config.mode);
    if (!mode) return nullptr;
    switch (*mode) {
        case DownsampleMode::Raw:
            return std::make_unique<RawDownsampler>();
        case DownsampleMode::Aggregate:
            return std::make_unique<AggregateDownsampler>(
                sensor,
                AggregateDownsampler::Options{config.window, config.grace, config.emit_raw});
        case DownsampleMode::Deadband:
            return std::make_unique<DeadbandDownsampler>(DeadbandDownsampler::Options{
                config.deadband, config.deadband_mode == "percent", config.max_interval});
        case DownsampleMode::SwingingDoor:
            return std::make_unique<SwingingDoorDownsampler>(
                SwingingDoorDownsampler::Options{config.error, config.max_interval});
    }
    return nullptr;
}

}  // namespace tern::edge
