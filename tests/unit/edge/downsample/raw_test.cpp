#include "tern/edge/downsample/raw.h"

#include <gtest/gtest.h>

#include <vector>

#include "recording_callbacks.h"

namespace tern::edge {
namespace {

using downsample_testing::RecordingCallbacks;
using downsample_testing::sampleAt;

TEST(RawDownsamplerTest, EmitsEverySampleAsOffered) {
    RawDownsampler raw;
    RecordingCallbacks out;
    const std::vector<Sample> offered = {sampleAt(1000, 1.0), sampleAt(1000, 1.0),
                                         sampleAt(900, -3.5),
                                         sampleAt(2000, 7.0, shared::Quality::Bad)};
    for (const Sample& sample : offered) raw.offer(sample, out);
    EXPECT_EQ(out.samples, offered);
    EXPECT_TRUE(out.aggregates.empty());
    EXPECT_EQ(raw.stats().received, 4u);
    EXPECT_EQ(raw.stats().emitted, 4u);
}

TEST(RawDownsamplerTest, ForceKeepTickAndFlushEmitNothing) {
    RawDownsampler raw;
    RecordingCallbacks out;
    raw.forceKeep(sampleAt(1000, 1.0), out);
    raw.onTick(Tick{5000, 5000}, out);
    raw.flush(out);
    EXPECT_TRUE(out.samples.empty());
    EXPECT_TRUE(out.aggregates.empty());
    EXPECT_EQ(raw.stats().forced, 1u);
}

}  // namespace
}  // namespace tern::edge
