#include "tern/edge/downsample/swinging_door.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <vector>

#include "reconstruction.h"
#include "recording_callbacks.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using downsample_testing::checkReconstruction;
using downsample_testing::RecordingCallbacks;
using downsample_testing::sampleAt;
using downsample_testing::sampleAtMono;
using shared::Quality;

SwingingDoorDownsampler door(double error, std::chrono::milliseconds max_interval = 0ms) {
    return SwingingDoorDownsampler({.error = error, .max_interval = max_interval});
}

std::vector<std::int64_t> times(const RecordingCallbacks& out) {
    std::vector<std::int64_t> result;
    for (const Sample& sample : out.samples) result.push_back(sample.time_ms);
    return result;
}

// Offers every sample (none forced), flushes, and checks the bound.
RecordingCallbacks run(SwingingDoorDownsampler& sdt, const std::vector<Sample>& stream,
                       double error) {
    RecordingCallbacks out;
    for (const Sample& sample : stream) sdt.offer(sample, out);
    sdt.flush(out);
    const auto check = checkReconstruction(stream, std::vector<bool>(stream.size(), false),
                                           out.samples, error, 1e-9);
    EXPECT_EQ(check.failure, "");
    return out;
}

TEST(SwingingDoorDownsamplerTest, AStraightLineKeepsOnlyItsEnds) {
    auto sdt = door(0.01);
    std::vector<Sample> line;
    for (std::int64_t i = 0; i < 1000; ++i) line.push_back(sampleAt(i * 1000, 3.0 - 0.25 * i));
    const auto out = run(sdt, line, 0.01);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 999'000}));
}

TEST(SwingingDoorDownsamplerTest, AStepKeepsTheCornersOnly) {
    auto sdt = door(0.5);
    std::vector<Sample> step;
    for (std::int64_t i = 0; i < 100; ++i) step.push_back(sampleAt(i * 1000, i < 50 ? 0.0 : 10.0));
    const auto out = run(sdt, step, 0.5);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 49'000, 50'000, 99'000}));
}

TEST(SwingingDoorDownsamplerTest, FirstReadingGoesOutAtOnceTheNextIsHeld) {
    auto sdt = door(1.0);
    RecordingCallbacks out;
    sdt.offer(sampleAt(0, 5.0), out);
    EXPECT_EQ(out.samples.size(), 1u);
    sdt.offer(sampleAt(1000, 5.5), out);
    sdt.offer(sampleAt(2000, 6.0), out);
    EXPECT_EQ(out.samples.size(), 1u);
    sdt.flush(out);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 2000}));
    sdt.flush(out);  // nothing held any more
    EXPECT_EQ(out.samples.size(), 2u);
}

TEST(SwingingDoorDownsamplerTest, TheBoundHoldsWhereClassicSdtMissesAReading) {
    // Classic SDT keeps only (0, 0) and (10s, 10.5): the doors through (1s, 0) and (10s, 10.5)
    // still overlap. Its line passes 1.05 from the reading at 1s, more than the error of 1.
    auto sdt = door(1.0);
    const auto out = run(sdt, {sampleAt(0, 0.0), sampleAt(1000, 0.0), sampleAt(10'000, 10.5)}, 1.0);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 1000, 10'000}));
}

TEST(SwingingDoorDownsamplerTest, RepeatedTimestampsReleaseTheHeldPointAndKeepTheSample) {
    auto sdt = door(10.0);
    const auto out =
        run(sdt,
            {sampleAtMono(0, 0, 0.0), sampleAtMono(1000, 1, 1.0), sampleAtMono(1000, 2, 5.0),
             sampleAtMono(1000, 3, 2.0), sampleAtMono(2000, 4, 2.0), sampleAtMono(3000, 5, 2.0)},
            10.0);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 1000, 1000, 1000, 3000}));
}

TEST(SwingingDoorDownsamplerTest, TimeGoingBackwardsRestartsTheDoor) {
    auto sdt = door(10.0);
    const auto out = run(
        sdt,
        {sampleAtMono(10'000, 0, 0.0), sampleAtMono(11'000, 1, 0.0), sampleAtMono(12'000, 2, 0.0),
         sampleAtMono(500, 3, 0.0), sampleAtMono(1'500, 4, 0.0), sampleAtMono(2'500, 5, 0.0)},
        10.0);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{10'000, 12'000, 500, 2'500}));
}

TEST(SwingingDoorDownsamplerTest, AQualityChangeKeepsBothSidesOfIt) {
    auto sdt = door(100.0);
    RecordingCallbacks out;
    sdt.offer(sampleAt(0, 1.0), out);
    sdt.offer(sampleAt(1000, 1.0), out);
    sdt.offer(sampleAt(2000, 1.0), out);
    sdt.offer(sampleAt(3000, 1.0, Quality::Uncertain), out);
    sdt.offer(sampleAt(4000, 1.0, Quality::Uncertain), out);
    sdt.offer(sampleAt(5000, 1.0, Quality::Uncertain), out);
    sdt.flush(out);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 2000, 3000, 5000}));
}

TEST(SwingingDoorDownsamplerTest, NonFiniteValuesAreKeptWithTheirNeighbours) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    auto sdt = door(1.0);
    RecordingCallbacks out;
    for (std::int64_t i = 0; i < 10; ++i) {
        const double value = (i == 4) ? nan : (i == 5) ? inf : 0.0;
        sdt.offer(sampleAt(i * 1000, value), out);
    }
    sdt.flush(out);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 3000, 4000, 5000, 6000, 9000}));
}

TEST(SwingingDoorDownsamplerTest, MaxIntervalReleasesTheHeldPointOnATick) {
    auto sdt = door(1.0, 10s);
    RecordingCallbacks out;
    sdt.offer(sampleAtMono(100, 0, 0.0), out);
    sdt.offer(sampleAtMono(200, 1'000, 0.0), out);
    sdt.offer(sampleAtMono(300, 2'000, 0.0), out);
    sdt.onTick(Tick{0, 9'999}, out);
    EXPECT_EQ(out.samples.size(), 1u);
    sdt.onTick(Tick{0, 10'000}, out);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{100, 300}));
    // Nothing held: a silent sensor stays silent.
    sdt.onTick(Tick{0, 100'000}, out);
    EXPECT_EQ(out.samples.size(), 2u);
}

TEST(SwingingDoorDownsamplerTest, MaxIntervalReleasesTheHeldPointWhenASampleComesLate) {
    auto sdt = door(1.0, 10s);
    RecordingCallbacks out;
    for (std::int64_t i = 0; i <= 25; ++i) sdt.offer(sampleAtMono(i * 1000, i * 1000, 0.0), out);
    // Kept points never lie more than max_interval apart while readings keep coming.
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 9'000, 18'000}));
}

TEST(SwingingDoorDownsamplerTest, ForceKeepReleasesTheHeldPointAndPivotsWithoutEmitting) {
    auto sdt = door(0.5);
    RecordingCallbacks out;
    std::vector<Sample> stream;
    std::vector<bool> forced;
    auto offer = [&](std::int64_t t, double v) {
        stream.push_back(sampleAtMono(t, t, v));
        forced.push_back(false);
        sdt.offer(stream.back(), out);
    };
    offer(0, 0.0);
    offer(1000, 0.0);
    offer(2000, 0.0);
    stream.push_back(sampleAtMono(3000, 3000, 100.0));
    forced.push_back(true);
    sdt.forceKeep(stream.back(), out);
    // The held point went out; the forced one did not.
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 2000}));
    offer(4000, 100.0);
    offer(5000, 100.0);
    EXPECT_EQ(out.samples.size(), 2u);  // the forced point pivots: the flat run is one segment
    sdt.flush(out);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{0, 2000, 5000}));
    EXPECT_EQ(checkReconstruction(stream, forced, out.samples, 0.5, 1e-9).failure, "");
    EXPECT_EQ(sdt.stats().forced, 1u);
}

TEST(SwingingDoorDownsamplerTest, ForceKeepFirstThenSamples) {
    auto sdt = door(0.5);
    RecordingCallbacks out;
    sdt.forceKeep(sampleAt(0, 1.0), out);
    sdt.offer(sampleAt(1000, 1.0), out);
    sdt.offer(sampleAt(2000, 1.0), out);
    EXPECT_TRUE(out.samples.empty());
    sdt.flush(out);
    EXPECT_EQ(times(out), (std::vector<std::int64_t>{2000}));
}

}  // namespace
}  // namespace tern::edge
