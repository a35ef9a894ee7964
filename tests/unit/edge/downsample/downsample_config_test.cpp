#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "recording_callbacks.h"
#include "tern/edge/downsample/aggregate.h"
#include "tern/edge/downsample/deadband.h"
#include "tern/edge/downsample/downsample.h"
#include "tern/edge/downsample/raw.h"
#include "tern/edge/downsample/swinging_door.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using downsample_testing::RecordingCallbacks;
using downsample_testing::sampleAt;

// The table as it is meant to be used: nested in each [[sensor]].
struct SensorEntry {
    std::string name;
    DownsampleConfig downsample;
};
struct Root {
    std::vector<SensorEntry> sensors;
};

shared::ConfigTable<Root> schema() {
    return shared::ConfigTable<Root>("", "test")
        .tables(&Root::sensors, shared::ConfigTable<SensorEntry>("sensor", "a sensor")
                                    .string("name", &SensorEntry::name, "", "name")
                                    .table(&SensorEntry::downsample, downsampleTable()));
}

shared::ConfigResult<Root> load(const std::string& text) {
    return shared::loadConfigString(text, "edge.toml", schema());
}

std::vector<std::string> messages(const shared::ConfigErrors& errors) {
    std::vector<std::string> result;
    for (const auto& error : errors) result.push_back(error.key + ": " + error.message);
    return result;
}

TEST(DownsampleConfigTest, DefaultsToRawAndIsValid) {
    auto result = load("[[sensor]]\nname = \"a\"\n");
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const DownsampleConfig& config = result.value().sensors.at(0).downsample;
    EXPECT_EQ(config.mode, "raw");
    EXPECT_EQ(config.window, 1min);
    EXPECT_EQ(config.grace, 2s);
    EXPECT_FALSE(config.emit_raw);
    EXPECT_EQ(config.deadband_mode, "absolute");
    EXPECT_EQ(config.max_interval, 10min);
    EXPECT_TRUE(validateDownsampleConfig(config, "sensor[0].downsample").empty());
}

TEST(DownsampleConfigTest, LoadsEachModeFromAPerSensorSubtable) {
    auto result = load(R"([[sensor]]
name = "boiler"
[sensor.downsample]
mode = "aggregate"
window = "5m"
grace = "10s"
emit_raw = true
[[sensor]]
name = "pump"
[sensor.downsample]
mode = "deadband"
deadband = 2.5
deadband_mode = "percent"
max_interval = "1h"
[[sensor]]
name = "flow"
[sensor.downsample]
mode = "swinging-door"
error = 0.05
max_interval = "0s"
)");
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const auto& sensors = result.value().sensors;
    ASSERT_EQ(sensors.size(), 3u);
    EXPECT_EQ(sensors[0].downsample.window, 5min);
    EXPECT_EQ(sensors[0].downsample.grace, 10s);
    EXPECT_TRUE(sensors[0].downsample.emit_raw);
    EXPECT_DOUBLE_EQ(sensors[1].downsample.deadband, 2.5);
    EXPECT_EQ(sensors[1].downsample.deadband_mode, "percent");
    EXPECT_EQ(sensors[1].downsample.max_interval, 1h);
    EXPECT_DOUBLE_EQ(sensors[2].downsample.error, 0.05);
    EXPECT_EQ(sensors[2].downsample.max_interval, 0ms);
    for (std::size_t i = 0; i < sensors.size(); ++i) {
        EXPECT_TRUE(validateDownsampleConfig(sensors[i].downsample, "x").empty()) << i;
    }
}

TEST(DownsampleConfigTest, TheTableRejectsUnknownKeysBadModesAndRanges) {
    auto result = load(R"([[sensor]]
name = "a"
[sensor.downsample]
mode = "average"
windw = "1m"
window = "10ms"
deadband = -1.0
)");
    ASSERT_FALSE(result);
    const auto& errors = result.error();
    ASSERT_EQ(errors.size(), 4u) << shared::formatConfigErrors(errors);
    EXPECT_EQ(errors[0].key, "sensor[0].downsample.mode");
    EXPECT_EQ(errors[1].key, "sensor[0].downsample.windw");
    EXPECT_EQ(errors[2].key, "sensor[0].downsample.window");
    EXPECT_EQ(errors[3].key, "sensor[0].downsample.deadband");
}

TEST(DownsampleConfigTest, SwingingDoorNeedsAnError) {
    DownsampleConfig config;
    config.mode = "swinging-door";
    const auto errors = validateDownsampleConfig(config, "sensor[1].downsample");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].key, "sensor[1].downsample.error");
    EXPECT_NE(errors[0].message.find("greater than 0"), std::string::npos);
}

TEST(DownsampleConfigTest, KeysOfAnotherModeAreRejectedByName) {
    DownsampleConfig config;
    config.mode = "deadband";
    config.window = 5min;
    config.emit_raw = true;
    config.error = 0.1;
    config.deadband = 1.0;
    EXPECT_EQ(messages(validateDownsampleConfig(config, "sensor[0].downsample")),
              (std::vector<std::string>{
                  "sensor[0].downsample.window: applies only to mode \"aggregate\" (mode is "
                  "\"deadband\")",
                  "sensor[0].downsample.emit_raw: applies only to mode \"aggregate\" (mode is "
                  "\"deadband\")",
                  "sensor[0].downsample.error: applies only to mode \"swinging-door\" (mode is "
                  "\"deadband\")",
              }));

    DownsampleConfig raw;
    raw.grace = 1s;
    raw.max_interval = 1min;
    raw.deadband_mode = "percent";
    EXPECT_EQ(messages(validateDownsampleConfig(raw, "")),
              (std::vector<std::string>{
                  "grace: applies only to mode \"aggregate\" (mode is \"raw\")",
                  "deadband_mode: applies only to mode \"deadband\" (mode is \"raw\")",
                  "max_interval: applies only to modes \"deadband\" and \"swinging-door\" (mode "
                  "is \"raw\")",
              }));
}

TEST(DownsampleConfigTest, InconsistentValuesAreRejected) {
    DownsampleConfig config;
    config.mode = "aggregate";
    config.window = 30 * 24h;  // beyond what Aggregate::window_ms can carry
    EXPECT_EQ(validateDownsampleConfig(config, "d").at(0).key, "d.window");

    config = DownsampleConfig{};
    config.mode = "deadband";
    config.deadband_mode = "relative";
    EXPECT_EQ(validateDownsampleConfig(config, "d").at(0).key, "d.deadband_mode");

    config = DownsampleConfig{};
    config.mode = "median";
    EXPECT_EQ(validateDownsampleConfig(config, "d").at(0).key, "d.mode");
    EXPECT_EQ(makeDownsampler(config, 1), nullptr);
}

TEST(DownsampleConfigTest, FactoryBuildsTheConfiguredMode) {
    DownsampleConfig config;
    EXPECT_NE(dynamic_cast<RawDownsampler*>(makeDownsampler(config, 1).get()), nullptr);
    config.mode = "deadband";
    EXPECT_NE(dynamic_cast<DeadbandDownsampler*>(makeDownsampler(config, 1).get()), nullptr);
    config.mode = "swinging-door";
    config.error = 1.0;
    EXPECT_NE(dynamic_cast<SwingingDoorDownsampler*>(makeDownsampler(config, 1).get()), nullptr);

    config = DownsampleConfig{};
    config.mode = "aggregate";
    config.window = 10s;
    auto aggregate = makeDownsampler(config, 42);
    ASSERT_NE(dynamic_cast<AggregateDownsampler*>(aggregate.get()), nullptr);
    RecordingCallbacks out;
    aggregate->offer(sampleAt(1'700'000'003'000, 1.0), out);
    aggregate->flush(out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].sensor, 42);  // the factory's sensor, not the sample's
    EXPECT_EQ(out.aggregates[0].start_ms, 1'700'000'000'000);
    EXPECT_EQ(out.aggregates[0].window_ms, 10'000u);
}

TEST(DownsampleConfigTest, ParsesModeNames) {
    EXPECT_EQ(parseDownsampleMode("raw"), DownsampleMode::Raw);
    EXPECT_EQ(parseDownsampleMode("aggregate"), DownsampleMode::Aggregate);
    EXPECT_EQ(parseDownsampleMode("deadband"), DownsampleMode::Deadband);
    EXPECT_EQ(parseDownsampleMode("swinging-door"), DownsampleMode::SwingingDoor);
    EXPECT_EQ(parseDownsampleMode("swinging_door"), std::nullopt);
}

}  // namespace
}  // namespace tern::edge
