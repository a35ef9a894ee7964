#pragma once

// Local anomaly rules: the stage between the sources and the downsamplers that watches each
// sample against the rules of its sensor and raises alerts ahead of the telemetry.
//
// Threads and ownership: every call (onReading, onTick, reload) comes from the agent's loop
// thread. The engine owns its rules and their state; the MetricsRegistry must outlive it.
//
// Alert lifecycle: a rule is either quiet or has one open incident. An incident raises exactly
// one Firing alert when it starts and exactly one Resolved alert when it ends, both with the
// same incident_id; no alert repeats while a condition persists. Incident ids count up from the
// first_incident_id given at construction, one per incident, across reloads.
//
// Hot path: rules are kept sorted by sensor with an offset table indexed by the sample's sensor
// index, so a sample costs one bounds check plus one virtual call per rule of its sensor; no
// lookups by name and no allocation. Only alerts (rare) allocate.
//
// Samples the rules ignore: quality Bad (not a measurement) and non-finite values; both are
// counted in tern_edge_rule_samples_skipped_total{reason} and passed on unchanged, like every
// sample: the engine never consumes one.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tern/edge/rules/rule_config.h"
#include "tern/edge/stage.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"

namespace tern::edge {

class RuleEngine final : public Stage {
public:
    // rules: as resolveRules returns them (a spec that validateRule rejects is not trusted: an
    // unknown type is ignored, out-of-range values are clamped). first_incident_id lets a daemon
    // continue the count it persisted.
    RuleEngine(std::vector<RuleSpec> rules, shared::MetricsRegistry& metrics,
               std::uint64_t first_incident_id = 1);
    ~RuleEngine() override;
    RuleEngine(const RuleEngine&) = delete;
    RuleEngine& operator=(const RuleEngine&) = delete;

    Flow onReading(Sample& sample, StageCallbacks& out) override;
    // Missing-data timeouts expire here.
    void onTick(const Tick& now, StageCallbacks& out) override;

    // Replaces the rule set (SIGHUP). A rule whose id, config and sensor are all unchanged keeps
    // its state: its window, its timers, its open incident. Any other rule starts fresh. A rule
    // that was firing and is removed or changed gets its Resolved alert now, saying so, with its
    // last value and the latest wall time the engine has seen.
    void reload(std::vector<RuleSpec> rules, StageCallbacks& out);

    // The id the next incident will get: what a daemon persists to continue the count.
    std::uint64_t nextIncidentId() const { return next_incident_id_; }
    std::size_t ruleCount() const;
    std::size_t firingCount() const;

private:
    struct Rule;  // defined in rule_engine.cpp with the detectors it holds

    Rule makeRule(RuleSpec spec);
    void install(std::vector<Rule> rules);
    // Opens (fire) or closes the rule's incident and raises its alert; message, when not null,
    // replaces the rule's own text.
    void transition(Rule& rule, bool fire, double value, std::int64_t time_ms, StageCallbacks& out,
                    const std::string* message = nullptr);

    shared::MetricsRegistry& metrics_;
    std::vector<Rule> rules_;  // sorted by sensor
    // Rules of sensor s are rules_[sensor_begin_[s] .. sensor_begin_[s + 1]); one entry past the
    // highest sensor with a rule.
    std::vector<std::uint32_t> sensor_begin_;
    std::vector<std::uint32_t> tick_rules_;  // indexes of the rules that need onTick
    std::uint64_t next_incident_id_;
    // Wall time of the latest sample or tick, for alerts that have neither (reload).
    std::int64_t latest_time_ms_ = 0;
    shared::Alert scratch_alert_;

    shared::Counter& evaluations_;
    shared::Counter& skipped_bad_quality_;
    shared::Counter& skipped_non_finite_;
    shared::Gauge& firing_;
    shared::Gauge& configured_;
};

}  // namespace tern::edge
