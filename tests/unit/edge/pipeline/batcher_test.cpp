#include "tern/edge/pipeline/batcher.h"

#include <gtest/gtest.h>

namespace tern::edge {
namespace {

struct Recording final : BatchSink {
    std::vector<shared::TelemetryBatch> batches;
    void onBatch(const shared::TelemetryBatch& batch) override { batches.push_back(batch); }
};

Sample sample(std::int64_t i) {
    return Sample{static_cast<std::uint16_t>(i % 3), 1'000'000 + i, i, 0.5 * i};
}

TEST(Batcher, SealsByReadingCount) {
    Recording sink;
    Batcher batcher({10, 1 << 20, std::chrono::hours(1)}, sink);
    for (int i = 0; i < 25; ++i) batcher.add(sample(i));
    ASSERT_EQ(sink.batches.size(), 2u);
    EXPECT_EQ(sink.batches[0].readings.size(), 10u);
    EXPECT_EQ(sink.batches[1].readings.front().time_ms, 1'000'010);
    EXPECT_EQ(batcher.openReadings(), 5u);
    batcher.seal();
    EXPECT_EQ(sink.batches.size(), 3u);
    batcher.seal();  // nothing open: no empty batch
    EXPECT_EQ(sink.batches.size(), 3u);
}

TEST(Batcher, SealsByWorstCaseBytes) {
    Recording sink;
    const std::size_t max_bytes = Batcher::kOverheadBytes + 5 * Batcher::kWorstCaseReadingBytes;
    Batcher batcher({1000, max_bytes, std::chrono::hours(1)}, sink);
    for (int i = 0; i < 12; ++i) batcher.add(sample(i));
    ASSERT_EQ(sink.batches.size(), 2u);
    EXPECT_EQ(sink.batches[0].readings.size(), 5u);
}

TEST(Batcher, SealsByAgeFromTheFirstEntry) {
    Recording sink;
    Batcher batcher({1000, 1 << 20, std::chrono::seconds(10)}, sink);
    batcher.onTick({0, 5'000});  // nothing open: nothing to age
    batcher.add(Sample{0, 0, 6'000, 1.0});
    batcher.onTick({0, 15'999});
    EXPECT_TRUE(sink.batches.empty());
    batcher.onTick({0, 16'000});
    ASSERT_EQ(sink.batches.size(), 1u);
}

TEST(Batcher, AggregatesTravelInTheBatch) {
    Recording sink;
    Batcher batcher({1000, 1 << 20, std::chrono::seconds(10)}, sink);
    batcher.onTick({0, 100'000});
    batcher.add(
        shared::Aggregate{4, 60'000, 60'000, 60, 1.0, 3.0, 2.0, 2.5, shared::Quality::Good});
    batcher.onTick({0, 109'999});
    EXPECT_TRUE(sink.batches.empty());  // age counts from the latest time seen, not from 0
    batcher.onTick({0, 110'000});
    ASSERT_EQ(sink.batches.size(), 1u);
    EXPECT_EQ(sink.batches[0].aggregates.size(), 1u);
    EXPECT_TRUE(sink.batches[0].readings.empty());
}

}  // namespace
}  // namespace tern::edge

namespace tern::edge {
namespace {

// A decoder accepts at most 1024 series and 1024 aggregates: no sealed batch may hold more.
TEST(Batcher, NeverSealsMoreThanADecoderAccepts) {
    Recording sink;
    Batcher batcher({100'000, 1 << 30, std::chrono::hours(1)}, sink);
    for (int i = 0; i < 3000; ++i)
        batcher.add(Sample{static_cast<std::uint16_t>(i), 1'000'000, i, 1.0});
    for (int i = 0; i < 1500; ++i) {
        batcher.add(shared::Aggregate{static_cast<std::uint16_t>(i), 60'000, 60'000, 1, 1.0, 1.0,
                                      1.0, 1.0, shared::Quality::Good});
    }
    batcher.seal();
    for (const auto& batch : sink.batches) {
        EXPECT_LE(batch.readings.size(), 1024u);
        EXPECT_LE(batch.aggregates.size(), 1024u);
    }
    std::size_t readings = 0, aggregates = 0;
    for (const auto& batch : sink.batches) {
        readings += batch.readings.size();
        aggregates += batch.aggregates.size();
    }
    EXPECT_EQ(readings, 3000u);  // nothing lost on the way
    EXPECT_EQ(aggregates, 1500u);
}

// The room for an entry is checked before it is added, so no batch exceeds max_bytes.
TEST(Batcher, NeverExceedsMaxBytes) {
    Recording sink;
    const std::size_t max_bytes = Batcher::kOverheadBytes + 3 * Batcher::kWorstCaseReadingBytes;
    Batcher batcher({1000, max_bytes, std::chrono::hours(1)}, sink);
    batcher.add(Sample{0, 0, 0, 1.0});
    batcher.add(Sample{0, 1, 1, 1.0});
    batcher.add(shared::Aggregate{1, 60'000, 60'000, 1, 1.0, 1.0, 1.0, 1.0, shared::Quality::Good});
    ASSERT_EQ(sink.batches.size(), 1u);  // the aggregate did not fit beside two readings
    EXPECT_EQ(sink.batches[0].readings.size(), 2u);
    EXPECT_TRUE(sink.batches[0].aggregates.empty());
}

}  // namespace
}  // namespace tern::edge
