#pragma once

// Shared by the rule engine tests: a StageCallbacks that records what a stage sends, and a
// harness that drives one engine with injected time (sample mono_ms, ticks), never sleeping.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tern/edge/rules/rule_config.h"
#include "tern/edge/rules/rule_engine.h"
#include "tern/edge/stage.h"
#include "tern/shared/metrics.h"

namespace tern::edge::rule_testing {

class RecordingCallbacks final : public StageCallbacks {
public:
    void emitSample(const Sample& sample) override { samples.push_back(sample); }
    void emitAggregate(const shared::Aggregate& aggregate) override {
        aggregates.push_back(aggregate);
    }
    void raiseAlert(const shared::Alert& alert) override { alerts.push_back(alert); }

    std::vector<Sample> samples;
    std::vector<shared::Aggregate> aggregates;
    std::vector<shared::Alert> alerts;
};

// Wall time runs a fixed distance ahead of monotonic time, so an alert's time_ms shows which
// sample or tick raised it.
inline constexpr std::int64_t kWallOffsetMs = 1'700'000'000'000;
inline constexpr std::uint16_t kSensor = 3;

// A rule of the given type with every other key unset, to be filled in by assignment.
inline RuleConfig rule(std::string id, std::string type, std::string sensor = "temperature") {
    RuleConfig config;
    config.id = std::move(id);
    config.type = std::move(type);
    config.sensor = std::move(sensor);
    return config;
}

inline RuleSpec spec(RuleConfig config, std::uint16_t sensor = kSensor) {
    if (config.sensor.empty()) config.sensor = "temperature";
    return RuleSpec{std::move(config), sensor};
}

class RuleHarness {
public:
    explicit RuleHarness(std::vector<RuleSpec> rules, std::uint64_t first_incident_id = 1)
        : engine_(std::make_unique<RuleEngine>(std::move(rules), metrics_, first_incident_id)) {}
    explicit RuleHarness(RuleConfig rule) : RuleHarness(std::vector<RuleSpec>{spec(rule)}) {}

    // One sample at mono_ms; returns how many alerts it raised.
    std::size_t feed(double value, std::int64_t mono_ms, std::uint16_t sensor = kSensor,
                     shared::Quality quality = shared::Quality::Good) {
        const std::size_t before = out_.alerts.size();
        Sample sample{sensor, kWallOffsetMs + mono_ms, mono_ms, value, quality};
        const Flow flow = engine_->onReading(sample, out_);
        flows_continue_ = flows_continue_ && flow == Flow::Continue;
        return out_.alerts.size() - before;
    }

    std::size_t tick(std::int64_t mono_ms) {
        const std::size_t before = out_.alerts.size();
        engine_->onTick(Tick{kWallOffsetMs + mono_ms, mono_ms}, out_);
        return out_.alerts.size() - before;
    }

    std::size_t reload(std::vector<RuleSpec> rules) {
        const std::size_t before = out_.alerts.size();
        engine_->reload(std::move(rules), out_);
        return out_.alerts.size() - before;
    }

    const std::vector<shared::Alert>& alerts() const { return out_.alerts; }
    const shared::Alert& last() const { return out_.alerts.back(); }
    RuleEngine& engine() { return *engine_; }
    shared::MetricsRegistry& metrics() { return metrics_; }
    // Every sample so far came back Flow::Continue.
    bool allContinued() const { return flows_continue_; }

private:
    shared::MetricsRegistry metrics_;
    RecordingCallbacks out_;
    std::unique_ptr<RuleEngine> engine_;
    bool flows_continue_ = true;
};

}  // namespace tern::edge::rule_testing
