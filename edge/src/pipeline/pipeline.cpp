#include "tern/edge/pipeline/pipeline.h"

#include <cmath>
#include <limits>

namespace tern::edge {
namespace {

// A sample a downsampler has not released, and whether it already went out as anomaly context.
struct Held {
    Sample sample;
    bool sent_as_context = false;
};

// A fixed-capacity ring of held samples, allocated once: the context buffer must not allocate
// per sample on the hot path.
class SampleRing {
public:
    explicit SampleRing(std::size_t capacity) : slots_(std::max<std::size_t>(capacity, 1)) {}

    void push(const Sample& sample) {
        if (size_ == slots_.size()) popFront();
        slots_[(head_ + size_) % slots_.size()] = Held{sample, false};
        ++size_;
    }
    void popFront() {
        head_ = (head_ + 1) % slots_.size();
        --size_;
    }
    const Held& front() const { return slots_[head_]; }
    Held& at(std::size_t i) { return slots_[(head_ + i) % slots_.size()]; }
    std::size_t size() const { return size_; }

    // Removes the sample a downsampler released; true when it already went out as context.
    // Releases are of recent samples, so the search runs from the newest.
    bool eraseWasSent(const Sample& released) {
        for (std::size_t i = size_; i-- > 0;) {
            if (at(i).sample == released) {
                const bool sent = at(i).sent_as_context;
                for (std::size_t k = i; k + 1 < size_; ++k) at(k) = at(k + 1);
                --size_;
                return sent;
            }
        }
        return false;
    }

private:
    std::vector<Held> slots_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

bool isFinite(const shared::Aggregate& a) {
    return std::isfinite(a.min) && std::isfinite(a.max) && std::isfinite(a.mean) &&
           std::isfinite(a.last);
}

}  // namespace

struct Pipeline::SensorState {
    SensorState(std::unique_ptr<Downsampler> ds, std::size_t context_capacity)
        : downsampler(std::move(ds)), unreleased(downsampler ? context_capacity : 1) {}

    std::unique_ptr<Downsampler> downsampler;  // nullptr: raw
    // Raw samples the downsampler has not released. Those sent as context stay, flagged, until
    // the downsampler releases them, so that exactly they are not sent twice.
    SampleRing unreleased;
    std::int64_t context_until_mono_ms = kNever;
};

class Pipeline::Callbacks final : public StageCallbacks {
public:
    explicit Callbacks(Pipeline& pipeline) : pipeline_(pipeline) {}

    void emitSample(const Sample& sample) override {
        if (sample.sensor >= pipeline_.sensors_.size()) return;
        if (pipeline_.sensors_[sample.sensor].unreleased.eraseWasSent(sample)) return;
        pipeline_.release(sample);
    }
    void emitAggregate(const shared::Aggregate& aggregate) override {
        // A window whose sum overflowed (two readings of 1e308) would make the whole batch
        // unencodable: that window alone is dropped, and counted.
        if (!isFinite(aggregate)) {
            pipeline_.dropped_non_finite_aggregate_.inc();
            return;
        }
        pipeline_.batcher_.add(aggregate);
    }
    void raiseAlert(const shared::Alert& alert) override {
        pipeline_.alerts_raised_.inc();
        pipeline_.alerts_.onAlert(alert);
        if (alert.state == shared::AlertState::Firing)
            pipeline_.startContext(alert, pipeline_.now_mono_ms_);
    }

private:
    Pipeline& pipeline_;
};

Pipeline::Pipeline(Stage& rules, std::vector<std::unique_ptr<Downsampler>> downsamplers,
                   ContextWindow context, BatchLimits batch_limits, BatchSink& batches,
                   AlertSink& alerts, shared::MetricsRegistry& metrics)
    : rules_(rules),
      context_(context),
      batcher_(batch_limits, batches),
      alerts_(alerts),
      callbacks_(std::make_unique<Callbacks>(*this)),
      received_(metrics.counter("tern_edge_pipeline_received_total",
                                "Samples the pipeline received from sources")),
      sent_(metrics.counter("tern_edge_pipeline_sent_total",
                            "Readings the pipeline put into batches")),
      dropped_unknown_sensor_(metrics.counter("tern_edge_pipeline_dropped_total",
                                              "Samples the pipeline dropped, by reason",
                                              {{"reason", "unknown_sensor"}})),
      dropped_non_finite_(metrics.counter("tern_edge_pipeline_dropped_total",
                                          "Samples the pipeline dropped, by reason",
                                          {{"reason", "non_finite"}})),
      dropped_non_finite_aggregate_(metrics.counter("tern_edge_pipeline_dropped_total",
                                                    "Samples the pipeline dropped, by reason",
                                                    {{"reason", "non_finite_aggregate"}})),
      context_samples_(metrics.counter("tern_edge_pipeline_context_readings_total",
                                       "Raw readings sent as anomaly context around firing rules")),
      alerts_raised_(metrics.counter("tern_edge_pipeline_alerts_total",
                                     "Alert transitions sent on the alert lane")) {
    sensors_.reserve(downsamplers.size());
    for (auto& downsampler : downsamplers)
        sensors_.emplace_back(std::move(downsampler), context_.max_samples);
}

Pipeline::~Pipeline() = default;

std::size_t Pipeline::sensorCount() const { return sensors_.size(); }

StageCallbacks& Pipeline::callbacks() { return *callbacks_; }

void Pipeline::release(const Sample& sample) {
    batcher_.add(sample);
    sent_.inc();
}

void Pipeline::onSample(const Sample& incoming) {
    received_.inc();
    if (incoming.sensor >= sensors_.size()) {
        dropped_unknown_sensor_.inc();
        return;
    }
    // The wire refuses NaN and infinities; a sensor that produces one has nothing to report.
    if (!std::isfinite(incoming.value)) {
        dropped_non_finite_.inc();
        return;
    }
    now_mono_ms_ = std::max(now_mono_ms_, incoming.mono_ms);
    Sample sample = incoming;
    if (rules_.onReading(sample, *callbacks_) == Flow::Consumed) return;

    auto& state = sensors_[sample.sensor];
    if (!state.downsampler) {
        release(sample);
        return;
    }
    if (sample.mono_ms <= state.context_until_mono_ms) {
        // The downsampler first releases what it holds (a swinging door's last point), so no
        // held point is lost and the batch stays in time order.
        state.downsampler->forceKeep(sample, *callbacks_);
        release(sample);
        context_samples_.inc();
        return;
    }
    auto& ring = state.unreleased;
    while (ring.size() > 0 &&
           ring.front().sample.mono_ms < sample.mono_ms - context_.before.count()) {
        ring.popFront();
    }
    ring.push(sample);
    state.downsampler->offer(sample, *callbacks_);
}

void Pipeline::startContext(const shared::Alert& alert, std::int64_t mono_ms) {
    if (alert.sensor >= sensors_.size()) return;
    auto& state = sensors_[alert.sensor];
    if (!state.downsampler) return;  // a raw sensor's readings all go out anyway
    auto& ring = state.unreleased;
    for (std::size_t i = 0; i < ring.size(); ++i) {
        Held& held = ring.at(i);
        if (held.sent_as_context || held.sample.mono_ms < mono_ms - context_.before.count())
            continue;
        release(held.sample);
        context_samples_.inc();
        held.sent_as_context = true;
    }
    state.context_until_mono_ms =
        std::max(state.context_until_mono_ms, mono_ms + context_.after.count());
}

void Pipeline::onTick(const Tick& now) {
    now_mono_ms_ = std::max(now_mono_ms_, now.mono_ms);
    rules_.onTick(now, *callbacks_);
    for (auto& state : sensors_) {
        if (state.downsampler) state.downsampler->onTick(now, *callbacks_);
    }
    batcher_.onTick(now);
}

void Pipeline::flush() {
    for (auto& state : sensors_) {
        if (state.downsampler) state.downsampler->flush(*callbacks_);
    }
    batcher_.seal();
}

}  // namespace tern::edge
