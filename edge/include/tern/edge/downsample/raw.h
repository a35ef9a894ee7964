#pragma once

// mode = "raw": every sample goes on as offered. The default, and what a sensor whose every
// reading matters (a counter, a valve state) should use.

#include "tern/edge/downsample/stats.h"
#include "tern/edge/downsampler.h"

namespace tern::edge {

class RawDownsampler final : public Downsampler {
public:
    void offer(const Sample& sample, StageCallbacks& out) override;
    void forceKeep(const Sample& sample, StageCallbacks& out) override;
    void onTick(const Tick& now, StageCallbacks& out) override;
    void flush(StageCallbacks& out) override;

    const DownsampleStats& stats() const { return stats_; }

private:
    DownsampleStats stats_;
};

}  // namespace tern::edge
