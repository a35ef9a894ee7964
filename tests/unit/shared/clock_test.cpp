#include "tern/shared/clock.h"

#include <gtest/gtest.h>

namespace tern::shared {
namespace {

using namespace std::chrono_literals;

TEST(ManualClock, AdvanceMovesBothClocks) {
    ManualClock clock(fromUnixMillis(1'000), Clock::MonoTime{5s});
    clock.advance(1500ms);
    EXPECT_EQ(toUnixMillis(clock.wallNow()), 2'500);
    EXPECT_EQ(clock.monoNow(), Clock::MonoTime{6500ms});
}

TEST(ManualClock, WallStepLeavesMonotonicAlone) {
    ManualClock clock(fromUnixMillis(0));  // a board booting in 1970
    clock.advance(10s);
    clock.setWall(fromUnixMillis(1'763'600'000'000));
    EXPECT_EQ(toUnixMillis(clock.wallNow()), 1'763'600'000'000);
    EXPECT_EQ(clock.monoNow(), Clock::MonoTime{10s});
}

TEST(SystemClock, MonotonicNeverGoesBack) {
    SystemClock clock;
    const auto first = clock.monoNow();
    EXPECT_GE(clock.monoNow(), first);
    EXPECT_GT(toUnixMillis(clock.wallNow()), 1'600'000'000'000);
}

}  // namespace
}  // namespace tern::shared
