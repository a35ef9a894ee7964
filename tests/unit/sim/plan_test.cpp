// The fleet plan: every gateway's id, power-on, seeded sensors and share of the fault timeline,
// worked out from the scenario alone. Scenarios are written as TOML and loaded through the real
// schema, so the tests see what tern-sim sees.

#include "tern/sim/plan.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tern/edge/sources/simulated_source.h"
#include "tern/shared/config.h"
#include "tern/sim/config.h"

namespace tern::sim {
namespace {

using namespace std::chrono_literals;

// 100 gateways with two simulated sensors; a rule watches vibration only.
constexpr const char* kFleet = R"(
[fleet]
gateways = 100
id_prefix = "t-"
seed = 7
start_spread = "10s"

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
noise = 0.1
resolution = 0.01

[[gateway.sensor]]
name = "vibration"
unit = "g"
kind = "vibration"
source = "simulated"
[gateway.sensor.simulated]
model = "constant"
base = 0.003
noise = 0.001
resolution = 0.001

[[gateway.rule]]
id = "vibration-shock"
sensor = "vibration"
type = "rate_of_change"
max_rate = 0.2
)";

// Every kind of fault, each on part of the fleet.
constexpr const char* kTimeline = R"(
[[fault]]
kind = "spike"
sensor = "vibration"
at = "1m"
magnitude = 0.5
fraction = 0.2

[[fault]]
kind = "drift"
sensor = "temperature"
at = "30s"
magnitude = 2.0
count = 9

[[fault]]
kind = "network_outage"
at = "2m"
duration = "1m"
fraction = 0.1

[[fault]]
kind = "reboot"
at = "50s"
duration = "20s"
fraction = 0.3

[[fault]]
kind = "clock_skew"
skew = "90s"
fraction = 0.05

[[fault]]
kind = "boot_1970"
duration = "45s"
fraction = 0.04

[[fault]]
kind = "broker_outage"
at = "8m"
duration = "30s"
)";

// The scenario kFleet + extra, loaded and validated; a failure to do either fails the test.
SimConfig scenario(const std::string& extra) {
    auto loaded =
        shared::loadConfigString(std::string(kFleet) + extra, "plan.toml", configSchema());
    if (!loaded) {
        ADD_FAILURE() << shared::formatConfigErrors(loaded.error());
        return {};
    }
    const auto errors = validateSimConfig(loaded.value(), "plan.toml");
    EXPECT_TRUE(errors.empty()) << shared::formatConfigErrors(errors);
    return loaded.value();
}

std::string describe(const std::vector<Interval>& intervals) {
    std::string out;
    for (const auto& i : intervals)
        out += fmt::format(" {}ms+{}ms", i.at.count(), i.duration.count());
    return out;
}

std::string describe(const std::vector<ClockStep>& steps) {
    std::string out;
    for (const auto& s : steps) out += fmt::format(" {}ms{:+}ms", s.at.count(), s.offset.count());
    return out;
}

// Everything the plan decides for one gateway, as text, so that a mismatch shows where it is.
// Doubles print in their shortest exact form: equal text means equal values.
std::string describe(const GatewayPlan& gw) {
    std::string out = fmt::format("#{} {} on={}ms\n", gw.index, gw.id, gw.power_on.count());
    for (const auto& sensor : gw.config.sensors) {
        const auto& sim = sensor.simulated;
        out += fmt::format("  sensor {} seed={} base={} amplitude={} faults:", sensor.name,
                           sim.seed, sim.base, sim.amplitude);
        for (const auto& f : sim.faults) {
            out += fmt::format(" {}@{}ms+{}ms*{}", f.kind, f.start.count(), f.duration.count(),
                               f.magnitude);
        }
        out += "\n";
    }
    out += "  outages:" + describe(gw.network_outages);
    out += "\n  reboots:" + describe(gw.reboots);
    out += "\n  clock:" + describe(gw.clock_steps);
    if (gw.clock_sync_at) out += fmt::format(" sync@{}ms", gw.clock_sync_at->count());
    out += "\n  anomalies:";
    for (const auto& a : gw.anomalies) {
        out += fmt::format(" {}[{}].{}@{}ms:{}", a.sensor, a.sensor_index, a.kind, a.at.count(),
                           a.expect_alert ? "alert" : "quiet");
    }
    return out + "\n";
}

std::vector<std::string> describeAll(const FleetPlan& plan) {
    std::vector<std::string> out;
    for (const auto& gw : plan.gateways) out.push_back(describe(gw));
    return out;
}

// Indexes of the gateways for which `hit` holds.
template <class Hit>
std::vector<std::size_t> hitBy(const FleetPlan& plan, Hit hit) {
    std::vector<std::size_t> out;
    for (const auto& gw : plan.gateways) {
        if (hit(gw)) out.push_back(gw.index);
    }
    return out;
}

bool rebooted(const GatewayPlan& gw) { return !gw.reboots.empty(); }
bool cutOff(const GatewayPlan& gw) { return !gw.network_outages.empty(); }

std::vector<std::optional<double>> readings(const GatewayPlan& gw, std::size_t sensor, int n) {
    edge::SimulatedSeries series(gw.config.sensors.at(sensor).simulated,
                                 static_cast<std::uint16_t>(sensor));
    std::vector<std::optional<double>> out;
    for (int i = 0; i < n; ++i) out.push_back(series.next(std::chrono::milliseconds(1000 * i)));
    return out;
}

const InjectedAnomaly* findAnomaly(const GatewayPlan& gw, const std::string& sensor,
                                   const std::string& kind, std::chrono::milliseconds at) {
    for (const auto& a : gw.anomalies) {
        if (a.sensor == sensor && a.kind == kind && a.at == at) return &a;
    }
    return nullptr;
}

TEST(PlanTest, TheSameScenarioGivesTheSamePlan) {
    const SimConfig config = scenario(kTimeline);
    const FleetPlan a = planFleet(config);
    const FleetPlan b = planFleet(config);
    ASSERT_EQ(a.gateways.size(), 100u);
    EXPECT_EQ(describeAll(a), describeAll(b));
    EXPECT_EQ(describe(a.broker_outages), describe(b.broker_outages));
    EXPECT_EQ(describe(a.broker_outages), " 480000ms+30000ms");
    // The comparison covers a timeline that did something.
    EXPECT_FALSE(hitBy(a, rebooted).empty());
    EXPECT_FALSE(hitBy(a, cutOff).empty());
    EXPECT_FALSE(hitBy(a, [](const GatewayPlan& gw) { return !gw.anomalies.empty(); }).empty());
    EXPECT_FALSE(hitBy(a, [](const GatewayPlan& gw) { return !gw.clock_steps.empty(); }).empty());
    EXPECT_FALSE(
        hitBy(a, [](const GatewayPlan& gw) { return gw.clock_sync_at.has_value(); }).empty());
}

TEST(PlanTest, ADifferentSeedGivesDifferentSensorSeedsAndHitsOtherGateways) {
    SimConfig config = scenario(kTimeline);
    const FleetPlan a = planFleet(config);
    config.fleet.seed = 8;
    const FleetPlan b = planFleet(config);
    ASSERT_EQ(a.gateways.size(), b.gateways.size());
    for (std::size_t g = 0; g < a.gateways.size(); ++g) {
        const auto& sa = a.gateways[g].config.sensors;
        const auto& sb = b.gateways[g].config.sensors;
        ASSERT_EQ(sa.size(), sb.size());
        for (std::size_t s = 0; s < sa.size(); ++s) {
            EXPECT_NE(sa[s].simulated.seed, sb[s].simulated.seed)
                << "gateway " << g << " sensor " << s;
        }
    }
    // The network outage hits a tenth of the fleet under either seed, but not the same tenth.
    EXPECT_EQ(hitBy(a, cutOff).size(), 10u);
    EXPECT_EQ(hitBy(b, cutOff).size(), 10u);
    EXPECT_NE(hitBy(a, cutOff), hitBy(b, cutOff));
}

TEST(PlanTest, TheSameSeedGivesTheSameReadings) {
    const SimConfig config = scenario("");
    const FleetPlan a = planFleet(config);
    const FleetPlan b = planFleet(config);
    const auto first = readings(a.gateways[3], 0, 100);
    EXPECT_EQ(first, readings(b.gateways[3], 0, 100));
    // A series that varies, so that equality says something.
    ASSERT_TRUE(first[0].has_value());
    EXPECT_TRUE(std::any_of(first.begin(), first.end(),
                            [&](const auto& v) { return v.has_value() && *v != *first[0]; }));
    EXPECT_NE(first, readings(a.gateways[4], 0, 100));
}

TEST(PlanTest, EverySliceAgreesWithTheWholeFleet) {
    const SimConfig config = scenario(kTimeline);
    const FleetPlan whole = planFleet(config);
    const auto expected = describeAll(whole);
    struct Slice {
        std::size_t first;
        std::size_t count;
        std::size_t size;  // what is left of it inside the fleet
    };
    for (const Slice slice : {Slice{0, 10, 10}, Slice{10, 25, 25}, Slice{37, 1, 1},
                              Slice{60, 40, 40}, Slice{90, 50, 10}}) {
        SCOPED_TRACE(fmt::format("slice {}+{}", slice.first, slice.count));
        const FleetPlan part = planFleet(config, slice.first, slice.count);
        EXPECT_EQ(part.first, slice.first);
        ASSERT_EQ(part.gateways.size(), slice.size);
        for (std::size_t i = 0; i < part.gateways.size(); ++i) {
            EXPECT_EQ(part.gateways[i].index, slice.first + i);
            EXPECT_EQ(describe(part.gateways[i]), expected[slice.first + i]);
        }
        EXPECT_EQ(describe(part.broker_outages), describe(whole.broker_outages));
    }
}

TEST(PlanTest, CountHitsExactlyThatManyGateways) {
    const FleetPlan plan = planFleet(scenario(R"(
[[fault]]
kind = "reboot"
at = "1m"
duration = "10s"
count = 7
)"));
    const auto hit = hitBy(plan, rebooted);
    ASSERT_EQ(hit.size(), 7u);
    EXPECT_GE(hit.back(), 7u);  // picked across the fleet, not the first seven
}

TEST(PlanTest, FractionHitsThatShareOfTheFleetChosenAcrossIt) {
    const FleetPlan plan = planFleet(scenario(R"(
[[fault]]
kind = "network_outage"
at = "1m"
duration = "10s"
fraction = 0.25
)"));
    const auto hit = hitBy(plan, cutOff);
    ASSERT_EQ(hit.size(), 25u);
    EXPECT_GE(hit.back(), 25u);
    for (const auto g : hit) {
        EXPECT_EQ(describe(plan.gateways[g].network_outages), " 60000ms+10000ms");
    }
}

TEST(PlanTest, GatewaysPowerOnInOrderOverTheStartSpread) {
    const FleetPlan plan = planFleet(scenario(""));
    ASSERT_EQ(plan.gateways.size(), 100u);
    EXPECT_EQ(plan.gateways[0].power_on, 0ms);
    EXPECT_EQ(plan.gateways[50].power_on, 5s);
    EXPECT_EQ(plan.gateways[99].power_on, 9900ms);
    for (std::size_t g = 1; g < plan.gateways.size(); ++g) {
        EXPECT_GT(plan.gateways[g].power_on, plan.gateways[g - 1].power_on) << g;
    }
}

TEST(PlanTest, GatewayIdsAreThePrefixAndFiveDigitsFromOne) {
    const SimConfig config = scenario("");
    const FleetPlan plan = planFleet(config);
    EXPECT_EQ(plan.gateways[0].id, "t-00001");
    EXPECT_EQ(plan.gateways[41].id, "t-00042");
    EXPECT_EQ(plan.gateways[99].id, "t-00100");
    EXPECT_EQ(plan.gateways[41].config.uplink.gateway_id, "t-00042");
    EXPECT_EQ(gatewayId(config.fleet, 41), "t-00042");
}

TEST(PlanTest, OnlyASpikeOnARuledSensorWhileRunningIsOwedAnAlert) {
    SimConfig config = scenario(R"(
[[fault]]
kind = "reboot"
at = "10s"
duration = "20s"

[[fault]]
kind = "spike"
sensor = "vibration"
at = "40s"
magnitude = 0.5

[[fault]]
kind = "spike"
sensor = "vibration"
at = "15s"
magnitude = 0.5

[[fault]]
kind = "spike"
sensor = "temperature"
at = "40s"
magnitude = 10.0

[[fault]]
kind = "drift"
sensor = "vibration"
at = "40s"
magnitude = 5.0
)");
    config.fleet.gateways = 3;
    const FleetPlan plan = planFleet(config);
    ASSERT_EQ(plan.gateways.size(), 3u);
    for (const auto& gw : plan.gateways) {
        SCOPED_TRACE(gw.id);
        ASSERT_EQ(gw.anomalies.size(), 4u);
        const auto* running = findAnomaly(gw, "vibration", "spike", 40s);
        const auto* rebooting = findAnomaly(gw, "vibration", "spike", 15s);
        const auto* unruled = findAnomaly(gw, "temperature", "spike", 40s);
        const auto* drift = findAnomaly(gw, "vibration", "drift", 40s);
        ASSERT_NE(running, nullptr);
        ASSERT_NE(rebooting, nullptr);
        ASSERT_NE(unruled, nullptr);
        ASSERT_NE(drift, nullptr);
        EXPECT_TRUE(running->expect_alert);
        EXPECT_EQ(running->sensor_index, 1);
        EXPECT_FALSE(rebooting->expect_alert);
        EXPECT_FALSE(unruled->expect_alert);
        EXPECT_EQ(unruled->sensor_index, 0);
        EXPECT_FALSE(drift->expect_alert);
    }
}

// One gateway with every sensor fault bootConfig has to sort out.
GatewayPlan faultyGateway() {
    SimConfig config = scenario(R"(
[[fault]]
kind = "stuck"
sensor = "temperature"
at = "20s"
duration = "30s"

[[fault]]
kind = "spike"
sensor = "temperature"
at = "25s"
magnitude = 3.0

[[fault]]
kind = "spike"
sensor = "temperature"
at = "60s"
magnitude = 4.0

[[fault]]
kind = "dropout"
sensor = "vibration"
at = "5s"
duration = "10s"

[[fault]]
kind = "drift"
sensor = "vibration"
at = "10s"
magnitude = 2.0
)");
    config.fleet.gateways = 1;
    auto plan = planFleet(config);
    if (plan.gateways.size() != 1) {
        ADD_FAILURE() << "expected one gateway";
        return {};
    }
    return plan.gateways[0];
}

std::string describe(const std::vector<edge::SimulatedFaultConfig>& faults) {
    std::string out;
    for (const auto& f : faults) {
        out += fmt::format("{}@{}ms+{}ms*{};", f.kind, f.start.count(), f.duration.count(),
                           f.magnitude);
    }
    return out;
}

TEST(PlanTest, BootConfigKeepsWhatIsNotOverRelativeToTheBoot) {
    const GatewayPlan gw = faultyGateway();
    ASSERT_EQ(gw.config.sensors.size(), 2u);
    const auto config = bootConfig(gw, 30s, 1);
    ASSERT_EQ(config.sensors.size(), 2u);
    // temperature: the stuck value (20s-50s) is in progress: from 0 for the 20 s left; the spike
    // at 25s has passed; the one at 60s comes 30 s into this boot.
    EXPECT_EQ(describe(config.sensors[0].simulated.faults),
              "stuck@0ms+20000ms*0;spike@30000ms+0ms*4;");
    // vibration: the dropout (5s-15s) is over; the open-ended drift from 10s goes on from 0.
    EXPECT_EQ(describe(config.sensors[1].simulated.faults), "drift@0ms+0ms*2;");
}

TEST(PlanTest, BootConfigAtTheStartKeepsTheTimelineAndTheSeeds) {
    const GatewayPlan gw = faultyGateway();
    ASSERT_EQ(gw.config.sensors.size(), 2u);
    const auto config = bootConfig(gw, 0ms, 0);
    ASSERT_EQ(config.sensors.size(), 2u);
    for (std::size_t s = 0; s < 2; ++s) {
        EXPECT_EQ(config.sensors[s].simulated.seed, gw.config.sensors[s].simulated.seed);
        EXPECT_EQ(describe(config.sensors[s].simulated.faults),
                  describe(gw.config.sensors[s].simulated.faults));
    }
    EXPECT_EQ(describe(config.sensors[0].simulated.faults),
              "stuck@20000ms+30000ms*0;spike@25000ms+0ms*3;spike@60000ms+0ms*4;");
}

TEST(PlanTest, BootConfigAfterARebootReseedsTheSensors) {
    const GatewayPlan gw = faultyGateway();
    ASSERT_EQ(gw.config.sensors.size(), 2u);
    const auto first = bootConfig(gw, 30s, 1);
    const auto second = bootConfig(gw, 30s, 2);
    for (std::size_t s = 0; s < 2; ++s) {
        EXPECT_NE(first.sensors[s].simulated.seed, gw.config.sensors[s].simulated.seed);
        EXPECT_NE(second.sensors[s].simulated.seed, first.sensors[s].simulated.seed);
        EXPECT_GE(first.sensors[s].simulated.seed, 0);  // -1 would mean "from the index"
    }
    // The same boot always reseeds the same way.
    EXPECT_EQ(bootConfig(gw, 30s, 1).sensors[0].simulated.seed, first.sensors[0].simulated.seed);
}

TEST(PlanTest, BrokerOutagesBelongToTheFleetNotToGateways) {
    const FleetPlan plan = planFleet(scenario(R"(
[[fault]]
kind = "broker_outage"
at = "8m"
duration = "30s"
)"));
    EXPECT_EQ(describe(plan.broker_outages), " 480000ms+30000ms");
    for (const auto& gw : plan.gateways) {
        EXPECT_TRUE(gw.network_outages.empty()) << gw.id;
        EXPECT_TRUE(gw.reboots.empty()) << gw.id;
        EXPECT_TRUE(gw.anomalies.empty()) << gw.id;
    }
}

TEST(PlanTest, ClockSkewStepsTheClockAheadOrBehind) {
    const FleetPlan plan = planFleet(scenario(R"(
[[fault]]
kind = "clock_skew"
at = "1m"
skew = "90s"
behind = true

[[fault]]
kind = "clock_skew"
at = "30s"
skew = "5s"
)"));
    for (const auto& gw : plan.gateways) {
        // Sorted by time, whatever the order in the file.
        EXPECT_EQ(describe(gw.clock_steps), " 30000ms+5000ms 60000ms-90000ms") << gw.id;
    }
}

TEST(PlanTest, Boot1970SyncsTheDurationAfterPowerOn) {
    const FleetPlan plan = planFleet(scenario(R"(
[[fault]]
kind = "boot_1970"
duration = "45s"
count = 10
)"));
    const auto hit =
        hitBy(plan, [](const GatewayPlan& gw) { return gw.clock_sync_at.has_value(); });
    ASSERT_EQ(hit.size(), 10u);
    for (const auto g : hit) {
        const auto& gw = plan.gateways[g];
        EXPECT_EQ(*gw.clock_sync_at, gw.power_on + 45s) << gw.id;
    }
    // At least one of them powers on after the first, so power_on counts.
    EXPECT_TRUE(std::any_of(hit.begin(), hit.end(),
                            [&](std::size_t g) { return plan.gateways[g].power_on > 0ms; }));
}

}  // namespace
}  // namespace tern::sim
