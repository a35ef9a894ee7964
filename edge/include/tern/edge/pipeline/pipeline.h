#pragma once

// The agent's data path on its loop thread:
//
//   sources -> Pipeline::onSample -> rules -> [anomaly context | the sensor's downsampler]
//           -> Batcher -> BatchSink (the store)
//   rules -> AlertSink (the alert lane: alerts leave ahead of telemetry, never batched)
//
// Anomaly context: for every sensor that is downsampled, the pipeline keeps the raw samples the
// downsampler has not released, for `before`. When a rule fires on the sensor, those samples go
// into the batch raw, and so does every sample of the sensor for `after`, whatever its
// downsampling; the downsampler is told (forceKeep) so that its own output stays consistent.

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "tern/edge/downsampler.h"
#include "tern/edge/pipeline/batcher.h"
#include "tern/edge/source.h"
#include "tern/edge/stage.h"
#include "tern/shared/metrics.h"

namespace tern::edge {

class AlertSink {
public:
    virtual ~AlertSink() = default;
    // On the loop thread; gateway_id and sequence are empty (the store assigns them).
    virtual void onAlert(const shared::Alert& alert) = 0;
};

struct ContextWindow {
    std::chrono::milliseconds before{60'000};
    std::chrono::milliseconds after{60'000};
    // Raw samples kept per downsampled sensor for `before`; the oldest go first past this.
    std::size_t max_samples = 600;
};

class Pipeline final : public SampleSink {
public:
    // downsamplers: one per sensor, indexed by sensor; nullptr means raw (no downsampling and
    // no context buffer). rules is usually a RuleEngine.
    Pipeline(Stage& rules, std::vector<std::unique_ptr<Downsampler>> downsamplers,
             ContextWindow context, BatchLimits batch_limits, BatchSink& batches, AlertSink& alerts,
             shared::MetricsRegistry& metrics);

    ~Pipeline() override;
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    void onSample(const Sample& sample) override;
    void onTick(const Tick& now);
    // Releases everything held: downsamplers flush, the open batch is sealed (shutdown).
    void flush();

    std::size_t sensorCount() const;

    // Where stages reconfigured outside the data path report (a rule reload resolving the
    // incidents of removed rules).
    StageCallbacks& callbacks();

private:
    struct SensorState;
    class Callbacks;
    friend class Callbacks;

    void release(const Sample& sample);
    void startContext(const shared::Alert& alert, std::int64_t mono_ms);

    Stage& rules_;
    ContextWindow context_;
    Batcher batcher_;
    AlertSink& alerts_;
    std::vector<SensorState> sensors_;
    std::unique_ptr<Callbacks> callbacks_;
    std::int64_t now_mono_ms_ = 0;

    shared::Counter& received_;
    shared::Counter& sent_;
    shared::Counter& dropped_unknown_sensor_;
    shared::Counter& dropped_non_finite_;
    shared::Counter& dropped_non_finite_aggregate_;
    shared::Counter& context_samples_;
    shared::Counter& alerts_raised_;
};

}  // namespace tern::edge
