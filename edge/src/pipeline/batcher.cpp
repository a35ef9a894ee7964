#include "tern/edge/pipeline/batcher.h"

#include <algorithm>

namespace tern::edge {

Batcher::Batcher(BatchLimits limits, BatchSink& sink) : limits_(limits), sink_(sink) {
    limits_.max_readings = std::max<std::size_t>(limits_.max_readings, 1);
    batch_.readings.reserve(limits_.max_readings);
}

void Batcher::noteFirstEntry(std::int64_t mono_ms) {
    if (open_) return;
    open_ = true;
    opened_mono_ms_ = mono_ms;
}

void Batcher::add(const Sample& sample) {
    latest_mono_ms_ = std::max(latest_mono_ms_, sample.mono_ms);
    noteFirstEntry(latest_mono_ms_);
    batch_.readings.push_back(toReading(sample));
    worst_case_bytes_ += kWorstCaseReadingBytes;
    sealIfFull();
}

void Batcher::add(const shared::Aggregate& aggregate) {
    // Aggregates carry no monotonic time: the batch's age counts from the latest time seen.
    noteFirstEntry(latest_mono_ms_);
    batch_.aggregates.push_back(aggregate);
    worst_case_bytes_ += kAggregateBytes;
    sealIfFull();
}

void Batcher::sealIfFull() {
    if (batch_.readings.size() >= limits_.max_readings ||
        worst_case_bytes_ + kWorstCaseReadingBytes > limits_.max_bytes) {
        seal();
    }
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
