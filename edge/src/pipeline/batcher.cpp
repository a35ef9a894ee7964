#include "tern/edge/pipeline/batcher.h"

#include <algorithm>

#include "tern/shared/codec.h"

namespace tern::edge {
namespace {

// A decoder accepts at most this many series and aggregates in a batch; at most this many
// readings also bounds the series (one per sensor present).
const std::size_t kMaxItems = shared::DecodeLimits{}.max_items;

}  // namespace

Batcher::Batcher(BatchLimits limits, BatchSink& sink) : limits_(limits), sink_(sink) {
    limits_.max_readings = std::clamp<std::size_t>(limits_.max_readings, 1, kMaxItems);
    batch_.readings.reserve(limits_.max_readings);
}

void Batcher::noteFirstEntry(std::int64_t mono_ms) {
    if (open_) return;
    open_ = true;
    opened_mono_ms_ = mono_ms;
}

// Seals the open batch first when the entry would take it past max_bytes.
void Batcher::makeRoom(std::size_t bytes) {
    if (open_ && worst_case_bytes_ + bytes > limits_.max_bytes) seal();
}

void Batcher::add(const Sample& sample) {
    makeRoom(kWorstCaseReadingBytes);
    latest_mono_ms_ = std::max(latest_mono_ms_, sample.mono_ms);
    noteFirstEntry(latest_mono_ms_);
    batch_.readings.push_back(toReading(sample));
    worst_case_bytes_ += kWorstCaseReadingBytes;
    if (batch_.readings.size() >= limits_.max_readings) seal();
}

void Batcher::add(const shared::Aggregate& aggregate) {
    makeRoom(kAggregateBytes);
    // Aggregates carry no monotonic time: the batch's age counts from the latest time seen.
    noteFirstEntry(latest_mono_ms_);
    batch_.aggregates.push_back(aggregate);
    worst_case_bytes_ += kAggregateBytes;
    if (batch_.aggregates.size() >= kMaxItems) seal();
}

void Batcher::onTick(const Tick& now) {
    latest_mono_ms_ = std::max(latest_mono_ms_, now.mono_ms);
    if (open_ && now.mono_ms - opened_mono_ms_ >= limits_.max_age.count()) seal();
}

void Batcher::seal() {
    if (batch_.readings.empty() && batch_.aggregates.empty()) return;
    sink_.onBatch(batch_);
    batch_.readings.clear();
    batch_.aggregates.clear();
    worst_case_bytes_ = kOverheadBytes;
    open_ = false;
}

}  // namespace tern::edge
