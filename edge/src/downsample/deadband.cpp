#include "tern/edge/downsample/deadband.h"

#include <cmath>

namespace tern::edge {

DeadbandDownsampler::DeadbandDownsampler(Options options)
    : deadband_(options.deadband),
      percent_(options.percent),
      max_interval_ms_(options.max_interval.count()) {}

void DeadbandDownsampler::offer(const Sample& sample, StageCallbacks& out) {
    ++stats_.received;
    if (!has_reference_ || sample.quality != reference_.quality || exceedsDeadband(sample.value) ||
        heartbeatDue(sample.mono_ms)) {
        emit(sample, out);
        return;
    }
    pending_ = sample;
    has_pending_ = true;
}

void DeadbandDownsampler::forceKeep(const Sample& sample, StageCallbacks& /*out*/) {
    ++stats_.forced;
    // The pipeline sends it, so it is what the receiver last saw; an older unsent sample no longer
    // needs a heartbeat.
    setReference(sample);
}

void DeadbandDownsampler::onTick(const Tick& now, StageCallbacks& out) {
    // A silent sensor (no pending sample) gets no heartbeat: repeating the old reading would
    // claim a measurement that was never made.
    if (has_pending_ && heartbeatDue(now.mono_ms)) emit(pending_, out);
}

void DeadbandDownsampler::flush(StageCallbacks& out) {
    if (has_pending_) emit(pending_, out);
}

bool DeadbandDownsampler::exceedsDeadband(double value) const {
    const double reference = reference_.value;
    // NaN compares false with everything, so a change into or out of NaN is tested on its own.
    if (std::isnan(value) || std::isnan(reference)) {
        return std::isnan(value) != std::isnan(reference);
    }
    const double limit = percent_ ? deadband_ / 100.0 * std::fabs(reference) : deadband_;
    return std::fabs(value - reference) > limit;
}

bool DeadbandDownsampler::heartbeatDue(std::int64_t mono_ms) const {
    return max_interval_ms_ > 0 && mono_ms - reference_.mono_ms >= max_interval_ms_;
}

void DeadbandDownsampler::emit(const Sample& sample, StageCallbacks& out) {
    ++stats_.emitted;
    out.emitSample(sample);
    setReference(sample);
}

void DeadbandDownsampler::setReference(const Sample& sample) {
    reference_ = sample;
    has_reference_ = true;
    has_pending_ = false;
}

}  // namespace tern::edge
