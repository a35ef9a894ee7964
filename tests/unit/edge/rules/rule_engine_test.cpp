#include "tern/edge/rules/rule_engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "rule_test_support.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using rule_testing::kWallOffsetMs;
using rule_testing::RuleHarness;
using rule_testing::spec;
using shared::AlertState;

RuleConfig threshold(std::string id, double above) {
    RuleConfig rule = rule_testing::rule(std::move(id), "threshold");
    rule.above = above;
    return rule;
}

RuleConfig zscore(std::string id, double k) {
    RuleConfig rule = rule_testing::rule(std::move(id), "zscore", "temperature");
    rule.window = 10;
    rule.min_samples = 10;
    rule.k = k;
    return rule;
}

bool exposes(RuleHarness& h, const std::string& line) {
    return h.metrics().exposition().find(line + "\n") != std::string::npos;
}

TEST(RuleEngineTest, RoutesSamplesToTheRulesOfTheirSensorOnly) {
    RuleHarness h(
        {spec(threshold("a", 10), 0), spec(threshold("b", 10), 5), spec(threshold("c", 20), 5)});
    EXPECT_EQ(h.engine().ruleCount(), 3u);
    EXPECT_EQ(h.feed(100, 0, 2), 0u);  // a sensor between two with rules
    EXPECT_EQ(h.feed(100, 0, 6), 0u);  // past the highest
    EXPECT_EQ(h.feed(100, 0, 65535), 0u);
    EXPECT_EQ(h.feed(100, 1000, 5), 2u);
    EXPECT_EQ(h.alerts()[0].rule, "b");  // config order within a sensor
    EXPECT_EQ(h.alerts()[1].rule, "c");
    EXPECT_EQ(h.alerts()[0].sensor, 5);
    // Incident ids are unique across rules.
    EXPECT_EQ(h.alerts()[0].incident_id, 1u);
    EXPECT_EQ(h.alerts()[1].incident_id, 2u);
    EXPECT_EQ(h.feed(100, 2000, 0), 1u);
    EXPECT_EQ(h.last().rule, "a");
    EXPECT_EQ(h.last().incident_id, 3u);
    EXPECT_EQ(h.engine().firingCount(), 3u);
    EXPECT_TRUE(h.allContinued());
}

TEST(RuleEngineTest, IgnoresBadQualityAndNonFiniteSamplesAndCountsThem) {
    RuleHarness h(threshold("hot", 80));
    EXPECT_EQ(h.feed(100, 0, rule_testing::kSensor, shared::Quality::Bad), 0u);
    EXPECT_EQ(h.feed(std::numeric_limits<double>::quiet_NaN(), 1), 0u);
    EXPECT_EQ(h.feed(std::numeric_limits<double>::infinity(), 2), 0u);
    EXPECT_EQ(h.feed(100, 3, rule_testing::kSensor, shared::Quality::Uncertain), 1u);
    EXPECT_TRUE(h.allContinued());
    EXPECT_TRUE(exposes(h, R"(tern_edge_rule_samples_skipped_total{reason="bad_quality"} 1)"));
    EXPECT_TRUE(exposes(h, R"(tern_edge_rule_samples_skipped_total{reason="non_finite"} 2)"));
    EXPECT_TRUE(exposes(h, "tern_edge_rule_evaluations_total 1"));
}

TEST(RuleEngineTest, CountsEvaluationsAndAlertsInMetrics) {
    RuleHarness h({spec(threshold("hot", 80)), spec(threshold("warm", 50))});
    EXPECT_TRUE(exposes(h, R"(tern_edge_rule_alerts_total{rule="hot",state="firing"} 0)"));
    EXPECT_TRUE(exposes(h, "tern_edge_rules_configured 2"));
    h.feed(90, 0);
    h.feed(60, 1000);
    h.feed(10, 2000);
    EXPECT_TRUE(exposes(h, "tern_edge_rule_evaluations_total 6"));
    EXPECT_TRUE(exposes(h, R"(tern_edge_rule_alerts_total{rule="hot",state="firing"} 1)"));
    EXPECT_TRUE(exposes(h, R"(tern_edge_rule_alerts_total{rule="hot",state="resolved"} 1)"));
    EXPECT_TRUE(exposes(h, R"(tern_edge_rule_alerts_total{rule="warm",state="firing"} 1)"));
    EXPECT_TRUE(exposes(h, "tern_edge_rules_firing 0"));
    h.feed(60, 3000);
    EXPECT_TRUE(exposes(h, "tern_edge_rules_firing 1"));
}

TEST(RuleEngineTest, IgnoresSpecsOfUnknownType) {
    RuleHarness h({spec(rule_testing::rule("odd", "fft")), spec(threshold("hot", 80))});
    EXPECT_EQ(h.engine().ruleCount(), 1u);
    EXPECT_EQ(h.feed(90, 0), 1u);
}

TEST(RuleEngineReloadTest, UnchangedZScoreRuleKeepsItsWindowAndAChangedOneRewarms) {
    RuleHarness h({spec(zscore("kept", 3)), spec(zscore("changed", 3))});
    for (int i = 0; i < 10; ++i) EXPECT_EQ(h.feed(20 + (i % 2) * 0.1, i * 1000), 0u);
    EXPECT_EQ(
        h.reload({spec(zscore("kept", 3)), spec(zscore("changed", 4)), spec(zscore("new", 3))}),
        0u);
    EXPECT_EQ(h.engine().ruleCount(), 3u);
    // The kept rule judges the very next sample; the others have to fill their windows again.
    EXPECT_EQ(h.feed(40, 10'000), 1u);
    EXPECT_EQ(h.last().rule, "kept");
    EXPECT_EQ(h.last().incident_id, 1u);
}

TEST(RuleEngineReloadTest, ThresholdInItsMinDurationKeepsCountingUnlessChanged) {
    RuleConfig kept = threshold("kept", 80);
    kept.min_duration = 30s;
    RuleConfig changed = threshold("changed", 80);
    changed.min_duration = 30s;
    RuleHarness h({spec(kept), spec(changed)});
    EXPECT_EQ(h.feed(85, 0), 0u);
    EXPECT_EQ(h.feed(85, 20'000), 0u);
    RuleConfig changed_again = changed;
    changed_again.hysteresis = 1;
    EXPECT_EQ(h.reload({spec(kept), spec(changed_again)}), 0u);
    EXPECT_EQ(h.feed(85, 30'000), 1u);
    EXPECT_EQ(h.last().rule, "kept");
    EXPECT_EQ(h.feed(85, 59'999), 0u);
    EXPECT_EQ(h.feed(85, 60'000), 1u);  // 30 s from its first sample after the reload
    EXPECT_EQ(h.last().rule, "changed");
}

TEST(RuleEngineReloadTest, RemovedOrChangedFiringRulesResolveAndUnchangedOnesStayOpen) {
    RuleHarness h({spec(threshold("removed", 80)), spec(threshold("changed", 80)),
                   spec(threshold("kept", 80))},
                  100);
    EXPECT_EQ(h.feed(90, 0), 3u);
    EXPECT_EQ(h.tick(5'000), 0u);  // the latest wall time the engine saw, for the resolves

    RuleConfig changed = threshold("changed", 80);
    changed.severity = "critical";
    EXPECT_EQ(h.reload({spec(threshold("kept", 80)), spec(changed)}), 2u);
    const shared::Alert& removed = h.alerts()[3];
    EXPECT_EQ(removed.rule, "removed");
    EXPECT_EQ(removed.state, AlertState::Resolved);
    EXPECT_EQ(removed.incident_id, 100u);
    EXPECT_EQ(removed.value, 90.0);
    EXPECT_EQ(removed.time_ms, kWallOffsetMs + 5'000);
    EXPECT_EQ(removed.message, "rule \"removed\" removed from the config; resolved");
    const shared::Alert& closed = h.alerts()[4];
    EXPECT_EQ(closed.rule, "changed");
    EXPECT_EQ(closed.state, AlertState::Resolved);
    EXPECT_EQ(closed.incident_id, 101u);
    EXPECT_EQ(closed.message, "rule \"changed\" changed in the config; resolved");
    EXPECT_EQ(h.engine().firingCount(), 1u);

    // The kept incident stays open (no refire); the changed rule opens a new one.
    EXPECT_EQ(h.feed(91, 6'000), 1u);
    EXPECT_EQ(h.last().rule, "changed");
    EXPECT_EQ(h.last().state, AlertState::Firing);
    EXPECT_EQ(h.last().severity, shared::Severity::Critical);
    EXPECT_EQ(h.last().incident_id, 103u);
    EXPECT_EQ(h.feed(10, 7'000), 2u);  // in the order of the new config
    EXPECT_EQ(h.alerts()[6].rule, "kept");
    EXPECT_EQ(h.alerts()[6].state, AlertState::Resolved);
    EXPECT_EQ(h.alerts()[6].incident_id, 102u);
    EXPECT_EQ(h.alerts()[7].rule, "changed");
    EXPECT_EQ(h.alerts()[7].incident_id, 103u);
    EXPECT_EQ(h.engine().nextIncidentId(), 104u);
}

TEST(RuleEngineReloadTest, MovingARuleToAnotherSensorStartsItFresh) {
    RuleHarness h({spec(threshold("hot", 80), 1)});
    EXPECT_EQ(h.feed(90, 0, 1), 1u);
    EXPECT_EQ(h.reload({spec(threshold("hot", 80), 2)}), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.feed(90, 1000, 1), 0u);
    EXPECT_EQ(h.feed(90, 1000, 2), 1u);
}

TEST(RuleEngineReloadTest, KeptMissingRuleKeepsItsTimer) {
    RuleConfig silent = rule_testing::rule("silent", "missing", "temperature");
    silent.timeout = 5s;
    RuleHarness h(silent);
    h.feed(1, 0);
    h.tick(3'000);
    EXPECT_EQ(h.reload({spec(silent), spec(threshold("hot", 80))}), 0u);
    EXPECT_EQ(h.tick(5'000), 1u);
    EXPECT_EQ(h.last().rule, "silent");
    EXPECT_EQ(h.reload({spec(threshold("hot", 80))}), 1u);
    EXPECT_EQ(h.last().rule, "silent");
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.tick(100'000), 0u);
    EXPECT_TRUE(exposes(h, "tern_edge_rules_configured 1"));
    EXPECT_TRUE(exposes(h, "tern_edge_rules_firing 0"));
}

}  // namespace
}  // namespace tern::edge
