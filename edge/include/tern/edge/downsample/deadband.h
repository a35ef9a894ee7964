#pragma once

// mode = "deadband": report by exception. A sample goes out when it differs from the last one
// sent by more than the deadband (absolute, or a percentage of the last sent value's magnitude),
// when its quality differs from the last sent one, or as a heartbeat once max_interval has passed
// since the last one sent, so that a flat signal still shows it is alive.
//
// Invariants: the reference is the last sample sent, by this downsampler or by the pipeline
// (forceKeep). At most one unsent sample is remembered (the latest), for the heartbeat and flush.

#include <chrono>
#include <cstdint>

#include "tern/edge/downsample/stats.h"
#include "tern/edge/downsampler.h"

namespace tern::edge {

class DeadbandDownsampler final : public Downsampler {
public:
    struct Options {
        double deadband = 0.0;  // >= 0; in value units, or in percent when percent is set
        bool percent = false;
        // Heartbeat, on the monotonic clock; 0 turns it off.
        std::chrono::milliseconds max_interval{std::chrono::minutes(10)};
    };

    explicit DeadbandDownsampler(Options options);

    void offer(const Sample& sample, StageCallbacks& out) override;
    void forceKeep(const Sample& sample, StageCallbacks& out) override;
    void onTick(const Tick& now, StageCallbacks& out) override;
    // Sends the latest unsent sample, so the last value seen is never lost on shutdown.
    void flush(StageCallbacks& out) override;

    const DownsampleStats& stats() const { return stats_; }

private:
    bool exceedsDeadband(double value) const;
    bool heartbeatDue(std::int64_t mono_ms) const;
    void emit(const Sample& sample, StageCallbacks& out);
    void setReference(const Sample& sample);

    double deadband_;
    bool percent_;
    std::int64_t max_interval_ms_;

    bool has_reference_ = false;
    Sample reference_;
    bool has_pending_ = false;
    Sample pending_;

    DownsampleStats stats_;
};

}  // namespace tern::edge
