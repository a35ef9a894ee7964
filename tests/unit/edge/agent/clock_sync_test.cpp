#include "tern/edge/agent/clock_sync.h"

#include <gtest/gtest.h>

#include <chrono>

namespace tern::edge {
namespace {

using namespace std::chrono_literals;

// A board that booted in 1970: the kernel clock reads 1970 + uptime until NTP steps it.
constexpr std::int64_t kBootWallMs = 5'000;
constexpr std::int64_t kRealMs = 1'780'000'000'000;

TEST(SyncAwareClockTest, RunsOnMonotonicTimeThroughAStepUntilMarkedSynced) {
    shared::ManualClock base(shared::fromUnixMillis(kBootWallMs));
    SyncAwareClock clock(base, false);
    EXPECT_FALSE(clock.synced());
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kBootWallMs);
    base.advance(2s);
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kBootWallMs + 2000);

    // NTP steps the kernel clock; until the agent notices, stamps stay on the old time line.
    base.setWall(shared::fromUnixMillis(kRealMs));
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kBootWallMs + 2000);
    base.advance(1s);
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kBootWallMs + 3000);

    clock.markSynced();
    EXPECT_TRUE(clock.synced());
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kRealMs + 1000);
    EXPECT_EQ(clock.monoNow(), base.monoNow());
}

TEST(SyncAwareClockTest, ASyncedClockIsTheBaseClock) {
    shared::ManualClock base(shared::fromUnixMillis(kRealMs));
    SyncAwareClock clock(base, true);
    base.setWall(shared::fromUnixMillis(kRealMs + 123));
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kRealMs + 123);
}

TEST(ClockSyncSourceTest, ModesAndBootId) {
    EXPECT_TRUE(makeClockSyncSource("always")->synced());
    EXPECT_FALSE(makeClockSyncSource("never")->synced());
    EXPECT_NE(makeClockSyncSource("adjtimex"), nullptr);
    EXPECT_EQ(makeClockSyncSource("ntp"), nullptr);
    // Stable within a boot, and never 0 where /proc exists.
    EXPECT_EQ(currentBootId(), currentBootId());
    EXPECT_NE(currentBootId(), 0u);
}

}  // namespace
}  // namespace tern::edge
