#include <gtest/gtest.h>

#include <chrono>

#include "rule_test_support.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using rule_testing::kWallOffsetMs;
using rule_testing::RuleHarness;
using shared::AlertState;

RuleConfig silent() {
    RuleConfig rule = rule_testing::rule("silent", "missing", "temperature");
    rule.timeout = 5s;
    return rule;
}

TEST(MissingRuleTest, FiresFromATickAfterTheTimeoutAndResolvesOnTheNextSample) {
    RuleHarness h(silent());
    EXPECT_EQ(h.feed(21.5, 0), 0u);
    EXPECT_EQ(h.tick(2'000), 0u);
    EXPECT_EQ(h.tick(4'999), 0u);
    EXPECT_EQ(h.tick(5'000), 1u);
    const shared::Alert firing = h.last();
    EXPECT_EQ(firing.state, AlertState::Firing);
    EXPECT_EQ(firing.value, 21.5);                     // the last value seen
    EXPECT_EQ(firing.time_ms, kWallOffsetMs + 5'000);  // the tick's wall time
    EXPECT_EQ(firing.message, "no data from temperature for 5s");
    for (int i = 1; i <= 100; ++i) EXPECT_EQ(h.tick(5'000 + i * 250), 0u);

    EXPECT_EQ(h.feed(22, 60'000), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().incident_id, firing.incident_id);
    EXPECT_EQ(h.last().value, 22.0);
    EXPECT_EQ(h.last().time_ms, kWallOffsetMs + 60'000);
    EXPECT_EQ(h.last().message, "temperature reporting again");

    // Samples keep pushing the deadline out.
    for (int i = 1; i <= 10; ++i) {
        EXPECT_EQ(h.feed(22, 60'000 + i * 4'000), 0u);
        EXPECT_EQ(h.tick(60'000 + i * 4'000 + 3'999), 0u);
    }
    EXPECT_EQ(h.tick(100'000 + 5'000), 1u);
    EXPECT_EQ(h.last().incident_id, firing.incident_id + 1);
}

TEST(MissingRuleTest, ASensorThatNeverReportsFiresWithValueZero) {
    RuleHarness h(silent());
    EXPECT_EQ(h.tick(1'000'000), 0u);  // the clock starts at the first tick
    EXPECT_EQ(h.tick(1'004'999), 0u);
    EXPECT_EQ(h.tick(1'005'000), 1u);
    EXPECT_EQ(h.last().value, 0.0);
}

TEST(MissingRuleTest, BadQualitySamplesDoNotCountAsData) {
    RuleHarness h(silent());
    h.feed(1, 0);
    EXPECT_EQ(h.feed(2, 3'000, rule_testing::kSensor, shared::Quality::Bad), 0u);
    EXPECT_EQ(h.tick(5'000), 1u);
    EXPECT_EQ(h.last().value, 1.0);
    EXPECT_EQ(h.feed(3, 6'000, rule_testing::kSensor, shared::Quality::Uncertain), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
}

}  // namespace
}  // namespace tern::edge
