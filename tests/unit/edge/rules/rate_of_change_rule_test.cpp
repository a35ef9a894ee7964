#include <gtest/gtest.h>

#include <chrono>

#include "rule_test_support.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using rule_testing::RuleHarness;
using shared::AlertState;

RuleConfig surge(std::chrono::milliseconds min_duration = kUnsetDuration) {
    RuleConfig rule = rule_testing::rule("surge", "rate_of_change", "pressure");
    rule.max_rate = 5;  // per second
    rule.min_duration = min_duration;
    return rule;
}

TEST(RateOfChangeRuleTest, FiresOnceOnAFastChangeAndResolvesWhenItSlows) {
    RuleHarness h(surge());
    EXPECT_EQ(h.feed(100, 0), 0u);     // no rate from a single sample
    EXPECT_EQ(h.feed(104, 1000), 0u);  // 4/s
    EXPECT_EQ(h.feed(109, 2000), 0u);  // exactly 5/s is allowed
    EXPECT_EQ(h.feed(110, 2100), 1u);  // 1 in 100 ms: 10/s
    EXPECT_EQ(h.last().state, AlertState::Firing);
    EXPECT_EQ(h.last().value, 110.0);
    EXPECT_EQ(h.last().message, "pressure changing faster than 5/s (10/s)");
    // Still fast, in both directions: same incident.
    for (int i = 1; i <= 50; ++i) EXPECT_EQ(h.feed(i % 2 == 0 ? 110 : 80, 2100 + i * 1000), 0u);
    EXPECT_EQ(h.feed(81, 60'000), 1u);  // 29 in 7.9 s
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().incident_id, 1u);
    EXPECT_EQ(h.last().message, "pressure rate of change back at or under 5/s");
    EXPECT_EQ(h.feed(81, 61'000), 0u);
    EXPECT_EQ(h.feed(50, 62'000), 1u);
    EXPECT_EQ(h.last().incident_id, 2u);
}

TEST(RateOfChangeRuleTest, UsesMonotonicTimeNotWallTime) {
    RuleHarness h(surge());
    // Two samples whose wall clocks would suggest hours apart; the monotonic gap is 1 s.
    Sample a{rule_testing::kSensor, 0, 10'000, 0.0, shared::Quality::Good};
    Sample b{rule_testing::kSensor, 7'200'000, 11'000, 6.0, shared::Quality::Good};
    rule_testing::RecordingCallbacks out;
    h.engine().onReading(a, out);
    h.engine().onReading(b, out);
    ASSERT_EQ(out.alerts.size(), 1u);
    EXPECT_EQ(out.alerts[0].time_ms, 7'200'000);  // the alert still carries wall time
}

TEST(RateOfChangeRuleTest, SamplesAtTheSameInstantAreNotARate) {
    RuleHarness h(surge());
    EXPECT_EQ(h.feed(0, 1000), 0u);
    EXPECT_EQ(h.feed(1000, 1000), 0u);
    EXPECT_EQ(h.feed(1001, 2000), 0u);  // measured from the later of the two
}

TEST(RateOfChangeRuleTest, MinDurationNeedsTheRateToStayHigh) {
    RuleHarness h(surge(3s));
    double value = 0;
    EXPECT_EQ(h.feed(value, 0), 0u);
    EXPECT_EQ(h.feed(value += 10, 1000), 0u);  // fast from here
    EXPECT_EQ(h.feed(value += 10, 2000), 0u);
    EXPECT_EQ(h.feed(value += 1, 3000), 0u);  // slow: restart
    EXPECT_EQ(h.feed(value += 10, 4000), 0u);
    EXPECT_EQ(h.feed(value += 10, 5000), 0u);
    EXPECT_EQ(h.feed(value += 10, 6000), 0u);
    EXPECT_EQ(h.feed(value += 10, 7000), 1u);  // fast for 3 s since 4000
    EXPECT_EQ(h.last().message, "pressure changing faster than 5/s (10/s) for 3s");
}

}  // namespace
}  // namespace tern::edge
