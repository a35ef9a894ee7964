#pragma once

// mode = "swinging-door": the historians' swinging door trending (SDT) compression, with the
// error bound made exact.
//
// Guarantee: draw straight lines between consecutive kept points (the points this downsampler
// emits, the points the pipeline sent through forceKeep, and the tail released by flush), with
// Sample::time_ms as the x axis. Every original reading then lies within `error` (value units) of
// that line at its own time. The first and the last reading are always kept.
//
// How: the door pivots on the last kept point P and holds the latest sample H, not yet sent.
// [lo_, hi_] is the set of slopes from P that pass within `error` of every reading strictly
// between P and H. A new sample C extends the segment (H becomes an in-between reading, C the
// held one) only if the slope P->C lies in that set narrowed by H's own band; otherwise the door
// closes: H is released as a kept point and becomes the pivot. Classic SDT closes only when the
// two doors cross, which lets the drawn line P->H miss earlier readings by up to twice the error;
// testing the actual slope P->C keeps the bound exact, at little cost in compression.
//
// Time is not trusted to move forward: a sample whose time_ms is not after the held (or pivot)
// point's releases the held point and is kept itself, so no segment ever runs backwards or has
// zero width with readings inside it. A quality change, a non-finite value and the max_interval
// heartbeat (monotonic clock) also force kept points.
//
// State is two samples and two doubles: no allocation per sample.

#include <chrono>
#include <cstdint>

#include "tern/edge/downsample/stats.h"
#include "tern/edge/downsampler.h"

namespace tern::edge {

class SwingingDoorDownsampler final : public Downsampler {
public:
    struct Options {
        double error = 1.0;  // compression deviation, > 0, in value units
        // Longest time, on the monotonic clock, a sample is held before it goes out; 0 = off.
        std::chrono::milliseconds max_interval{std::chrono::minutes(10)};
    };

    explicit SwingingDoorDownsampler(Options options);

    void offer(const Sample& sample, StageCallbacks& out) override;
    void forceKeep(const Sample& sample, StageCallbacks& out) override;
    void onTick(const Tick& now, StageCallbacks& out) override;
    void flush(StageCallbacks& out) override;

    const DownsampleStats& stats() const { return stats_; }

private:
    void releaseHeld(StageCallbacks& out);
    void keepNow(const Sample& sample, StageCallbacks& out);
    void hold(const Sample& sample);

    double error_;
    std::int64_t max_interval_ms_;

    bool has_pivot_ = false;
    Sample pivot_;  // last kept point
    bool has_held_ = false;
    Sample held_;  // latest sample, not yet sent
    double lo_ = 0.0;
    double hi_ = 0.0;
    std::int64_t last_kept_mono_ms_ = 0;

    DownsampleStats stats_;
};

}  // namespace tern::edge
