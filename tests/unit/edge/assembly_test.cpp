// The edge data path assembled from a config file, as the daemon will: a simulated temperature
// with an injected spike, aggregated per minute, a threshold rule on it, and a raw humidity.
// Checks the whole chain — rule fires once, anomaly context sends the raw readings around the
// spike, windows still close, and every sealed batch is valid on the wire.

#include "tern/edge/assembly.h"

#include <gtest/gtest.h>

#include "tern/shared/codec.h"

namespace tern::edge {
namespace {

constexpr const char* kConfig = R"(
[batch]
max_readings = 50
max_age = "30s"

[anomaly_context]
before = "10s"
after = "5s"

[[sensor]]
name = "temperature"
unit = "Cel"
kind = "temperature"
source = "simulated"
interval = "1s"
[sensor.simulated]
model = "sine"
base = 21.0
amplitude = 0.5
period = "1h"
noise = 0.01
resolution = 0.01
seed = 7
[[sensor.simulated.fault]]
kind = "spike"
start = "120s"
magnitude = 40.0
[sensor.downsample]
mode = "aggregate"
window = "1m"

[[sensor]]
name = "humidity"
unit = "%"
kind = "humidity"
source = "simulated"
interval = "1s"
[sensor.simulated]
model = "random_walk"
base = 45.0
step = 0.1
resolution = 0.1
seed = 8

[[rule]]
id = "temperature-high"
sensor = "temperature"
type = "threshold"
above = 40.0
severity = "critical"
)";

struct Batches final : BatchSink {
    std::vector<shared::TelemetryBatch> batches;
    void onBatch(const shared::TelemetryBatch& batch) override { batches.push_back(batch); }
};

struct Alerts final : AlertSink {
    std::vector<shared::Alert> alerts;
    void onAlert(const shared::Alert& alert) override { alerts.push_back(alert); }
};

constexpr std::int64_t kStartMs = 1'763'600'000'000;

class AssemblyTest : public ::testing::Test {
protected:
    EdgeConfig load(const std::string& text) {
        // The uplink's gateway id is the one key without a default.
        auto config = shared::loadConfigString(text + "\n[uplink]\ngateway_id = \"gw-1\"\n",
                                               "edge.toml", configSchema());
        EXPECT_TRUE(config) << (config ? "" : shared::formatConfigErrors(config.error()));
        return config.value();
    }

    shared::ManualClock clock{shared::fromUnixMillis(kStartMs)};
    shared::MetricsRegistry metrics;
    Batches batches;
    Alerts alerts;
};

TEST_F(AssemblyTest, SpikeFiresOnceAndTravelsWithItsContext) {
    const auto config = load(kConfig);
    ASSERT_TRUE(validateEdgeConfig(config, "edge.toml").empty());
    auto built = EdgeAssembly::build(config, clock, metrics, batches, alerts);
    ASSERT_TRUE(built) << built.error().message();
    auto& assembly = *built.value();
    auto* source = dynamic_cast<SimulatedSource*>(assembly.sources().front().get());
    ASSERT_NE(source, nullptr);

    for (int s = 0; s < 300; ++s) {
        source->pollOnce(assembly.pipeline());
        assembly.pipeline().onTick(
            Tick{shared::toUnixMillis(clock.wallNow()), monoMillis(clock.monoNow())});
        clock.advance(std::chrono::seconds(1));
    }
    assembly.pipeline().flush();

    ASSERT_EQ(alerts.alerts.size(), 2u);  // one incident: firing, then resolved
    EXPECT_EQ(alerts.alerts[0].state, shared::AlertState::Firing);
    EXPECT_EQ(alerts.alerts[0].rule, "temperature-high");
    EXPECT_EQ(alerts.alerts[1].state, shared::AlertState::Resolved);
    EXPECT_EQ(alerts.alerts[0].incident_id, alerts.alerts[1].incident_id);
    const std::int64_t fired_ms = alerts.alerts[0].time_ms;

    std::vector<std::int64_t> raw_temperature_ms;
    std::size_t aggregates = 0, humidity = 0;
    for (auto batch : batches.batches) {
        for (const auto& reading : batch.readings) {
            if (reading.sensor == 0) raw_temperature_ms.push_back(reading.time_ms);
            if (reading.sensor == 1) ++humidity;
        }
        for (const auto& aggregate : batch.aggregates) {
            EXPECT_EQ(aggregate.sensor, 0);
            EXPECT_EQ(aggregate.start_ms % 60'000, 0);  // aligned to wall-clock minutes
            ++aggregates;
        }
        batch.gateway_id = "gw-test";  // what the store adds
        batch.sequence = {1, 1};
        const auto encoded = shared::encodeBatch(batch);
        ASSERT_TRUE(encoded) << encoded.error().message();
        ASSERT_TRUE(shared::decodeBatch(encoded.value()));
    }
    EXPECT_EQ(humidity, 300u);  // raw sensor: every reading
    EXPECT_GE(aggregates, 4u);  // five minutes of windows, the spike's included
    // The aggregated temperature shows raw readings only around the spike: 10 s before, the
    // spike itself, and 5 s after.
    ASSERT_FALSE(raw_temperature_ms.empty());
    EXPECT_GE(raw_temperature_ms.front(), fired_ms - 10'000);
    EXPECT_LE(raw_temperature_ms.back(), fired_ms + 5'000);
    EXPECT_GE(raw_temperature_ms.size(), 15u);
    EXPECT_TRUE(std::find(raw_temperature_ms.begin(), raw_temperature_ms.end(), fired_ms) !=
                raw_temperature_ms.end());
}

TEST_F(AssemblyTest, CrossTableMistakesAreReportedTogether) {
    std::string text = kConfig;
    text += R"(
[[sensor]]
name = "humidity"
source = "simulated"
[sensor.downsample]
mode = "swinging-door"

[[rule]]
id = "ghost"
sensor = "no-such-sensor"
type = "missing"
timeout = "1m"
)";
    const auto errors = validateEdgeConfig(load(text), "edge.toml");
    std::string all;
    for (const auto& error : errors) all += error.format() + "\n";
    EXPECT_NE(all.find("sensor[2].name"), std::string::npos) << all;  // duplicate name
    EXPECT_NE(all.find("sensor[2].downsample.error"), std::string::npos)
        << all;  // swinging door needs error
    EXPECT_NE(all.find("unknown sensor \"no-such-sensor\""), std::string::npos) << all;
}

TEST_F(AssemblyTest, ReloadKeepsUnchangedRulesAndResolvesRemovedOnes) {
    const auto config = load(kConfig);
    auto assembly = EdgeAssembly::build(config, clock, metrics, batches, alerts).value();
    Sample hot = stampedSample(clock, 0, 55.0);
    assembly->pipeline().onSample(hot);
    ASSERT_EQ(alerts.alerts.size(), 1u);

    ASSERT_TRUE(assembly->reloadRules(config));  // unchanged: the incident stays open
    EXPECT_EQ(alerts.alerts.size(), 1u);

    auto without_rules = config;
    without_rules.rules.clear();
    ASSERT_TRUE(assembly->reloadRules(without_rules));  // removed while firing: resolved
    ASSERT_EQ(alerts.alerts.size(), 2u);
    EXPECT_EQ(alerts.alerts[1].state, shared::AlertState::Resolved);
}

}  // namespace
}  // namespace tern::edge
