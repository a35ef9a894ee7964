#pragma once

// Per-sensor downsampling config, [sensor.downsample], and the factory that turns it into a
// Downsampler. Built once at startup; the downsamplers it makes run on the agent's loop thread.
// See docs/edge-downsampling.md for every mode and option.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tern/edge/downsampler.h"
#include "tern/shared/config.h"

namespace tern::edge {

enum class DownsampleMode { Raw, Aggregate, Deadband, SwingingDoor };

// "raw", "aggregate", "deadband", "swinging-door"; nullopt for anything else.
std::optional<DownsampleMode> parseDownsampleMode(std::string_view text);

inline constexpr std::chrono::milliseconds kDefaultDownsampleWindow = std::chrono::minutes(1);
inline constexpr std::chrono::milliseconds kDefaultDownsampleGrace = std::chrono::seconds(2);
inline constexpr std::chrono::milliseconds kDefaultDownsampleMaxInterval = std::chrono::minutes(10);

struct DownsampleConfig {
    std::string mode = "raw";
    // aggregate
    std::chrono::milliseconds window = kDefaultDownsampleWindow;
    std::chrono::milliseconds grace = kDefaultDownsampleGrace;
    bool emit_raw = false;
    // deadband
    double deadband = 0.0;
    std::string deadband_mode = "absolute";
    // swinging-door; 0 means not set, which validation rejects for that mode
    double error = 0.0;
    // deadband and swinging-door; 0 = off
    std::chrono::milliseconds max_interval = kDefaultDownsampleMaxInterval;
};

// The [downsample] table, meant to be nested in each [[sensor]] as [sensor.downsample]. It checks
// types and ranges; validateDownsampleConfig checks what depends on the mode.
shared::ConfigTable<DownsampleConfig> downsampleTable();

// Every inconsistency at once; empty when the config is usable. path is where the table sits
// ("sensor[2].downsample"), so each error's key is the full dotted key; file and line are left
// for the caller, which knows them. A key that does not apply to the mode is reported when it
// differs from its default: the table cannot tell a key written with its default value from an
// absent one, so that case passes.
shared::ConfigErrors validateDownsampleConfig(const DownsampleConfig& config,
                                              const std::string& path);

// One downsampler for one sensor; sensor is the index that aggregates carry. config is expected
// to have passed validateDownsampleConfig; an unknown mode returns null.
std::unique_ptr<Downsampler> makeDownsampler(const DownsampleConfig& config, std::uint16_t sensor);

}  // namespace tern::edge
