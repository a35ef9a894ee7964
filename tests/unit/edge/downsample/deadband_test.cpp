#include "tern/edge/downsample/deadband.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "recording_callbacks.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using downsample_testing::RecordingCallbacks;
using downsample_testing::sampleAt;
using downsample_testing::sampleAtMono;
using shared::Quality;

std::vector<double> values(const RecordingCallbacks& out) {
    std::vector<double> result;
    for (const Sample& sample : out.samples) result.push_back(sample.value);
    return result;
}

TEST(DeadbandDownsamplerTest, FirstSampleIsAlwaysEmitted) {
    DeadbandDownsampler deadband({.deadband = 1000.0, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    deadband.offer(sampleAt(1000, 5.0), out);
    EXPECT_EQ(values(out), std::vector<double>{5.0});
}

TEST(DeadbandDownsamplerTest, AbsoluteEmitsOnlyChangesBeyondTheBand) {
    DeadbandDownsampler deadband({.deadband = 0.5, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    std::int64_t t = 0;
    // The reference is the last emitted value, not the last seen: slow drift is caught.
    for (double v : {10.0, 10.3, 10.5, 10.6, 10.9, 11.2, 10.75, 10.69, 10.0}) {
        deadband.offer(sampleAt(t += 1000, v), out);
    }
    EXPECT_EQ(values(out), (std::vector<double>{10.0, 10.6, 11.2, 10.69, 10.0}));
    EXPECT_EQ(deadband.stats().received, 9u);
    EXPECT_EQ(deadband.stats().emitted, 5u);
}

TEST(DeadbandDownsamplerTest, ZeroBandEmitsEveryChange) {
    DeadbandDownsampler deadband({.deadband = 0.0, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    std::int64_t t = 0;
    for (double v : {1.0, 1.0, 2.0, 2.0, 2.0, 1.0}) deadband.offer(sampleAt(t += 1000, v), out);
    EXPECT_EQ(values(out), (std::vector<double>{1.0, 2.0, 1.0}));
}

TEST(DeadbandDownsamplerTest, PercentIsOfTheLastEmittedMagnitude) {
    DeadbandDownsampler deadband({.deadband = 10.0, .percent = true, .max_interval = 0ms});
    RecordingCallbacks out;
    std::int64_t t = 0;
    // 10% of 100 is 10; then 10% of 111 is 11.1; then 10% of |-50| is 5.
    for (double v : {100.0, 109.0, 90.5, 110.0, 111.0, 121.0, 122.2, -50.0, -54.0, -56.0}) {
        deadband.offer(sampleAt(t += 1000, v), out);
    }
    EXPECT_EQ(values(out), (std::vector<double>{100.0, 111.0, 122.2, -50.0, -56.0}));
}

TEST(DeadbandDownsamplerTest, PercentOfZeroEmitsAnyChange) {
    DeadbandDownsampler deadband({.deadband = 50.0, .percent = true, .max_interval = 0ms});
    RecordingCallbacks out;
    std::int64_t t = 0;
    for (double v : {0.0, 0.0, 0.001}) deadband.offer(sampleAt(t += 1000, v), out);
    EXPECT_EQ(values(out), (std::vector<double>{0.0, 0.001}));
}

TEST(DeadbandDownsamplerTest, AQualityChangeIsEmittedWhateverTheValue) {
    DeadbandDownsampler deadband({.deadband = 100.0, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    deadband.offer(sampleAt(1000, 1.0), out);
    deadband.offer(sampleAt(2000, 1.0, Quality::Uncertain), out);
    deadband.offer(sampleAt(3000, 1.0, Quality::Uncertain), out);
    deadband.offer(sampleAt(4000, 1.0), out);
    ASSERT_EQ(out.samples.size(), 3u);
    EXPECT_EQ(out.samples[1].quality, Quality::Uncertain);
    EXPECT_EQ(out.samples[2].time_ms, 4000);
}

TEST(DeadbandDownsamplerTest, NaNIsAChangeAndSoIsRecovery) {
    DeadbandDownsampler deadband({.deadband = 1.0, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (double v : {1.0, nan, nan, 1.0, 1.5}) deadband.offer(sampleAt(1000, v), out);
    ASSERT_EQ(out.samples.size(), 3u);
    EXPECT_TRUE(std::isnan(out.samples[1].value));
    EXPECT_EQ(out.samples[2].value, 1.0);
}

TEST(DeadbandDownsamplerTest, HeartbeatOnASampleAfterMaxInterval) {
    DeadbandDownsampler deadband({.deadband = 1.0, .percent = false, .max_interval = 10s});
    RecordingCallbacks out;
    // Wall time is frozen (no NTP yet); the heartbeat goes by the monotonic clock.
    for (std::int64_t mono = 0; mono <= 25'000; mono += 1'000) {
        deadband.offer(sampleAtMono(5, mono, 3.0), out);
    }
    ASSERT_EQ(out.samples.size(), 3u);
    EXPECT_EQ(out.samples[0].mono_ms, 0);
    EXPECT_EQ(out.samples[1].mono_ms, 10'000);
    EXPECT_EQ(out.samples[2].mono_ms, 20'000);
}

TEST(DeadbandDownsamplerTest, HeartbeatOnATickSendsTheLatestUnsentSample) {
    DeadbandDownsampler deadband({.deadband = 1.0, .percent = false, .max_interval = 10s});
    RecordingCallbacks out;
    deadband.offer(sampleAtMono(1000, 0, 3.0), out);
    deadband.offer(sampleAtMono(2000, 1'000, 3.1), out);
    deadband.offer(sampleAtMono(3000, 2'000, 3.2), out);
    deadband.onTick(Tick{9'000, 9'999}, out);
    EXPECT_EQ(out.samples.size(), 1u);
    deadband.onTick(Tick{10'000, 10'000}, out);
    ASSERT_EQ(out.samples.size(), 2u);
    EXPECT_EQ(out.samples[1].value, 3.2);
    // Nothing unsent: a silent sensor is not made to look alive.
    deadband.onTick(Tick{50'000, 50'000}, out);
    EXPECT_EQ(out.samples.size(), 2u);
}

TEST(DeadbandDownsamplerTest, MaxIntervalZeroTurnsTheHeartbeatOff) {
    DeadbandDownsampler deadband({.deadband = 1.0, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    deadband.offer(sampleAtMono(0, 0, 3.0), out);
    deadband.offer(sampleAtMono(0, 1'000'000, 3.0), out);
    deadband.onTick(Tick{0, 5'000'000}, out);
    EXPECT_EQ(out.samples.size(), 1u);
}

TEST(DeadbandDownsamplerTest, ForceKeepResetsTheReferenceWithoutEmitting) {
    DeadbandDownsampler deadband({.deadband = 1.0, .percent = false, .max_interval = 10s});
    RecordingCallbacks out;
    deadband.offer(sampleAtMono(0, 0, 0.0), out);
    deadband.offer(sampleAtMono(1, 1'000, 0.5), out);  // unsent
    deadband.forceKeep(sampleAtMono(2, 2'000, 5.0), out);
    EXPECT_EQ(out.samples.size(), 1u);
    // The forced sample is what the receiver saw last: the unsent 0.5 before it is forgotten,
    // and the heartbeat counts from it (10s after mono 0 is not 10s after mono 2000).
    deadband.onTick(Tick{11, 11'000}, out);
    deadband.flush(out);
    EXPECT_EQ(out.samples.size(), 1u);
    // The band is measured from 5.0 now: 5.8 is inside it, 3.9 just outside.
    deadband.offer(sampleAtMono(3, 3'000, 5.8), out);
    EXPECT_EQ(out.samples.size(), 1u);
    deadband.offer(sampleAtMono(4, 4'000, 3.9), out);
    ASSERT_EQ(out.samples.size(), 2u);
    EXPECT_EQ(out.samples[1].value, 3.9);
    EXPECT_EQ(deadband.stats().forced, 1u);
}

TEST(DeadbandDownsamplerTest, FlushSendsTheLatestUnsentSample) {
    DeadbandDownsampler deadband({.deadband = 1.0, .percent = false, .max_interval = 0ms});
    RecordingCallbacks out;
    deadband.offer(sampleAt(1000, 1.0), out);
    deadband.offer(sampleAt(2000, 1.2), out);
    deadband.offer(sampleAt(3000, 1.4), out);
    deadband.flush(out);
    ASSERT_EQ(out.samples.size(), 2u);
    EXPECT_EQ(out.samples[1].time_ms, 3000);
    deadband.flush(out);
    EXPECT_EQ(out.samples.size(), 2u);
}

}  // namespace
}  // namespace tern::edge
