#include "tern/edge/downsample/aggregate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>

#include "recording_callbacks.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using downsample_testing::RecordingCallbacks;
using downsample_testing::sampleAt;
using shared::Quality;

constexpr std::int64_t kMinute = 60'000;
// 2023-11-14T22:14:00Z: a whole minute, so window starts are easy to read.
constexpr std::int64_t kT0 = 28'333'334 * kMinute;
constexpr std::uint16_t kSensor = 3;

AggregateDownsampler oneMinute(bool emit_raw = false) {
    return AggregateDownsampler(kSensor, {.window = 1min, .grace = 2s, .emit_raw = emit_raw});
}

TEST(AggregateDownsamplerTest, WindowStartsAtTheWallClockBoundary) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 17'000, 1.0), out);  // first sample at :17
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].start_ms, kT0);  // the window still starts at :00
    EXPECT_EQ(out.aggregates[0].window_ms, 60'000u);
    EXPECT_EQ(out.aggregates[0].sensor, kSensor);
}

TEST(AggregateDownsamplerTest, WindowStartIsAFloorAlsoBefore1970) {
    EXPECT_EQ(AggregateDownsampler::windowStart(125'000, kMinute), 120'000);
    EXPECT_EQ(AggregateDownsampler::windowStart(120'000, kMinute), 120'000);
    EXPECT_EQ(AggregateDownsampler::windowStart(0, kMinute), 0);
    EXPECT_EQ(AggregateDownsampler::windowStart(-1, kMinute), -kMinute);
    EXPECT_EQ(AggregateDownsampler::windowStart(-kMinute, kMinute), -kMinute);
}

TEST(AggregateDownsamplerTest, ComputesCountMinMaxMeanLast) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 1'000, 4.0), out);
    aggregate.offer(sampleAt(kT0 + 30'000, -2.0), out);
    aggregate.offer(sampleAt(kT0 + 20'000, 10.0), out);  // out of order inside the window
    aggregate.offer(sampleAt(kT0 + 59'999, 6.0), out);
    EXPECT_TRUE(out.aggregates.empty());  // still open
    EXPECT_TRUE(out.samples.empty());
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    const shared::Aggregate& a = out.aggregates[0];
    EXPECT_EQ(a.count, 4u);
    EXPECT_DOUBLE_EQ(a.min, -2.0);
    EXPECT_DOUBLE_EQ(a.max, 10.0);
    EXPECT_DOUBLE_EQ(a.mean, 4.5);
    EXPECT_DOUBLE_EQ(a.last, 6.0);
    EXPECT_EQ(a.quality, Quality::Good);
}

TEST(AggregateDownsamplerTest, ANaNReadingSpoilsTheMeanButNotMinAndMax) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 1'000, std::numeric_limits<double>::quiet_NaN()), out);
    aggregate.offer(sampleAt(kT0 + 2'000, 3.0), out);
    aggregate.offer(sampleAt(kT0 + 3'000, 1.0), out);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].count, 3u);
    EXPECT_DOUBLE_EQ(out.aggregates[0].min, 1.0);
    EXPECT_DOUBLE_EQ(out.aggregates[0].max, 3.0);
    EXPECT_TRUE(std::isnan(out.aggregates[0].mean));
}

TEST(AggregateDownsamplerTest, LastIsTheNewestByTimeNotByArrival) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 40'000, 1.0), out);
    aggregate.offer(sampleAt(kT0 + 10'000, 2.0), out);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_DOUBLE_EQ(out.aggregates[0].last, 1.0);
}

TEST(AggregateDownsamplerTest, ASampleOfALaterWindowClosesTheOpenOne) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 5'000, 1.0), out);
    aggregate.offer(sampleAt(kT0 + 50'000, 3.0), out);
    aggregate.offer(sampleAt(kT0 + kMinute, 100.0), out);  // exactly on the next boundary
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].start_ms, kT0);
    EXPECT_EQ(out.aggregates[0].count, 2u);
    EXPECT_DOUBLE_EQ(out.aggregates[0].mean, 2.0);

    // A gap of several windows: the next aggregate starts at its own boundary; empty windows
    // send nothing.
    aggregate.offer(sampleAt(kT0 + 5 * kMinute + 1, 7.0), out);
    ASSERT_EQ(out.aggregates.size(), 2u);
    EXPECT_EQ(out.aggregates[1].start_ms, kT0 + kMinute);
    EXPECT_EQ(out.aggregates[1].count, 1u);
    EXPECT_DOUBLE_EQ(out.aggregates[1].last, 100.0);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 3u);
    EXPECT_EQ(out.aggregates[2].start_ms, kT0 + 5 * kMinute);
    EXPECT_TRUE(out.samples.empty());
    EXPECT_EQ(aggregate.stats().aggregates, 3u);
}

TEST(AggregateDownsamplerTest, ATickClosesTheWindowOnlyAfterItsEndPlusGrace) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 59'000, 1.0), out);
    aggregate.onTick(Tick{kT0 + kMinute, 1}, out);  // window over, grace not
    aggregate.onTick(Tick{kT0 + kMinute + 1'999, 2}, out);
    EXPECT_TRUE(out.aggregates.empty());
    // A late reading within the grace still counts in its window.
    aggregate.offer(sampleAt(kT0 + 59'500, 3.0), out);
    aggregate.onTick(Tick{kT0 + kMinute + 2'000, 3}, out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].count, 2u);
    EXPECT_DOUBLE_EQ(out.aggregates[0].last, 3.0);
    // Closed once: more ticks and a flush send nothing more.
    aggregate.onTick(Tick{kT0 + 10 * kMinute, 4}, out);
    aggregate.flush(out);
    EXPECT_EQ(out.aggregates.size(), 1u);
}

TEST(AggregateDownsamplerTest, FlushClosesTheOpenWindow) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.flush(out);  // nothing open: nothing sent
    EXPECT_TRUE(out.aggregates.empty());
    aggregate.offer(sampleAt(kT0 + 1'000, 2.0), out);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].count, 1u);
    aggregate.flush(out);
    EXPECT_EQ(out.aggregates.size(), 1u);
}

TEST(AggregateDownsamplerTest, ALateSampleGoesOutRawAndIsCounted) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 10'000, 1.0), out);
    aggregate.offer(sampleAt(kT0 + kMinute + 1'000, 2.0), out);  // closes the first window
    const Sample late = sampleAt(kT0 + 59'000, 9.0);
    aggregate.offer(late, out);
    ASSERT_EQ(out.samples.size(), 1u);
    EXPECT_EQ(out.samples[0], late);
    EXPECT_EQ(aggregate.stats().late, 1u);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 2u);
    // Not folded into the window that was open when it came.
    EXPECT_EQ(out.aggregates[1].count, 1u);
    EXPECT_DOUBLE_EQ(out.aggregates[1].max, 2.0);
}

TEST(AggregateDownsamplerTest, ASampleForAWindowClosedByTickIsLateNotAnotherWindow) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 10'000, 1.0), out);
    aggregate.onTick(Tick{kT0 + kMinute + 5'000, 1}, out);
    ASSERT_EQ(out.aggregates.size(), 1u);
    aggregate.offer(sampleAt(kT0 + 50'000, 5.0), out);
    aggregate.flush(out);
    // A second aggregate with the same start would double-count the minute downstream.
    EXPECT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.samples.size(), 1u);
    EXPECT_EQ(aggregate.stats().late, 1u);
    // The next window is not late.
    aggregate.offer(sampleAt(kT0 + kMinute + 6'000, 6.0), out);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 2u);
    EXPECT_EQ(out.aggregates[1].start_ms, kT0 + kMinute);
}

TEST(AggregateDownsamplerTest, AWallClockStepBackRestartsWindows) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 60 * kMinute + 1'000, 1.0), out);  // clock an hour ahead
    aggregate.offer(sampleAt(kT0 + 1'000, 2.0), out);                 // NTP corrects it
    aggregate.offer(sampleAt(kT0 + 2'000, 4.0), out);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 2u);
    EXPECT_EQ(out.aggregates[0].start_ms, kT0 + 60 * kMinute);
    EXPECT_EQ(out.aggregates[1].start_ms, kT0);
    EXPECT_EQ(out.aggregates[1].count, 2u);
    EXPECT_TRUE(out.samples.empty());
    EXPECT_EQ(aggregate.stats().clock_steps, 1u);
    EXPECT_EQ(aggregate.stats().late, 0u);
}

TEST(AggregateDownsamplerTest, QualityIsGoodOnlyIfEverySampleWasGoodElseTheWorst) {
    auto windowQuality = [](std::initializer_list<Quality> qualities) {
        auto aggregate = oneMinute();
        RecordingCallbacks out;
        std::int64_t t = kT0;
        for (Quality quality : qualities) aggregate.offer(sampleAt(t += 1'000, 1.0, quality), out);
        aggregate.flush(out);
        EXPECT_EQ(out.aggregates.size(), 1u);
        return out.aggregates.empty() ? Quality::Good : out.aggregates[0].quality;
    };
    EXPECT_EQ(windowQuality({Quality::Good, Quality::Good}), Quality::Good);
    EXPECT_EQ(windowQuality({Quality::Good, Quality::TimeUncertain}), Quality::TimeUncertain);
    EXPECT_EQ(windowQuality({Quality::Uncertain, Quality::TimeUncertain, Quality::Good}),
              Quality::Uncertain);
    EXPECT_EQ(windowQuality({Quality::Bad, Quality::Uncertain, Quality::Good}), Quality::Bad);
    EXPECT_EQ(windowQuality({Quality::Good, Quality::Bad, Quality::TimeUncertain}), Quality::Bad);
}

TEST(AggregateDownsamplerTest, QualityResetsWithEachWindow) {
    auto aggregate = oneMinute();
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 1'000, 1.0, Quality::Bad), out);
    aggregate.offer(sampleAt(kT0 + kMinute + 1'000, 1.0), out);
    aggregate.flush(out);
    ASSERT_EQ(out.aggregates.size(), 2u);
    EXPECT_EQ(out.aggregates[0].quality, Quality::Bad);
    EXPECT_EQ(out.aggregates[1].quality, Quality::Good);
}

TEST(AggregateDownsamplerTest, EmitRawSendsEverySampleBesidesTheWindows) {
    auto aggregate = oneMinute(/*emit_raw=*/true);
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 1'000, 1.0), out);
    aggregate.offer(sampleAt(kT0 + kMinute + 1'000, 2.0), out);
    aggregate.offer(sampleAt(kT0 + 30'000, 3.0), out);  // late: sent once, not twice
    aggregate.flush(out);
    EXPECT_EQ(out.samples.size(), 3u);
    EXPECT_EQ(out.aggregates.size(), 2u);
    EXPECT_EQ(aggregate.stats().late, 1u);
}

TEST(AggregateDownsamplerTest, ForceKeepCountsInTheWindowWithoutEmitting) {
    auto aggregate = oneMinute(/*emit_raw=*/true);
    RecordingCallbacks out;
    aggregate.offer(sampleAt(kT0 + 1'000, 1.0), out);
    aggregate.forceKeep(sampleAt(kT0 + 2'000, 5.0), out);
    aggregate.flush(out);
    EXPECT_EQ(out.samples.size(), 1u);  // only the offered one, because of emit_raw
    ASSERT_EQ(out.aggregates.size(), 1u);
    EXPECT_EQ(out.aggregates[0].count, 2u);
    EXPECT_DOUBLE_EQ(out.aggregates[0].max, 5.0);
    EXPECT_EQ(aggregate.stats().forced, 1u);

    // A forced sample of a closed window is late, and still not emitted: the pipeline sent it.
    aggregate.forceKeep(sampleAt(kT0 + 3'000, 5.0), out);
    EXPECT_EQ(out.samples.size(), 1u);
    EXPECT_EQ(aggregate.stats().late, 1u);
}

}  // namespace
}  // namespace tern::edge
