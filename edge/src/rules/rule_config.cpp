#include "tern/edge/rules/rule_config.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <unordered_map>
#include <utility>

namespace tern::edge {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxRuleIdLength = 64;
// Wide enough for any physical reading, narrow enough that the docs show a readable range.
constexpr shared::Range<double> kAnyValue{-1e15, 1e15};
constexpr shared::Range<double> kAnyMagnitude{0.0, 1e15};

// Rule ids become metric label values and alert fields, so they stay plain.
std::string checkRuleId(const std::string& id) {
    const bool plain_chars = std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    if (id.empty() || id.size() > kMaxRuleIdLength || !plain_chars) {
        return "must be 1 to 64 characters from a-z, 0-9, _ and -";
    }
    return "";
}

bool isSet(double value) { return !std::isnan(value); }
bool isSet(std::chrono::milliseconds value) { return value != kUnsetDuration; }
bool isSet(std::int64_t value) { return value != kUnsetCount; }

// NaN is "unset" here, and two unset keys are the same setting.
bool sameNumber(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string numberText(double value) { return shared::detail::numberForDocs(value); }

// Which rule types a type-specific key belongs to, as a bit per RuleType.
constexpr unsigned bit(RuleType type) { return 1u << static_cast<unsigned>(type); }

struct TypedKey {
    std::string_view name;
    unsigned types;
    bool set;
};

// Every type-specific key with the types it applies to; one place to add a key.
std::vector<TypedKey> typedKeys(const RuleConfig& rule) {
    const unsigned threshold = bit(RuleType::Threshold);
    const unsigned rate = bit(RuleType::RateOfChange);
    const unsigned zscore = bit(RuleType::ZScore);
    return {
        {"above", threshold, isSet(rule.above)},
        {"below", threshold, isSet(rule.below)},
        {"hysteresis", threshold, isSet(rule.hysteresis)},
        {"min_duration", threshold | rate, isSet(rule.min_duration)},
        {"max_rate", rate, isSet(rule.max_rate)},
        {"window", zscore, isSet(rule.window)},
        {"k", zscore, isSet(rule.k)},
        {"min_samples", zscore, isSet(rule.min_samples)},
        {"duration", bit(RuleType::Flatline), isSet(rule.duration)},
        {"tolerance", bit(RuleType::Flatline), isSet(rule.tolerance)},
        {"timeout", bit(RuleType::Missing), isSet(rule.timeout)},
    };
}

void checkTypeSpecific(const RuleConfig& rule, RuleType type,
                       const std::function<void(std::string)>& error) {
    const std::string type_name = quoted(ruleTypeName(type));
    for (const TypedKey& key : typedKeys(rule)) {
        if (key.set && (key.types & bit(type)) == 0) {
            error("key " + quoted(key.name) + " does not apply to type " + type_name);
        }
    }
    auto need = [&](bool set, std::string_view key) {
        if (!set) error("type " + type_name + " needs key " + quoted(key));
    };
    switch (type) {
        case RuleType::Threshold: {
            const bool above = isSet(rule.above);
            const bool below = isSet(rule.below);
            if (!above && !below) {
                error("type " + type_name + " needs key \"above\" or \"below\" (or both)");
            }
            if (above && below) {
                const double hysteresis = isSet(rule.hysteresis) ? rule.hysteresis : 0.0;
                if (rule.below >= rule.above) {
                    error("key \"below\" (" + numberText(rule.below) +
                          ") must be less than key \"above\" (" + numberText(rule.above) +
                          "), or the rule would always fire");
                } else if (rule.above - rule.below <= 2 * hysteresis) {
                    // Resolving needs below + hysteresis <= value <= above - hysteresis.
                    error("key \"hysteresis\" (" + numberText(hysteresis) +
                          ") must be less than half of above - below (" +
                          numberText(rule.above - rule.below) +
                          "), or the alert could never resolve");
                }
            }
            break;
        }
        case RuleType::RateOfChange:
            need(isSet(rule.max_rate), "max_rate");
            break;
        case RuleType::ZScore:
            need(isSet(rule.window), "window");
            if (isSet(rule.window) && isSet(rule.min_samples) && rule.min_samples > rule.window) {
                error("key \"min_samples\" (" + std::to_string(rule.min_samples) +
                      ") must not exceed key \"window\" (" + std::to_string(rule.window) + ")");
            }
            break;
        case RuleType::Flatline:
            need(isSet(rule.duration), "duration");
            break;
        case RuleType::Missing:
            need(isSet(rule.timeout), "timeout");
            break;
    }
}

// Everything validateRule checks about one rule; appends to errors.
void checkRule(const RuleConfig& rule, std::vector<std::string>& errors) {
    const std::string prefix = "rule " + quoted(rule.id) + ": ";
    auto error = [&](std::string text) { errors.push_back(prefix + std::move(text)); };
    if (std::string problem = checkRuleId(rule.id); !problem.empty()) {
        error("key \"id\" " + problem);
    }
    if (rule.sensor.empty()) error("key \"sensor\" is empty");
    if (!parseRuleSeverity(rule.severity)) {
        error("key \"severity\": " + quoted(rule.severity) +
              " is not one of \"info\", \"warning\", \"critical\"");
    }
    const std::optional<RuleType> type = parseRuleType(rule.type);
    if (!type) {
        // Which keys apply depends on the type; without one, nothing more can be said.
        error("key \"type\": " + quoted(rule.type) +
              " is not one of \"threshold\", \"rate_of_change\", \"zscore\", \"flatline\", "
              "\"missing\"");
        return;
    }
    checkTypeSpecific(rule, *type, error);
}

void checkDuplicates(const std::vector<RuleConfig>& rules, std::vector<std::string>& errors) {
    std::unordered_map<std::string_view, std::size_t> first_entry;
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const auto [it, inserted] = first_entry.emplace(rules[i].id, i);
        if (!inserted) {
            errors.push_back("rule " + quoted(rules[i].id) + ": duplicate id ([[rule]] entries " +
                             std::to_string(it->second) + " and " + std::to_string(i) +
                             ", counting from 0)");
        }
    }
}

}  // namespace

bool operator==(const RuleConfig& a, const RuleConfig& b) {
    return a.id == b.id && a.sensor == b.sensor && a.type == b.type && a.severity == b.severity &&
           a.message == b.message && sameNumber(a.above, b.above) && sameNumber(a.below, b.below) &&
           sameNumber(a.hysteresis, b.hysteresis) && a.min_duration == b.min_duration &&
           sameNumber(a.max_rate, b.max_rate) && a.window == b.window && sameNumber(a.k, b.k) &&
           a.min_samples == b.min_samples && a.duration == b.duration &&
           sameNumber(a.tolerance, b.tolerance) && a.timeout == b.timeout;
}

shared::ConfigTable<RuleConfig> ruleTable() {
    const shared::Range<std::chrono::milliseconds> kPeriod{100ms, 30 * 24h};
    return shared::ConfigTable<RuleConfig>(
               "rule", "A local anomaly rule on one sensor; see docs/edge-rules.md")
        .string("id", &RuleConfig::id, "", "unique name of the rule, [a-z0-9_-]; alerts carry it",
                {.check = checkRuleId})
        .required()
        .string("sensor", &RuleConfig::sensor, "", "name of the [[sensor]] the rule watches")
        .required()
        .string("type", &RuleConfig::type, "", "what the rule detects",
                {.one_of = {"threshold", "rate_of_change", "zscore", "flatline", "missing"}})
        .required()
        .string("severity", &RuleConfig::severity, "warning", "severity of the rule's alerts",
                {.one_of = {"info", "warning", "critical"}})
        .string("message", &RuleConfig::message, "",
                "alert text; empty: generated from the rule and the sensor")
        // The type-specific keys below default to "unset" (nan, -1ms, -1): see rule_config.h.
        .number("above", &RuleConfig::above, kUnsetNumber, kAnyValue, "sensor unit",
                "threshold: fires when the value is greater than this")
        .number("below", &RuleConfig::below, kUnsetNumber, kAnyValue, "sensor unit",
                "threshold: fires when the value is less than this")
        .number("hysteresis", &RuleConfig::hysteresis, kUnsetNumber, kAnyMagnitude, "sensor unit",
                "threshold: resolves only once the value is back past the threshold by this "
                "much; unset means 0")
        .duration("min_duration", &RuleConfig::min_duration, kUnsetDuration, {0ms, 7 * 24h},
                  "threshold, rate_of_change: how long the condition must hold, by the "
                  "monotonic clock, before the rule fires; unset means 0s")
        .number("max_rate", &RuleConfig::max_rate, kUnsetNumber, kAnyMagnitude,
                "sensor unit per second",
                "rate_of_change: fires when |change| / elapsed time between consecutive samples "
                "exceeds this")
        .integer("window", &RuleConfig::window, kUnsetCount, {2, kMaxZScoreWindow}, "samples",
                 "zscore: how many previous samples the mean and standard deviation cover")
        .number("k", &RuleConfig::k, kUnsetNumber, {0.1, 1000.0}, "standard deviations",
                "zscore: fires when the value is more than k standard deviations from the mean; "
                "unset means 3")
        .integer("min_samples", &RuleConfig::min_samples, kUnsetCount, {2, kMaxZScoreWindow},
                 "samples",
                 "zscore: samples in the window before the rule judges; unset means window / 2, "
                 "at least 2")
        .duration("duration", &RuleConfig::duration, kUnsetDuration, kPeriod,
                  "flatline: how long the value must stay within tolerance before the rule fires")
        .number("tolerance", &RuleConfig::tolerance, kUnsetNumber, kAnyMagnitude, "sensor unit",
                "flatline: changes up to this much do not count as a change; unset means 0")
        .duration("timeout", &RuleConfig::timeout, kUnsetDuration, kPeriod,
                  "missing: fires when no sample of the sensor arrived for this long");
}

std::optional<RuleType> parseRuleType(std::string_view text) {
    if (text == "threshold") return RuleType::Threshold;
    if (text == "rate_of_change") return RuleType::RateOfChange;
    if (text == "zscore") return RuleType::ZScore;
    if (text == "flatline") return RuleType::Flatline;
    if (text == "missing") return RuleType::Missing;
    return std::nullopt;
}

std::string_view ruleTypeName(RuleType type) {
    switch (type) {
        case RuleType::Threshold:
            return "threshold";
        case RuleType::RateOfChange:
            return "rate_of_change";
        case RuleType::ZScore:
            return "zscore";
        case RuleType::Flatline:
            return "flatline";
        case RuleType::Missing:
            return "missing";
    }
    return "unknown";
}

std::optional<shared::Severity> parseRuleSeverity(std::string_view text) {
    if (text == "info") return shared::Severity::Info;
    if (text == "warning") return shared::Severity::Warning;
    if (text == "critical") return shared::Severity::Critical;
    return std::nullopt;
}

std::vector<std::string> validateRule(const RuleConfig& rule) {
    std::vector<std::string> errors;
    checkRule(rule, errors);
    return errors;
}

std::vector<std::string> validateRules(const std::vector<RuleConfig>& rules) {
    std::vector<std::string> errors;
    for (const RuleConfig& rule : rules) checkRule(rule, errors);
    checkDuplicates(rules, errors);
    return errors;
}

shared::Result<std::vector<RuleSpec>> resolveRules(
    const std::vector<RuleConfig>& rules,
    const std::function<std::optional<std::uint16_t>(std::string_view)>& sensor_index) {
    std::vector<std::string> errors;
    std::vector<RuleSpec> specs;
    specs.reserve(rules.size());
    for (const RuleConfig& rule : rules) {
        checkRule(rule, errors);
        std::optional<std::uint16_t> index;
        if (!rule.sensor.empty()) {
            index = sensor_index(rule.sensor);
            if (!index) {
                errors.push_back("rule " + quoted(rule.id) + ": unknown sensor " +
                                 quoted(rule.sensor));
            }
        }
        specs.push_back(RuleSpec{rule, index.value_or(0)});
    }
    checkDuplicates(rules, errors);
    if (!errors.empty()) {
        std::string detail;
        for (const std::string& error : errors) detail += (detail.empty() ? "" : "\n") + error;
        return shared::Error::stop("invalid_rules", std::move(detail));
    }
    return specs;
}

}  // namespace tern::edge
