// The tern-sim scenario: what the schema loads and what validateSimConfig refuses. Errors are
// checked by key, the part of an error an operator's editor jumps to.

#include "tern/sim/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tern/shared/config.h"

namespace tern::sim {
namespace {

namespace fs = std::filesystem;

fs::path scenarioDir() { return fs::path(TERN_SOURCE_DIR) / "simulator/scenarios"; }

shared::ConfigResult<SimConfig> load(const std::string& text) {
    return shared::loadConfigString(text, "scenario.toml", configSchema());
}

// A valid scenario with one simulated sensor and a rule on it; tests add what they break.
const std::string kBase = R"(
[fleet]
gateways = 4

[broker]
pid = 4242

[[gateway.sensor]]
name = "temperature"
unit = "Cel"
kind = "temperature"
source = "simulated"
[gateway.sensor.simulated]
model = "sine"
base = 20.0
amplitude = 2.0
period = "1m"

[[gateway.rule]]
id = "hot"
sensor = "temperature"
type = "threshold"
above = 30.0
)";

// The errors validateSimConfig reports for a scenario that loads; an empty list (and a test
// failure) when it does not load.
shared::ConfigErrors validationErrors(const std::string& text) {
    auto loaded = load(text);
    if (!loaded) {
        ADD_FAILURE() << "expected the scenario to load:\n"
                      << shared::formatConfigErrors(loaded.error());
        return {};
    }
    return validateSimConfig(loaded.value(), "scenario.toml");
}

bool hasKey(const shared::ConfigErrors& errors, const std::string& key) {
    return std::any_of(errors.begin(), errors.end(),
                       [&](const shared::ConfigError& e) { return e.key == key; });
}

TEST(SimConfigTest, EveryShippedScenarioLoadsAndValidates) {
    const fs::path dir = scenarioDir();
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() == ".toml") files.push_back(entry.path());
    }
    ASSERT_FALSE(files.empty()) << "no scenarios in " << dir;
    for (const auto& file : files) {
        SCOPED_TRACE(file.string());
        auto loaded = shared::loadConfigFile(file.string(), configSchema());
        ASSERT_TRUE(loaded) << shared::formatConfigErrors(loaded.error());
        const auto errors = validateSimConfig(loaded.value(), file.string());
        EXPECT_TRUE(errors.empty()) << shared::formatConfigErrors(errors);
    }
}

TEST(SimConfigTest, TheBaseScenarioIsValid) {
    const auto errors = validationErrors(kBase);
    EXPECT_TRUE(errors.empty()) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, AScenarioWithoutSensorsRunsTheSeedSchemasFour) {
    // Faults and rules may name the seed sensors, which the gateways will run.
    auto loaded = load(R"(
[fleet]
gateways = 2

[[gateway.rule]]
id = "shock"
sensor = "vibration"
type = "rate_of_change"
max_rate = 0.2

[[fault]]
kind = "spike"
sensor = "vibration"
at = "1m"
magnitude = 0.5
)");
    ASSERT_TRUE(loaded) << shared::formatConfigErrors(loaded.error());
    EXPECT_TRUE(loaded.value().gateway.sensors.empty());
    const auto errors = validateSimConfig(loaded.value(), "scenario.toml");
    EXPECT_TRUE(errors.empty()) << shared::formatConfigErrors(errors);

    const auto sensors = seedSensors();
    std::vector<std::string> names;
    for (const auto& sensor : sensors) {
        names.push_back(sensor.name);
        EXPECT_EQ(sensor.source, "simulated") << sensor.name;
    }
    EXPECT_EQ(names, (std::vector<std::string>{"temperature", "humidity", "vibration",
                                               "power_consumption"}));
}

TEST(SimConfigTest, ASensorMustBeSimulated) {
    const auto errors = validationErrors(kBase + R"(
[[gateway.sensor]]
name = "cpu"
source = "sysfs"
)");
    // The base's sensor is sensor[0]; this one is sensor[1].
    EXPECT_TRUE(hasKey(errors, "gateway.sensor[1].source")) << shared::formatConfigErrors(errors);
    EXPECT_FALSE(hasKey(errors, "gateway.sensor[0].source")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, TheOnlySensorMustBeSimulated) {
    const auto errors = validationErrors(R"(
[[gateway.sensor]]
name = "cpu"
source = "sysfs"
)");
    EXPECT_TRUE(hasKey(errors, "gateway.sensor[0].source")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, ASensorFaultMustNameAKnownSensor) {
    const auto errors = validationErrors(kBase + R"(
[[fault]]
kind = "spike"
sensor = "pressure"
at = "10s"
magnitude = 1.0
)");
    EXPECT_TRUE(hasKey(errors, "fault[0].sensor")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, ANetworkOutageNeedsADuration) {
    const auto errors = validationErrors(kBase + R"(
[[fault]]
kind = "network_outage"
at = "10s"
)");
    EXPECT_TRUE(hasKey(errors, "fault[0].duration")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, Boot1970HappensAtPowerOn) {
    const auto errors = validationErrors(kBase + R"(
[[fault]]
kind = "boot_1970"
at = "10s"
duration = "45s"
)");
    EXPECT_TRUE(hasKey(errors, "fault[0].at")) << shared::formatConfigErrors(errors);
    EXPECT_FALSE(hasKey(errors, "fault[0].duration")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, AClockSkewNeedsASkew) {
    const auto errors = validationErrors(kBase + R"(
[[fault]]
kind = "clock_skew"
at = "10s"
)");
    EXPECT_TRUE(hasKey(errors, "fault[0].skew")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, ARuleMustWatchAKnownSensor) {
    const auto errors = validationErrors(kBase + R"(
[[gateway.rule]]
id = "damp"
sensor = "humidity"
type = "threshold"
above = 90.0
)");
    ASSERT_FALSE(errors.empty());
    for (const auto& error : errors) {
        EXPECT_TRUE(error.key.starts_with("gateway.")) << error.format();
    }
    EXPECT_TRUE(hasKey(errors, "gateway.rule[1].sensor")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, GatewayIdsMadeFromThePrefixMustBeValid) {
    auto text = kBase;
    text.replace(text.find("gateways = 4"), 12, "gateways = 4\nid_prefix = \"floor/3-\"");
    const auto errors = validationErrors(text);
    EXPECT_TRUE(hasKey(errors, "fleet.id_prefix")) << shared::formatConfigErrors(errors);
}

TEST(SimConfigTest, AFleetHasAtLeastOneGateway) {
    auto text = kBase;
    text.replace(text.find("gateways = 4"), 12, "gateways = 0");
    auto loaded = load(text);
    ASSERT_FALSE(loaded);
    EXPECT_TRUE(hasKey(loaded.error(), "fleet.gateways"))
        << shared::formatConfigErrors(loaded.error());
}

TEST(SimConfigTest, AnUnknownFaultKindDoesNotLoad) {
    auto loaded = load(kBase + R"(
[[fault]]
kind = "meteor"
at = "10s"
)");
    ASSERT_FALSE(loaded);
    EXPECT_TRUE(hasKey(loaded.error(), "fault[0].kind"))
        << shared::formatConfigErrors(loaded.error());
}

}  // namespace
}  // namespace tern::sim
