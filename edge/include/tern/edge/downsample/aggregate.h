#pragma once

// mode = "aggregate": tumbling windows aligned to wall-clock boundaries. A window of length W
// covers [k*W, (k+1)*W) in Unix ms (Sample::time_ms), so with W = 1m every window starts on a
// whole minute whatever time the first sample has, and two gateways' windows line up.
//
// Invariants:
// - At most one window is open; it holds count, min, max, sum, last and the worst quality, a
//   few doubles, so a sample costs no allocation.
// - A window is emitted exactly once, when a sample of a later window arrives, when a tick's wall
//   time reaches its end + grace, or on flush. Its start never repeats unless the wall clock
//   steps back (then clock_steps counts it).
// - No sample is lost: one whose window has already closed (late) goes out raw and is counted in
//   stats().late instead of being folded into a window that was already sent.

#include <chrono>
#include <cstdint>

#include "tern/edge/downsample/stats.h"
#include "tern/edge/downsampler.h"

namespace tern::edge {

class AggregateDownsampler final : public Downsampler {
public:
    struct Options {
        std::chrono::milliseconds window{std::chrono::minutes(1)};  // > 0, fits in uint32 ms
        // How long after a window's end a tick waits for late samples before closing it.
        std::chrono::milliseconds grace{std::chrono::seconds(2)};
        // Also send every sample raw, besides the windows.
        bool emit_raw = false;
    };

    AggregateDownsampler(std::uint16_t sensor, Options options);

    void offer(const Sample& sample, StageCallbacks& out) override;
    void forceKeep(const Sample& sample, StageCallbacks& out) override;
    void onTick(const Tick& now, StageCallbacks& out) override;
    void flush(StageCallbacks& out) override;

    const DownsampleStats& stats() const { return stats_; }

    // floor(time_ms / window) * window, also for times before 1970.
    static std::int64_t windowStart(std::int64_t time_ms, std::int64_t window_ms);

private:
    // forced: the pipeline sends the sample itself, so it is never emitted here.
    void accept(const Sample& sample, bool forced, StageCallbacks& out);
    void open(std::int64_t start_ms);
    void add(const Sample& sample);
    void close(StageCallbacks& out);

    std::uint16_t sensor_;
    std::int64_t window_ms_;
    std::int64_t grace_ms_;
    bool emit_raw_;

    bool open_ = false;
    std::int64_t start_ms_ = 0;
    std::uint32_t count_ = 0;
    double min_ = 0.0;
    double max_ = 0.0;
    double sum_ = 0.0;
    double last_ = 0.0;
    std::int64_t last_time_ms_ = 0;
    shared::Quality quality_ = shared::Quality::Good;

    // End of the newest window closed so far: samples before it are late.
    bool closed_any_ = false;
    std::int64_t closed_end_ms_ = 0;

    DownsampleStats stats_;
};

}  // namespace tern::edge
