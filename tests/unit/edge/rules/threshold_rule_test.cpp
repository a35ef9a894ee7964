#include <gtest/gtest.h>

#include <chrono>

#include "rule_test_support.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using rule_testing::kSensor;
using rule_testing::kWallOffsetMs;
using rule_testing::RuleHarness;
using shared::AlertState;

RuleConfig hot(std::chrono::milliseconds min_duration = kUnsetDuration) {
    RuleConfig rule = rule_testing::rule("hot", "threshold", "temperature");
    rule.above = 80;
    rule.min_duration = min_duration;
    return rule;
}

TEST(ThresholdRuleTest, FiresOnceResolvesOnceAndOpensANewIncidentNextTime) {
    RuleHarness h(hot());
    EXPECT_EQ(h.feed(70, 0), 0u);
    EXPECT_EQ(h.feed(85, 1000), 1u);
    const shared::Alert firing = h.last();
    EXPECT_EQ(firing.state, AlertState::Firing);
    EXPECT_EQ(firing.incident_id, 1u);
    EXPECT_EQ(firing.rule, "hot");
    EXPECT_EQ(firing.sensor, kSensor);
    EXPECT_EQ(firing.severity, shared::Severity::Warning);
    EXPECT_EQ(firing.value, 85.0);
    EXPECT_EQ(firing.time_ms, kWallOffsetMs + 1000);
    EXPECT_EQ(firing.message, "temperature above 80");
    EXPECT_FALSE(firing.clock_synced);
    EXPECT_TRUE(firing.gateway_id.empty());
    EXPECT_EQ(firing.sequence, shared::Sequence{});

    // The condition persists over many samples: no repeat.
    for (int i = 2; i < 500; ++i) EXPECT_EQ(h.feed(81 + i % 7, i * 1000), 0u);

    EXPECT_EQ(h.feed(79, 500'000), 1u);
    const shared::Alert resolved = h.last();
    EXPECT_EQ(resolved.state, AlertState::Resolved);
    EXPECT_EQ(resolved.incident_id, 1u);
    EXPECT_EQ(resolved.value, 79.0);
    EXPECT_EQ(resolved.time_ms, kWallOffsetMs + 500'000);
    EXPECT_EQ(resolved.message, "temperature back at or below 80");
    for (int i = 0; i < 100; ++i) EXPECT_EQ(h.feed(60, 501'000 + i), 0u);

    EXPECT_EQ(h.feed(90, 600'000), 1u);
    EXPECT_EQ(h.last().state, AlertState::Firing);
    EXPECT_EQ(h.last().incident_id, 2u);
    EXPECT_EQ(h.feed(50, 601'000), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().incident_id, 2u);
    EXPECT_EQ(h.alerts().size(), 4u);
    EXPECT_TRUE(h.allContinued());
}

TEST(ThresholdRuleTest, FiresOnlyOnceTheConditionHeldForMinDuration) {
    RuleHarness h(hot(30s));
    EXPECT_EQ(h.feed(85, 1'000), 0u);  // condition starts
    EXPECT_EQ(h.feed(86, 11'000), 0u);
    EXPECT_EQ(h.feed(87, 30'999), 0u);  // 29.999 s
    EXPECT_EQ(h.feed(88, 31'000), 1u);  // 30 s
    EXPECT_EQ(h.last().value, 88.0);
    EXPECT_EQ(h.last().time_ms, kWallOffsetMs + 31'000);
    EXPECT_EQ(h.last().message, "temperature above 80 for 30s");
    EXPECT_EQ(h.feed(89, 100'000), 0u);
}

TEST(ThresholdRuleTest, MinDurationRestartsWhenTheConditionBreaks) {
    RuleHarness h(hot(30s));
    EXPECT_EQ(h.feed(85, 0), 0u);
    EXPECT_EQ(h.feed(85, 20'000), 0u);
    EXPECT_EQ(h.feed(75, 25'000), 0u);  // back in: the clock restarts
    EXPECT_EQ(h.feed(85, 26'000), 0u);
    EXPECT_EQ(h.feed(85, 55'000), 0u);  // 29 s since the restart
    EXPECT_EQ(h.feed(85, 56'000), 1u);
}

TEST(ThresholdRuleTest, HysteresisKeepsTheIncidentOpenInsideTheBand) {
    RuleConfig rule = hot();
    rule.hysteresis = 2;
    RuleHarness h(rule);
    EXPECT_EQ(h.feed(81, 0), 1u);
    // Hovering around the threshold, inside the band: neither resolve nor refire.
    const double hovering[] = {79.5, 80.5, 78.01, 80, 79, 82, 78.5};
    std::int64_t t = 1000;
    for (double value : hovering) EXPECT_EQ(h.feed(value, t += 1000), 0u) << value;
    EXPECT_EQ(h.feed(78, t += 1000), 1u);  // exactly above - hysteresis
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().message, "temperature back at or below 78");
    // Entering again needs the threshold itself, not the band.
    EXPECT_EQ(h.feed(80, t += 1000), 0u);
    EXPECT_EQ(h.feed(80.1, t += 1000), 1u);
    EXPECT_EQ(h.last().incident_id, 2u);
}

TEST(ThresholdRuleTest, BelowAndBandWithBothBounds) {
    RuleConfig rule = rule_testing::rule("band", "threshold", "temperature");
    rule.above = 30;
    rule.below = 10;
    rule.hysteresis = 1;
    RuleHarness h(rule);
    EXPECT_EQ(h.feed(20, 0), 0u);
    EXPECT_EQ(h.feed(9, 1000), 1u);
    EXPECT_EQ(h.last().message, "temperature below 10");
    // Swinging to the other side is the same incident.
    EXPECT_EQ(h.feed(35, 2000), 0u);
    EXPECT_EQ(h.feed(30, 3000), 0u);  // inside the thresholds, not the band
    EXPECT_EQ(h.feed(29, 4000), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().message, "temperature back within [11, 29]");
    EXPECT_EQ(h.feed(31, 5000), 1u);
    EXPECT_EQ(h.last().message, "temperature above 30");
    EXPECT_EQ(h.last().incident_id, 2u);
}

TEST(ThresholdRuleTest, ConfiguredMessageSeverityAndFirstIncidentId) {
    RuleConfig rule = hot();
    rule.message = "boiler overheating";
    rule.severity = "critical";
    RuleHarness h({rule_testing::spec(rule)}, 41);
    h.feed(90, 0);
    h.feed(10, 1);
    ASSERT_EQ(h.alerts().size(), 2u);
    for (const shared::Alert& alert : h.alerts()) {
        EXPECT_EQ(alert.message, "boiler overheating");
        EXPECT_EQ(alert.severity, shared::Severity::Critical);
        EXPECT_EQ(alert.incident_id, 41u);
    }
    EXPECT_EQ(h.engine().nextIncidentId(), 42u);
}

}  // namespace
}  // namespace tern::edge
