#pragma once

// Per-sensor data reduction between the rule engine and the batcher: raw, aggregate (tumbling
// windows aligned to wall-clock boundaries), deadband, swinging door. One Downsampler per
// sensor; the pipeline routes each sample to its sensor's. Runs on the agent's loop thread.

#include <chrono>
#include <memory>
#include <string>

#include "tern/edge/stage.h"
#include "tern/shared/config.h"

namespace tern::edge {

class Downsampler {
public:
    virtual ~Downsampler() = default;

    // A sample of this sensor. Whatever the downsampler releases (this sample, one it held
    // back, a closed window) goes out through out.emitSample / out.emitAggregate.
    virtual void offer(const Sample& sample, StageCallbacks& out) = 0;

    // The pipeline sends this sample raw anyway (anomaly context around a firing rule). The
    // downsampler must not emit it itself, but updates its state as if it had kept it: a
    // deadband's reference, a swinging door's pivot (after releasing the point it held, so the
    // error bound holds across the forced point), an aggregate window's statistics.
    virtual void forceKeep(const Sample& sample, StageCallbacks& out) = 0;

    // Periodic: aggregate windows whose end has passed close; a swinging door or deadband whose
    // max_interval has passed releases its held point.
    virtual void onTick(const Tick& now, StageCallbacks& out) = 0;

    // Releases everything held (shutdown, reload): open windows close, held points go out.
    virtual void flush(StageCallbacks& out) = 0;
};

}  // namespace tern::edge
