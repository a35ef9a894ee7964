#pragma once

// The steps between sources and the batcher: the rule engine, the downsamplers, the anomaly
// context keeper. A stage sees samples on the agent's loop thread; it never blocks, throws, or
// does I/O, and talks back only through StageCallbacks.

#include "tern/edge/sample.h"
#include "tern/shared/messages.h"

namespace tern::edge {

class StageCallbacks {
public:
    virtual ~StageCallbacks() = default;
    // A sample for the next stage: one the stage held back and now releases (swinging door
    // keeps a point until the door closes), or one it made.
    virtual void emitSample(const Sample& sample) = 0;
    // A closed window of a downsampled sensor; it goes into the batch as an Aggregate.
    virtual void emitAggregate(const shared::Aggregate& aggregate) = 0;
    // An alert transition for the priority lane. gateway_id and sequence are left empty: the
    // store assigns the sequence and the agent its id.
    virtual void raiseAlert(const shared::Alert& alert) = 0;
};

// The time a tick is delivered at, on both clocks.
struct Tick {
    std::int64_t time_ms = 0;  // wall clock, Unix ms: aggregate windows align to it
    std::int64_t mono_ms = 0;  // monotonic: timeouts and durations use it
};

enum class Flow {
    Continue,  // pass this sample on to the next stage unchanged
    Consumed,  // the stage keeps it (absorbed in a window, filtered, or held for later)
};

class Stage {
public:
    virtual ~Stage() = default;
    virtual Flow onReading(Sample& sample, StageCallbacks& out) = 0;
    // Called periodically (the agent ticks every few hundred ms), whether or not samples arrive:
    // windows close, timeouts expire.
    virtual void onTick(const Tick& /*now*/, StageCallbacks& /*out*/) {}
};

}  // namespace tern::edge
