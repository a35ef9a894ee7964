#include "tern/edge/rules/rule_engine.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "detectors.h"

namespace tern::edge {

using rules::Change;
using rules::Detector;

struct RuleEngine::Rule {
    RuleSpec spec;
    shared::Severity severity = shared::Severity::Warning;
    std::unique_ptr<Detector> detector;
    bool firing = false;
    std::uint64_t incident_id = 0;  // of the open incident, or the last one
    double last_value = 0.0;        // of the last sample the rule saw; missing alerts carry it
    shared::Counter* fired = nullptr;
    shared::Counter* resolved = nullptr;
};

namespace {

constexpr std::string_view kAlertsHelp =
    "Alert transitions raised by local rules, by rule and state";

}  // namespace

RuleEngine::RuleEngine(std::vector<RuleSpec> rules, shared::MetricsRegistry& metrics,
                       std::uint64_t first_incident_id)
    : metrics_(metrics),
      next_incident_id_(first_incident_id),
      evaluations_(metrics.counter("tern_edge_rule_evaluations_total",
                                   "Samples evaluated by a local rule, one per rule per sample")),
      skipped_bad_quality_(
          metrics.counter("tern_edge_rule_samples_skipped_total",
                          "Samples of sensors with rules that the rules ignored, by reason",
                          {{"reason", "bad_quality"}})),
      skipped_non_finite_(
          metrics.counter("tern_edge_rule_samples_skipped_total",
                          "Samples of sensors with rules that the rules ignored, by reason",
                          {{"reason", "non_finite"}})),
      firing_(metrics.gauge("tern_edge_rules_firing", "Local rules with an open incident")),
      configured_(metrics.gauge("tern_edge_rules_configured", "Local rules installed")) {
    std::vector<Rule> built;
    built.reserve(rules.size());
    for (RuleSpec& spec : rules) {
        Rule rule = makeRule(std::move(spec));
        if (rule.detector) built.push_back(std::move(rule));
    }
    install(std::move(built));
}

RuleEngine::~RuleEngine() = default;

RuleEngine::Rule RuleEngine::makeRule(RuleSpec spec) {
    Rule rule;
    rule.severity = parseRuleSeverity(spec.config.severity).value_or(shared::Severity::Warning);
    rule.detector = rules::makeDetector(spec.config);
    // Registered here, at construction or reload, so the hot path only bumps an atomic.
    rule.fired = &metrics_.counter("tern_edge_rule_alerts_total", kAlertsHelp,
                                   {{"rule", spec.config.id}, {"state", "firing"}});
    rule.resolved = &metrics_.counter("tern_edge_rule_alerts_total", kAlertsHelp,
                                      {{"rule", spec.config.id}, {"state", "resolved"}});
    rule.spec = std::move(spec);
    return rule;
}

void RuleEngine::install(std::vector<Rule> rules) {
    // Stable, so that rules of one sensor run, and alert, in config order.
    std::stable_sort(rules.begin(), rules.end(),
                     [](const Rule& a, const Rule& b) { return a.spec.sensor < b.spec.sensor; });
    rules_ = std::move(rules);
    sensor_begin_.clear();
    tick_rules_.clear();
    if (!rules_.empty()) {
        const std::size_t sensors = static_cast<std::size_t>(rules_.back().spec.sensor) + 1;
        sensor_begin_.assign(sensors + 1, 0);
        // Count per sensor, then prefix sums: sensor_begin_[s] = rules of sensors below s.
        for (const Rule& rule : rules_) ++sensor_begin_[rule.spec.sensor + 1u];
        for (std::size_t s = 1; s < sensor_begin_.size(); ++s) {
            sensor_begin_[s] += sensor_begin_[s - 1];
        }
    }
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        if (rules_[i].detector->needsTicks()) tick_rules_.push_back(static_cast<std::uint32_t>(i));
    }
    configured_.set(static_cast<double>(rules_.size()));
    firing_.set(static_cast<double>(firingCount()));
}

std::size_t RuleEngine::ruleCount() const { return rules_.size(); }

std::size_t RuleEngine::firingCount() const {
    return static_cast<std::size_t>(
        std::count_if(rules_.begin(), rules_.end(), [](const Rule& rule) { return rule.firing; }));
}

Flow RuleEngine::onReading(Sample& sample, StageCallbacks& out) {
    latest_time_ms_ = sample.time_ms;
    const std::size_t sensor = sample.sensor;
    if (sensor + 1 >= sensor_begin_.size()) return Flow::Continue;
    const std::uint32_t begin = sensor_begin_[sensor];
    const std::uint32_t end = sensor_begin_[sensor + 1];
    if (begin == end) return Flow::Continue;
    if (sample.quality == shared::Quality::Bad) {
        skipped_bad_quality_.inc();
        return Flow::Continue;
    }
    if (!std::isfinite(sample.value)) {
        skipped_non_finite_.inc();
        return Flow::Continue;
    }
    evaluations_.inc(end - begin);
    for (std::uint32_t i = begin; i < end; ++i) {
        Rule& rule = rules_[i];
        const Change change = rule.detector->onSample(sample, rule.firing);
        rule.last_value = sample.value;
        if (change != Change::None) {
            transition(rule, change == Change::Fire, sample.value, sample.time_ms, out);
        }
    }
    return Flow::Continue;
}

void RuleEngine::onTick(const Tick& now, StageCallbacks& out) {
    latest_time_ms_ = now.time_ms;
    for (const std::uint32_t index : tick_rules_) {
        Rule& rule = rules_[index];
        const Change change = rule.detector->onTick(now, rule.firing);
        if (change != Change::None) {
            transition(rule, change == Change::Fire, rule.last_value, now.time_ms, out);
        }
    }
}

void RuleEngine::reload(std::vector<RuleSpec> specs, StageCallbacks& out) {
    std::unordered_map<std::string, std::size_t> old_by_id;
    for (std::size_t i = 0; i < rules_.size(); ++i) old_by_id.emplace(rules_[i].spec.config.id, i);
    std::unordered_set<std::string> new_ids;
    for (const RuleSpec& spec : specs) new_ids.insert(spec.config.id);

    std::vector<bool> kept(rules_.size(), false);
    std::vector<Rule> next;
    next.reserve(specs.size());
    for (RuleSpec& spec : specs) {
        const auto old = old_by_id.find(spec.config.id);
        if (old != old_by_id.end() && !kept[old->second] && rules_[old->second].spec == spec) {
            // Unchanged: the detector keeps its window and timers, an open incident stays open.
            kept[old->second] = true;
            next.push_back(std::move(rules_[old->second]));
            continue;
        }
        Rule rule = makeRule(std::move(spec));
        if (rule.detector) next.push_back(std::move(rule));
    }

    // A fresh rule knows nothing of the incident its predecessor opened, so that incident is
    // closed here rather than left open for ever downstream.
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        Rule& rule = rules_[i];
        if (kept[i] || !rule.firing) continue;
        const std::string& id = rule.spec.config.id;
        const std::string message = new_ids.contains(id)
                                        ? "rule \"" + id + "\" changed in the config; resolved"
                                        : "rule \"" + id + "\" removed from the config; resolved";
        transition(rule, false, rule.last_value, latest_time_ms_, out, &message);
    }
    install(std::move(next));
}

void RuleEngine::transition(Rule& rule, bool fire, double value, std::int64_t time_ms,
                            StageCallbacks& out, const std::string* message) {
    if (fire) {
        rule.firing = true;
        rule.incident_id = next_incident_id_++;
        rule.fired->inc();
        firing_.add(1.0);
    } else {
        rule.firing = false;
        rule.resolved->inc();
        firing_.add(-1.0);
    }
    // One scratch alert, its strings reused: raising an alert allocates nothing once they fit.
    shared::Alert& alert = scratch_alert_;
    alert.incident_id = rule.incident_id;
    alert.rule.assign(rule.spec.config.id);
    alert.sensor = rule.spec.sensor;
    alert.severity = rule.severity;
    alert.state = fire ? shared::AlertState::Firing : shared::AlertState::Resolved;
    alert.value = value;
    alert.time_ms = time_ms;
    alert.clock_synced = false;  // the agent knows whether the clock is synchronised
    if (message != nullptr) {
        alert.message.assign(*message);
    } else if (!rule.spec.config.message.empty()) {
        alert.message.assign(rule.spec.config.message);
    } else {
        rule.detector->describe(fire ? Change::Fire : Change::Resolve, rule.spec.config.sensor,
                                alert.message);
    }
    out.raiseAlert(alert);
}

}  // namespace tern::edge
