#pragma once

// Collects readings and window aggregates into one open TelemetryBatch and seals it by reading
// count, by worst-case encoded size, or by age, whichever comes first. The batch buffer is
// reused, so adding a reading allocates nothing once the first batch has been sealed.

#include <chrono>
#include <cstddef>

#include "tern/edge/stage.h"
#include "tern/shared/messages.h"

namespace tern::edge {

// Receives each sealed batch on the loop thread. The batch is only valid during the call: the
// store encodes and commits it (or copies it) before returning. gateway_id and sequence are
// empty; the store assigns the sequence when it commits.
class BatchSink {
public:
    virtual ~BatchSink() = default;
    virtual void onBatch(const shared::TelemetryBatch& batch) = 0;
};

struct BatchLimits {
    // At most 1024, the series and aggregate limit of a decoder (shared::DecodeLimits).
    std::size_t max_readings = 1000;
    // Bound on the batch's worst-case encoded size (kWorstCaseReadingBytes a reading), so a
    // sealed batch always fits the broker's message limit.
    std::size_t max_bytes = 64 * 1024;
    std::chrono::milliseconds max_age{10'000};
};

class Batcher {
public:
    // Each reading costs at most this on the wire: a ten-byte time varint, a ten-byte value
    // varint or an eight-byte double, and its share of a quality run.
    static constexpr std::size_t kWorstCaseReadingBytes = 24;
    static constexpr std::size_t kAggregateBytes = sizeof(shared::Aggregate) + 8;
    static constexpr std::size_t kOverheadBytes = 512;

    Batcher(BatchLimits limits, BatchSink& sink);

    void add(const Sample& sample);
    void add(const shared::Aggregate& aggregate);
    // Seals the open batch when it has reached max_age (monotonic, from its first entry).
    void onTick(const Tick& now);
    // Seals the open batch now, if it holds anything.
    void seal();

    std::size_t openReadings() const { return batch_.readings.size(); }

private:
    void noteFirstEntry(std::int64_t mono_ms);
    void makeRoom(std::size_t bytes);

    BatchLimits limits_;
    BatchSink& sink_;
    shared::TelemetryBatch batch_;
    std::size_t worst_case_bytes_ = kOverheadBytes;
    std::int64_t opened_mono_ms_ = 0;
    std::int64_t latest_mono_ms_ = 0;
    bool open_ = false;
};

}  // namespace tern::edge
