#include <gtest/gtest.h>

#include <chrono>

#include "rule_test_support.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using rule_testing::RuleHarness;
using shared::AlertState;

RuleConfig stuck(double tolerance) {
    RuleConfig rule = rule_testing::rule("stuck", "flatline", "pressure");
    rule.duration = 10s;
    rule.tolerance = tolerance;
    return rule;
}

TEST(FlatlineRuleTest, FiresOnceAfterTheDurationAndResolvesOnChange) {
    RuleConfig rule = stuck(kUnsetNumber);  // default tolerance 0
    RuleHarness h(rule);
    EXPECT_EQ(h.feed(5, 0), 0u);
    EXPECT_EQ(h.feed(5, 5'000), 0u);
    EXPECT_EQ(h.feed(5, 9'999), 0u);
    EXPECT_EQ(h.feed(5, 10'000), 1u);
    EXPECT_EQ(h.last().state, AlertState::Firing);
    EXPECT_EQ(h.last().value, 5.0);
    EXPECT_EQ(h.last().message, "pressure flat at 5 for 10s");
    for (int i = 1; i <= 100; ++i) EXPECT_EQ(h.feed(5, 10'000 + i * 1000), 0u);
    EXPECT_EQ(h.feed(5.001, 200'000), 1u);  // any change at tolerance 0
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().incident_id, 1u);
    EXPECT_EQ(h.last().message, "pressure changing again");
    // The flat stretch restarts at the new value.
    EXPECT_EQ(h.feed(5.001, 209'999), 0u);
    EXPECT_EQ(h.feed(5.001, 210'000), 1u);
    EXPECT_EQ(h.last().incident_id, 2u);
}

TEST(FlatlineRuleTest, ChangesWithinToleranceDoNotCountButDriftDoes) {
    RuleHarness h(stuck(0.5));
    EXPECT_EQ(h.feed(20.0, 0), 0u);
    EXPECT_EQ(h.feed(20.4, 2'000), 0u);
    EXPECT_EQ(h.feed(19.6, 4'000), 0u);
    EXPECT_EQ(h.feed(20.5, 6'000), 0u);  // exactly the tolerance: no change
    EXPECT_EQ(h.feed(20.2, 10'000), 1u);
    EXPECT_EQ(h.last().message, "pressure flat at 20 (within 0.5) for 10s");
    EXPECT_EQ(h.feed(20.3, 11'000), 0u);
    EXPECT_EQ(h.feed(19.4, 12'000), 1u);  // 0.6 from where the stretch started
    EXPECT_EQ(h.last().state, AlertState::Resolved);

    // A slow drift: each step within tolerance of the last, but not of the start.
    RuleHarness drift(stuck(0.5));
    double value = 0;
    for (int i = 0; i <= 20; ++i) EXPECT_EQ(drift.feed(value += 0.2, i * 1000), 0u) << i;
}

}  // namespace
}  // namespace tern::edge
