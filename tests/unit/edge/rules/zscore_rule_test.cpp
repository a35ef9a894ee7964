#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "rule_test_support.h"
#include "tern/edge/rules/rolling_stats.h"

namespace tern::edge {
namespace {

using rule_testing::RuleHarness;
using shared::AlertState;

// The seed's "3 sigma" temperature rule, with k as a parameter.
RuleConfig sigma(double k, std::int64_t window = 60) {
    RuleConfig rule = rule_testing::rule("temperature-3-sigma", "zscore", "temperature");
    rule.window = window;
    rule.k = k;
    return rule;
}

// Mean and sample standard deviation by the two-pass formula, for reference.
void exactStats(const std::vector<double>& values, double& mean, double& stddev) {
    double sum = 0;
    for (double v : values) sum += v;
    mean = sum / static_cast<double>(values.size());
    double squares = 0;
    for (double v : values) squares += (v - mean) * (v - mean);
    stddev = std::sqrt(squares / static_cast<double>(values.size() - 1));
}

TEST(RollingStatsTest, MatchesTheTwoPassFormulaAsTheWindowSlides) {
    RollingStats stats(5);
    EXPECT_EQ(stats.count(), 0u);
    EXPECT_EQ(stats.mean(), 0.0);
    EXPECT_EQ(stats.variance(), 0.0);
    const std::vector<double> values = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7};
    std::vector<double> window;
    for (double v : values) {
        stats.push(v);
        window.push_back(v);
        if (window.size() > 5) window.erase(window.begin());
        EXPECT_EQ(stats.count(), window.size());
        if (window.size() < 2) continue;
        double mean = 0;
        double stddev = 0;
        exactStats(window, mean, stddev);
        EXPECT_NEAR(stats.mean(), mean, 1e-12);
        EXPECT_NEAR(stats.stddev(), stddev, 1e-12);
    }
}

TEST(RollingStatsTest, StaysAccurateOverAMillionValuesWithALargeOffset) {
    // Around 1e6 with noise of 0.01: Σx² of a 60-value window is ~6e13, where a double's
    // rounding (~0.01) is as large as the whole variance term (60 · 1e-4). Naive sums fail here.
    constexpr std::size_t kWindow = 60;
    RollingStats stats(kWindow);
    std::mt19937_64 random(20240601);
    std::normal_distribution<double> noise(0.0, 0.01);
    std::vector<double> ring(kWindow);
    double worst_mean_error = 0;
    double worst_stddev_error = 0;
    for (std::size_t i = 0; i < 1'000'000; ++i) {
        // A slow drift too, so the reference has to follow the mean.
        const double value = 1e6 + static_cast<double>(i) * 1e-3 + noise(random);
        stats.push(value);
        ring[i % kWindow] = value;
        if (i % 997 == 0 && i >= kWindow) {
            double mean = 0;
            double stddev = 0;
            exactStats(ring, mean, stddev);
            worst_mean_error = std::max(worst_mean_error, std::abs(stats.mean() - mean));
            worst_stddev_error =
                std::max(worst_stddev_error, std::abs(stats.stddev() - stddev) / stddev);
        }
    }
    EXPECT_LT(worst_mean_error, 1e-8);
    EXPECT_LT(worst_stddev_error, 1e-6);  // relative
}

TEST(RollingStatsTest, ConstantWindowHasZeroVarianceNeverNegative) {
    RollingStats stats(10);
    for (int i = 0; i < 1000; ++i) {
        stats.push(1e6 + 0.1);
        ASSERT_GE(stats.variance(), 0.0);
    }
    EXPECT_EQ(stats.stddev(), 0.0);
    EXPECT_DOUBLE_EQ(stats.mean(), 1e6 + 0.1);
}

TEST(ZScoreRuleTest, QuietOnANormalStreamThenFiresOnceOnAnOutlier) {
    // k = 5 so that the random stream itself does not cross (p ~ 1e-5 per sample).
    RuleHarness h(sigma(5));
    std::mt19937_64 random(7);
    std::normal_distribution<double> noise(20.0, 0.5);
    std::int64_t t = 0;
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(h.feed(noise(random), t += 1000), 0u) << i;
    EXPECT_EQ(h.feed(40.0, t += 1000), 1u);
    const shared::Alert firing = h.last();
    EXPECT_EQ(firing.state, AlertState::Firing);
    EXPECT_EQ(firing.value, 40.0);
    EXPECT_NE(firing.message.find("temperature 40 is "), std::string::npos) << firing.message;
    EXPECT_NE(firing.message.find("standard deviations from the mean 20"), std::string::npos)
        << firing.message;
    EXPECT_NE(firing.message.find("of the last 60 samples"), std::string::npos) << firing.message;
    // Back to normal: the next sample resolves (one outlier in 60 widens the window little).
    EXPECT_EQ(h.feed(20.1, t += 1000), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
    EXPECT_EQ(h.last().incident_id, firing.incident_id);
    EXPECT_EQ(h.last().message, "temperature back within 5 standard deviations of the mean");
    for (int i = 0; i < 200; ++i) ASSERT_EQ(h.feed(noise(random), t += 1000), 0u) << i;
    EXPECT_EQ(h.feed(0.0, t += 1000), 1u);
    EXPECT_EQ(h.last().incident_id, firing.incident_id + 1);
}

TEST(ZScoreRuleTest, ThreeSigmaOnGaussianNoiseFiresRarelyAndEveryIncidentResolvesOnce) {
    RuleHarness h(sigma(3));
    std::mt19937_64 random(11);
    std::normal_distribution<double> noise(20.0, 0.5);
    for (int i = 0; i < 20'000; ++i) h.feed(noise(random), i * 1000);
    const std::vector<shared::Alert>& alerts = h.alerts();
    // ~0.3% of a Gaussian is beyond 3 sigma (a little more against an estimated sigma).
    EXPECT_GT(alerts.size(), 2u * 20u);
    EXPECT_LT(alerts.size(), 2u * 200u);
    for (std::size_t i = 0; i < alerts.size(); ++i) {
        EXPECT_EQ(alerts[i].state, i % 2 == 0 ? AlertState::Firing : AlertState::Resolved);
        EXPECT_EQ(alerts[i].incident_id, 1 + i / 2);
    }
}

TEST(ZScoreRuleTest, WaitsForMinSamplesBeforeJudging) {
    RuleHarness h(sigma(3, 10));  // min_samples defaults to window / 2 = 5
    const double warmup[] = {10, 11, 10, 11};
    for (int i = 0; i < 4; ++i) EXPECT_EQ(h.feed(warmup[i], i * 1000), 0u) << i;
    EXPECT_EQ(h.feed(1000, 4000), 0u);   // only four samples before it: not judged
    EXPECT_EQ(h.feed(-5000, 5000), 1u);  // five before it, 1000 among them, still far out

    RuleConfig eager = sigma(3, 10);
    eager.min_samples = 3;
    RuleHarness e(eager);
    e.feed(10, 0);
    e.feed(11, 1000);
    EXPECT_EQ(e.feed(1000, 2000), 0u);  // two before it
    e.feed(10, 3000);
    EXPECT_EQ(e.feed(10.5, 4000), 0u);
    EXPECT_EQ(e.feed(-1e6, 5000), 1u);
}

TEST(ZScoreRuleTest, AStepChangeFiresOnceThenResolvesAsTheWindowAbsorbsIt) {
    RuleHarness h(sigma(3));
    std::mt19937_64 random(3);
    std::uniform_real_distribution<double> noise(-0.1, 0.1);
    std::int64_t t = 0;
    for (int i = 0; i < 120; ++i) ASSERT_EQ(h.feed(20 + noise(random), t += 1000), 0u);
    int resolved_after = -1;
    for (int i = 0; i < 300; ++i) {
        const std::size_t raised = h.feed(25 + noise(random), t += 1000);
        if (raised > 0 && h.last().state == AlertState::Resolved) resolved_after = i;
    }
    ASSERT_EQ(h.alerts().size(), 2u);
    EXPECT_EQ(h.alerts()[0].state, AlertState::Firing);
    EXPECT_GT(h.alerts()[0].value, 24.0);
    EXPECT_EQ(h.alerts()[1].state, AlertState::Resolved);
    EXPECT_EQ(h.alerts()[1].incident_id, h.alerts()[0].incident_id);
    // Outliers join the window, so with k = 3 the new level fits once it fills about a tenth
    // of the window.
    EXPECT_GT(resolved_after, 0);
    EXPECT_LT(resolved_after, 15);
}

TEST(ZScoreRuleTest, ConstantWindowTreatsAnyRealChangeAsAnOutlier) {
    RuleHarness h(sigma(3, 20));
    for (int i = 0; i < 100; ++i) ASSERT_EQ(h.feed(1e6 + 0.1, i * 1000), 0u);
    EXPECT_EQ(h.feed(1e6 + 0.2, 100'000), 1u);
    EXPECT_EQ(h.last().message,
              "temperature 1000000.2 differs from the constant 1000000.1 of the last 20 samples");
}

TEST(ZScoreRuleTest, ConstantWindowIgnoresDifferencesBelowTheEpsilon) {
    RuleHarness h(sigma(3, 20));
    for (int i = 0; i < 100; ++i) ASSERT_EQ(h.feed(1e6 + 0.1, i * 1000), 0u);
    // The epsilon is 1e-9 of the mean: 1e-3 here.
    EXPECT_EQ(h.feed(1e6 + 0.1 + 1e-6, 100'000), 0u);
    RuleHarness zero(sigma(3, 20));
    for (int i = 0; i < 100; ++i) ASSERT_EQ(zero.feed(0.0, i * 1000), 0u);
    EXPECT_EQ(zero.feed(1e-10, 100'000), 0u);  // at least 1e-9 in absolute terms
    EXPECT_EQ(zero.feed(1e-8, 101'000), 1u);
}

TEST(ZScoreRuleTest, StableOverAMillionSamplesAroundOneMillion) {
    RuleHarness h(sigma(3));
    std::mt19937_64 random(5);
    // Bounded noise: its z-scores stay under ~2, so any alert here would be a numerical error.
    std::uniform_real_distribution<double> noise(-0.01, 0.01);
    std::int64_t t = 0;
    std::size_t alerts = 0;
    for (int i = 0; i < 1'000'000; ++i) alerts += h.feed(1e6 + noise(random), t += 10);
    EXPECT_EQ(alerts, 0u);
    // An outlier of 0.1 (~17 standard deviations) still stands out after a million samples.
    EXPECT_EQ(h.feed(1e6 + 0.1, t += 10), 1u);
    EXPECT_EQ(h.last().state, AlertState::Firing);
    EXPECT_EQ(h.feed(1e6, t += 10), 1u);
    EXPECT_EQ(h.last().state, AlertState::Resolved);
}

}  // namespace
}  // namespace tern::edge
