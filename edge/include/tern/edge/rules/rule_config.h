#pragma once

// The [[rule]] entries of the edge config: what each local anomaly rule watches and when it
// fires. Loading happens in two steps, as for every component:
//   1. ruleTable() binds one [[rule]] table (types, ranges, unknown keys, required keys);
//   2. resolveRules() checks what a flat table cannot (a key that does not apply to the rule's
//      type, duplicate ids, unknown sensors) and maps sensor names to the indexes samples carry.
//
// The config tables cannot tell whether a key was written or took its default, so every
// type-specific key defaults to an "unset" value that no config file can produce (kUnsetNumber,
// kUnsetDuration, kUnsetCount); its effective default is applied when the rule is built. That is
// what lets validateRule() say `rule "hot": key "window" does not apply to type "threshold"`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/shared/config.h"
#include "tern/shared/messages.h"
#include "tern/shared/result.h"

namespace tern::edge {

enum class RuleType : std::uint8_t { Threshold, RateOfChange, ZScore, Flatline, Missing };

// "not set" for each kind of type-specific key; outside every range the table accepts.
inline constexpr double kUnsetNumber = std::numeric_limits<double>::quiet_NaN();
inline constexpr std::chrono::milliseconds kUnsetDuration{-1};
inline constexpr std::int64_t kUnsetCount = -1;

// Effective defaults of optional type-specific keys.
inline constexpr double kDefaultZScoreK = 3.0;
inline constexpr double kDefaultFlatlineTolerance = 0.0;
inline constexpr double kDefaultHysteresis = 0.0;

// Upper bound on a z-score window: the ring buffer is allocated up front, 8 bytes per sample.
inline constexpr std::int64_t kMaxZScoreWindow = 10000;

// One [[rule]] table as written. Strings stay strings (type, severity) so that the table can
// list the allowed values; parseRuleType / parseRuleSeverity turn them into enums.
struct RuleConfig {
    std::string id;
    std::string sensor;  // the [[sensor]] name
    std::string type;
    std::string severity = "warning";
    std::string message;  // empty: generated from the rule

    // threshold
    double above = kUnsetNumber;
    double below = kUnsetNumber;
    double hysteresis = kUnsetNumber;
    // threshold, rate_of_change
    std::chrono::milliseconds min_duration = kUnsetDuration;
    // rate_of_change
    double max_rate = kUnsetNumber;
    // zscore
    std::int64_t window = kUnsetCount;
    double k = kUnsetNumber;
    std::int64_t min_samples = kUnsetCount;
    // flatline
    std::chrono::milliseconds duration = kUnsetDuration;
    double tolerance = kUnsetNumber;
    // missing
    std::chrono::milliseconds timeout = kUnsetDuration;

    // Unset numbers (NaN) compare equal to each other, so that an unchanged rule is equal to
    // itself across a reload.
    friend bool operator==(const RuleConfig& a, const RuleConfig& b);
};

// A rule ready for the engine: its config and the index of its sensor, as samples carry it.
struct RuleSpec {
    RuleConfig config;
    std::uint16_t sensor = 0;

    friend bool operator==(const RuleSpec&, const RuleSpec&) = default;
};

// One [[rule]] element; the agent's schema adds it with .tables(&EdgeConfig::rules, ruleTable()).
shared::ConfigTable<RuleConfig> ruleTable();

std::optional<RuleType> parseRuleType(std::string_view text);
std::string_view ruleTypeName(RuleType type);
std::optional<shared::Severity> parseRuleSeverity(std::string_view text);

// What ruleTable() cannot check about one rule, one message per problem, each naming the rule
// id and the key: keys that do not apply to the type, keys the type needs, keys that contradict
// each other. Empty when the rule is valid.
std::vector<std::string> validateRule(const RuleConfig& rule);

// validateRule for each rule, plus duplicate ids.
std::vector<std::string> validateRules(const std::vector<RuleConfig>& rules);

// Validates the rules and maps each sensor name to its index (nullopt: no such sensor). On any
// problem, returns Error::stop("invalid_rules") whose detail lists every problem, one per line.
shared::Result<std::vector<RuleSpec>> resolveRules(
    const std::vector<RuleConfig>& rules,
    const std::function<std::optional<std::uint16_t>(std::string_view)>& sensor_index);

}  // namespace tern::edge
