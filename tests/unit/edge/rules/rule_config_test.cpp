#include "tern/edge/rules/rule_config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rule_test_support.h"
#include "tern/shared/config.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;

struct RulesFile {
    std::vector<RuleConfig> rules;
};

shared::ConfigTable<RulesFile> schema() {
    return shared::ConfigTable<RulesFile>("", "rules").tables(&RulesFile::rules, ruleTable());
}

shared::ConfigResult<RulesFile> load(const std::string& text) {
    return shared::loadConfigString(text, "edge.toml", schema());
}

std::optional<std::uint16_t> sensorIndex(std::string_view name) {
    if (name == "temperature") return 0;
    if (name == "pressure") return 1;
    return std::nullopt;
}

bool contains(const std::vector<std::string>& errors, const std::string& wanted) {
    for (const std::string& error : errors) {
        if (error == wanted) return true;
    }
    return false;
}

std::string joined(const std::vector<std::string>& errors) {
    std::string text;
    for (const std::string& error : errors) text += error + "\n";
    return text;
}

TEST(RuleConfigTest, LoadsTheSeedThreeSigmaRuleWithEffectiveDefaultsLeftUnset) {
    auto result = load(R"(
[[rule]]
id = "temperature-3-sigma"
sensor = "temperature"
type = "zscore"
window = 60
k = 3
severity = "critical"
)");
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    ASSERT_EQ(result.value().rules.size(), 1u);
    const RuleConfig& rule = result.value().rules[0];
    EXPECT_EQ(rule.id, "temperature-3-sigma");
    EXPECT_EQ(rule.sensor, "temperature");
    EXPECT_EQ(rule.type, "zscore");
    EXPECT_EQ(rule.severity, "critical");
    EXPECT_EQ(rule.window, 60);
    EXPECT_EQ(rule.k, 3.0);
    // Absent keys stay unset, so that validation can tell them from written ones.
    EXPECT_EQ(rule.min_samples, kUnsetCount);
    EXPECT_TRUE(std::isnan(rule.above));
    EXPECT_EQ(rule.min_duration, kUnsetDuration);
    EXPECT_TRUE(validateRule(rule).empty()) << joined(validateRule(rule));
}

TEST(RuleConfigTest, LoadsEveryTypeAndKey) {
    auto result = load(R"(
[[rule]]
id = "hot"
sensor = "temperature"
type = "threshold"
above = 80
below = -10.5
hysteresis = 2
min_duration = "30s"
message = "too hot"
[[rule]]
id = "surge"
sensor = "pressure"
type = "rate_of_change"
max_rate = 5
min_duration = "2s"
severity = "info"
[[rule]]
id = "stuck"
sensor = "pressure"
type = "flatline"
duration = "10m"
tolerance = 0.01
[[rule]]
id = "silent"
sensor = "temperature"
type = "missing"
timeout = "5m"
)");
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const std::vector<RuleConfig>& rules = result.value().rules;
    ASSERT_EQ(rules.size(), 4u);
    EXPECT_EQ(rules[0].above, 80.0);
    EXPECT_EQ(rules[0].below, -10.5);
    EXPECT_EQ(rules[0].hysteresis, 2.0);
    EXPECT_EQ(rules[0].min_duration, 30s);
    EXPECT_EQ(rules[0].message, "too hot");
    EXPECT_EQ(rules[0].severity, "warning");
    EXPECT_EQ(rules[1].max_rate, 5.0);
    EXPECT_EQ(rules[1].min_duration, 2s);
    EXPECT_EQ(rules[2].duration, 10min);
    EXPECT_EQ(rules[2].tolerance, 0.01);
    EXPECT_EQ(rules[3].timeout, 5min);
    EXPECT_TRUE(validateRules(rules).empty()) << joined(validateRules(rules));

    auto specs = resolveRules(rules, sensorIndex);
    ASSERT_TRUE(specs) << specs.error().message();
    ASSERT_EQ(specs.value().size(), 4u);
    EXPECT_EQ(specs.value()[0].sensor, 0);
    EXPECT_EQ(specs.value()[1].sensor, 1);
    EXPECT_EQ(specs.value()[1].config, rules[1]);
}

TEST(RuleConfigTest, TableRejectsUnknownKeysBadIdsTypesAndMissingRequiredKeys) {
    auto result = load(R"(
[[rule]]
id = "Hot Rule"
sensor = "temperature"
type = "threshhold"
above = 80
severity = "urgent"
colour = "red"
[[rule]]
type = "missing"
timeout = "5m"
)");
    ASSERT_FALSE(result);
    std::vector<std::string> errors;
    for (const shared::ConfigError& error : result.error()) errors.push_back(error.format());
    const std::string all = joined(errors);
    EXPECT_NE(all.find(R"(rule[0].id: "Hot Rule": must be 1 to 64 characters)"), std::string::npos)
        << all;
    EXPECT_NE(all.find("rule[0].type: \"threshhold\" is not one of"), std::string::npos) << all;
    EXPECT_NE(all.find("rule[0].severity"), std::string::npos) << all;
    EXPECT_NE(all.find("rule[0].colour: unknown key"), std::string::npos) << all;
    EXPECT_NE(all.find("rule[1].id"), std::string::npos) << all;
    EXPECT_NE(all.find("rule[1].sensor"), std::string::npos) << all;
}

TEST(RuleConfigTest, KeyThatDoesNotApplyToTheTypeIsAnErrorNamingRuleAndKey) {
    RuleConfig rule = rule_testing::rule("hot", "threshold", "temperature");
    rule.above = 80;
    rule.window = 60;
    rule.timeout = 5s;
    const std::vector<std::string> errors = validateRule(rule);
    EXPECT_EQ(errors, (std::vector<std::string>{
                          R"(rule "hot": key "window" does not apply to type "threshold")",
                          R"(rule "hot": key "timeout" does not apply to type "threshold")",
                      }));
}

TEST(RuleConfigTest, OptionalKeysWithDefaultsStillCountAsWrittenForOtherTypes) {
    // k and tolerance have effective defaults, but writing them on the wrong type is a mistake
    // worth reporting: the operator meant something that will not happen.
    RuleConfig rule = rule_testing::rule("stuck", "flatline", "pressure");
    rule.duration = 10min;
    rule.k = 3;
    rule.min_duration = 0s;
    const std::vector<std::string> errors = validateRule(rule);
    EXPECT_TRUE(contains(errors, R"(rule "stuck": key "k" does not apply to type "flatline")"))
        << joined(errors);
    EXPECT_TRUE(
        contains(errors, R"(rule "stuck": key "min_duration" does not apply to type "flatline")"))
        << joined(errors);
    EXPECT_EQ(errors.size(), 2u) << joined(errors);
}

TEST(RuleConfigTest, ThresholdNeedsAboveOrBelow) {
    const RuleConfig rule = rule_testing::rule("hot", "threshold", "temperature");
    EXPECT_EQ(validateRule(rule),
              (std::vector<std::string>{
                  R"(rule "hot": type "threshold" needs key "above" or "below" (or both))"}));
}

TEST(RuleConfigTest, ThresholdBandMustLeaveRoomToResolve) {
    RuleConfig rule = rule_testing::rule("band", "threshold", "temperature");
    rule.above = 10;
    rule.below = 20;
    std::vector<std::string> errors = validateRule(rule);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find(R"(rule "band": key "below" (20.0) must be less than key "above")"),
              std::string::npos)
        << errors[0];

    rule.below = 0;
    rule.hysteresis = 5;
    errors = validateRule(rule);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find(R"(rule "band": key "hysteresis" (5.0) must be less than half)"),
              std::string::npos)
        << errors[0];

    rule.hysteresis = 4.5;
    EXPECT_TRUE(validateRule(rule).empty());
}

TEST(RuleConfigTest, EachTypeNamesTheKeyItNeeds) {
    const auto needs = [](const char* type, const char* key) {
        const RuleConfig rule = rule_testing::rule("r", type, "temperature");
        return validateRule(rule) ==
               std::vector<std::string>{std::string(R"(rule "r": type ")") + type +
                                        R"(" needs key ")" + key + "\""};
    };
    EXPECT_TRUE(needs("rate_of_change", "max_rate"));
    EXPECT_TRUE(needs("zscore", "window"));
    EXPECT_TRUE(needs("flatline", "duration"));
    EXPECT_TRUE(needs("missing", "timeout"));
}

TEST(RuleConfigTest, MinSamplesMustNotExceedWindow) {
    RuleConfig rule = rule_testing::rule("z", "zscore", "temperature");
    rule.window = 10;
    rule.min_samples = 11;
    EXPECT_EQ(validateRule(rule),
              (std::vector<std::string>{
                  R"(rule "z": key "min_samples" (11) must not exceed key "window" (10))"}));
}

TEST(RuleConfigTest, DuplicateIdsAreReported) {
    RuleConfig hot = rule_testing::rule("hot", "threshold", "temperature");
    hot.above = 80;
    RuleConfig other = rule_testing::rule("cold", "threshold", "temperature");
    other.below = 0;
    const std::vector<std::string> errors = validateRules({hot, other, hot});
    EXPECT_EQ(errors, (std::vector<std::string>{
                          R"(rule "hot": duplicate id ([[rule]] entries 0 and 2, counting from 0))",
                      }));
}

TEST(RuleConfigTest, ResolveRulesNamesUnknownSensorsAndReportsEveryProblemAtOnce) {
    RuleConfig hot = rule_testing::rule("hot", "threshold", "temprature");
    hot.above = 80;
    RuleConfig empty = rule_testing::rule("empty", "threshold", "pressure");
    RuleConfig fine = rule_testing::rule("fine", "missing", "pressure");
    fine.timeout = 5s;
    auto result = resolveRules({hot, empty, fine, fine}, sensorIndex);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, "invalid_rules");
    EXPECT_EQ(result.error().action, shared::ErrorAction::Stop);
    EXPECT_EQ(result.error().detail,
              "rule \"hot\": unknown sensor \"temprature\"\n"
              "rule \"empty\": type \"threshold\" needs key \"above\" or \"below\" (or both)\n"
              "rule \"fine\": duplicate id ([[rule]] entries 2 and 3, counting from 0)");
}

TEST(RuleConfigTest, UnsetNumbersCompareEqualSoUnchangedRulesMatchAcrossReloads) {
    RuleConfig a = rule_testing::rule("hot", "threshold", "temperature");
    a.above = 80;
    RuleConfig b = a;
    EXPECT_EQ(a, b);
    b.hysteresis = 1;
    EXPECT_FALSE(a == b);
}

}  // namespace
}  // namespace tern::edge
