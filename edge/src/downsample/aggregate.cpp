#include "tern/edge/downsample/aggregate.h"

#include <algorithm>
#include <cmath>

namespace tern::edge {
namespace {

// How bad a quality is for a window's statistics. A wrong value (Bad) is worse than a doubtful one
// (Uncertain), which is worse than a good value at a doubtful time (TimeUncertain): the window's
// start is wall-clock based anyway, so a doubtful timestamp harms an aggregate least.
int severity(shared::Quality quality) {
    switch (quality) {
        case shared::Quality::Good:
            return 0;
        case shared::Quality::TimeUncertain:
            return 1;
        case shared::Quality::Uncertain:
            return 2;
        case shared::Quality::Bad:
            return 3;
    }
    return 3;  // a value outside the enum (a newer peer): assume the worst
}

}  // namespace

AggregateDownsampler::AggregateDownsampler(std::uint16_t sensor, Options options)
    : sensor_(sensor),
      window_ms_(std::max<std::int64_t>(1, options.window.count())),
      grace_ms_(std::max<std::int64_t>(0, options.grace.count())),
      emit_raw_(options.emit_raw) {}

std::int64_t AggregateDownsampler::windowStart(std::int64_t time_ms, std::int64_t window_ms) {
    std::int64_t quotient = time_ms / window_ms;
    // Division truncates toward zero; windows before 1970 still start at the boundary below.
    if (time_ms % window_ms < 0) --quotient;
    return quotient * window_ms;
}

void AggregateDownsampler::offer(const Sample& sample, StageCallbacks& out) {
    ++stats_.received;
    accept(sample, false, out);
}

void AggregateDownsampler::forceKeep(const Sample& sample, StageCallbacks& out) {
    ++stats_.forced;
    accept(sample, true, out);
}

void AggregateDownsampler::onTick(const Tick& now, StageCallbacks& out) {
    if (open_ && now.time_ms >= start_ms_ + window_ms_ + grace_ms_) close(out);
}

void AggregateDownsampler::flush(StageCallbacks& out) {
    if (open_) close(out);
}

void AggregateDownsampler::accept(const Sample& sample, bool forced, StageCallbacks& out) {
    const std::int64_t start = windowStart(sample.time_ms, window_ms_);
    const bool raw_sent = emit_raw_ && !forced;
    if (raw_sent) {
        ++stats_.emitted;
        out.emitSample(sample);
    }

    // The first instant a sample may have without being late: the open window's start, or the
    // end of the last window sent.
    const bool has_horizon = open_ || closed_any_;
    const std::int64_t horizon = open_ ? start_ms_ : closed_end_ms_;
    if (has_horizon && sample.time_ms < horizon) {
        // Readings arrive a little out of order at most; one more than a whole window (plus the
        // grace) behind means the wall clock stepped back (NTP correcting a clock that ran
        // ahead). Calling all of those late would send everything raw until the clock caught up,
        // so windows restart from the new time instead.
        if (horizon - sample.time_ms > window_ms_ + grace_ms_) {
            ++stats_.clock_steps;
            if (open_) close(out);
            closed_any_ = false;
            open(start);
            add(sample);
            return;
        }
        // Its window was sent already (or skipped over): folding it into the open window would
        // misplace it, and dropping it loses a reading, so it goes out raw on its own.
        ++stats_.late;
        if (!raw_sent && !forced) {
            ++stats_.emitted;
            out.emitSample(sample);
        }
        return;
    }

    if (open_ && start != start_ms_) close(out);  // start > start_ms_ here: a later window
    if (!open_) open(start);
    add(sample);
}

void AggregateDownsampler::open(std::int64_t start_ms) {
    open_ = true;
    start_ms_ = start_ms;
    count_ = 0;
    sum_ = 0.0;
    quality_ = shared::Quality::Good;
}

void AggregateDownsampler::add(const Sample& sample) {
    if (count_ == 0) {
        min_ = max_ = last_ = sample.value;
        last_time_ms_ = sample.time_ms;
    } else {
        // fmin/fmax skip a NaN whichever side it is on, so min and max are NaN only when
        // every reading was; the mean, a sum, does show a NaN.
        min_ = std::fmin(min_, sample.value);
        max_ = std::fmax(max_, sample.value);
        // "last" is the newest reading of the window by its own time, not the last to arrive.
        if (sample.time_ms >= last_time_ms_) {
            last_ = sample.value;
            last_time_ms_ = sample.time_ms;
        }
    }
    ++count_;
    sum_ += sample.value;
    if (severity(sample.quality) > severity(quality_)) quality_ = sample.quality;
}

void AggregateDownsampler::close(StageCallbacks& out) {
    shared::Aggregate aggregate;
    aggregate.sensor = sensor_;
    aggregate.start_ms = start_ms_;
    aggregate.window_ms = static_cast<std::uint32_t>(window_ms_);
    aggregate.count = count_;
    aggregate.min = min_;
    aggregate.max = max_;
    aggregate.mean = sum_ / count_;
    aggregate.last = last_;
    aggregate.quality = quality_;
    open_ = false;
    closed_any_ = true;
    closed_end_ms_ = start_ms_ + window_ms_;
    ++stats_.aggregates;
    out.emitAggregate(aggregate);
}

}  // namespace tern::edge
