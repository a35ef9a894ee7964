#include "tern/edge/downsample/swinging_door.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tern::edge {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

}  // namespace

SwingingDoorDownsampler::SwingingDoorDownsampler(Options options)
    : error_(options.error), max_interval_ms_(options.max_interval.count()) {}

void SwingingDoorDownsampler::offer(const Sample& sample, StageCallbacks& out) {
    ++stats_.received;
    if (!has_pivot_) {
        keepNow(sample, out);  // the first reading is always kept
        return;
    }
    if (has_held_ && max_interval_ms_ > 0 &&
        sample.mono_ms - last_kept_mono_ms_ >= max_interval_ms_) {
        releaseHeld(out);
    }

    const Sample& previous = has_held_ ? held_ : pivot_;
    // Both sides of a quality change are kept, so each stretch reconstructs from readings of one
    // quality. A non-finite value has no line through it: it and its neighbours are kept as is.
    if (sample.quality != previous.quality || !std::isfinite(sample.value) ||
        !std::isfinite(previous.value)) {
        if (has_held_) releaseHeld(out);
        keepNow(sample, out);
        return;
    }

    // Time not moving forward: no segment may run backwards or stand vertical over readings, so
    // the held point goes out and this sample is kept as a fresh start.
    if (has_held_ && sample.time_ms <= held_.time_ms) releaseHeld(out);
    if (!has_held_) {
        if (sample.time_ms <= pivot_.time_ms) {
            keepNow(sample, out);
        } else {
            hold(sample);
        }
        return;
    }

    // pivot_.time_ms < held_.time_ms < sample.time_ms. Differences of int64 times are exact in a
    // double for any realistic span.
    const double held_dt = static_cast<double>(held_.time_ms - pivot_.time_ms);
    const double lo = std::max(lo_, (held_.value - error_ - pivot_.value) / held_dt);
    const double hi = std::min(hi_, (held_.value + error_ - pivot_.value) / held_dt);
    const double slope =
        (sample.value - pivot_.value) / static_cast<double>(sample.time_ms - pivot_.time_ms);
    if (lo <= slope && slope <= hi) {
        // The line pivot -> sample passes within error of every reading since the pivot,
        // the held one included: the door stays open and the sample becomes the held point.
        lo_ = lo;
        hi_ = hi;
        held_ = sample;
        return;
    }
    // The door closes. pivot -> held was checked when held arrived, so it is kept.
    releaseHeld(out);
    hold(sample);
}

void SwingingDoorDownsampler::forceKeep(const Sample& sample, StageCallbacks& out) {
    ++stats_.forced;
    // The segment pivot -> held is within bounds; pivot -> forced might not be. Releasing the
    // held point first keeps the bound across the forced point, which then pivots the door
    // without being emitted (the pipeline sends it).
    if (has_held_) releaseHeld(out);
    pivot_ = sample;
    has_pivot_ = true;
    last_kept_mono_ms_ = sample.mono_ms;
}

void SwingingDoorDownsampler::onTick(const Tick& now, StageCallbacks& out) {
    if (has_held_ && max_interval_ms_ > 0 && now.mono_ms - last_kept_mono_ms_ >= max_interval_ms_) {
        releaseHeld(out);
    }
}

void SwingingDoorDownsampler::flush(StageCallbacks& out) {
    if (has_held_) releaseHeld(out);  // the tail is never lost
}

void SwingingDoorDownsampler::releaseHeld(StageCallbacks& out) {
    const Sample held = held_;
    has_held_ = false;
    keepNow(held, out);
}

void SwingingDoorDownsampler::keepNow(const Sample& sample, StageCallbacks& out) {
    ++stats_.emitted;
    out.emitSample(sample);
    pivot_ = sample;
    has_pivot_ = true;
    has_held_ = false;
    last_kept_mono_ms_ = sample.mono_ms;
}

void SwingingDoorDownsampler::hold(const Sample& sample) {
    held_ = sample;
    has_held_ = true;
    // Nothing lies between the pivot and a freshly held point yet: every slope will do.
    lo_ = -kInfinity;
    hi_ = kInfinity;
}

}  // namespace tern::edge
