#pragma once

// What a downsampler did with the samples of its sensor, for the received / sent / dropped
// counters every stage reports. Plain counters, updated on the agent's loop thread that owns the
// downsampler; the pipeline copies them into its metrics.

#include <cstdint>

namespace tern::edge {

struct DownsampleStats {
    std::uint64_t received = 0;    // samples offered
    std::uint64_t forced = 0;      // samples passed to forceKeep (the pipeline sent them itself)
    std::uint64_t emitted = 0;     // samples released through emitSample
    std::uint64_t aggregates = 0;  // windows closed through emitAggregate
    // Aggregate only: samples whose window had already closed; they go out raw, never lost.
    std::uint64_t late = 0;
    // Aggregate only: times the wall clock was seen stepping back, so windows restarted.
    std::uint64_t clock_steps = 0;
};

}  // namespace tern::edge
