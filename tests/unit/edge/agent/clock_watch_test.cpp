#include "tern/edge/agent/clock_watch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "tern/shared/codec.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;

// A board that booted at 1970 + 5 s; NTP later steps its clock to 2026.
constexpr std::int64_t kBootWallMs = 5'000;
constexpr std::int64_t kRealMs = 1'780'000'000'000;

class ClockSyncWatchTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("tern-clock-watch-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path dir_;
    shared::ManualClock base_{shared::fromUnixMillis(kBootWallMs)};
    shared::MetricsRegistry metrics_;
};

TEST_F(ClockSyncWatchTest, SealsSwitchesAndRestampsByTheStep) {
    SyncAwareClock clock(base_, false);
    FixedSyncSource source(false);
    StoreOptions options;
    options.gateway_id = "gw-1";
    options.boot_id = 7;
    auto store = Store::open((dir_ / "edge.db").string(), options, clock, metrics_);
    ASSERT_TRUE(store);
    int sealed = 0;
    ClockSyncWatch watch(
        clock, source, *store.value(), [&] { ++sealed; }, metrics_);

    // Readings taken before sync, stamped on the unsynchronised time line.
    shared::TelemetryBatch batch;
    batch.clock_synced = clock.synced();
    batch.readings.push_back({0, shared::toUnixMillis(clock.wallNow()), 21.5, {}});
    base_.advance(1s);
    batch.readings.push_back({0, shared::toUnixMillis(clock.wallNow()), 21.6, {}});
    ASSERT_TRUE(store.value()->storeBatch(batch));

    EXPECT_FALSE(watch.check());  // not synchronised yet
    // NTP steps the kernel clock; the watch has not noticed, so stamps stay put.
    base_.setWall(shared::fromUnixMillis(kRealMs));
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kBootWallMs + 1000);
    EXPECT_FALSE(watch.check());
    EXPECT_EQ(sealed, 0);

    source.set(true);
    EXPECT_TRUE(watch.check());
    EXPECT_EQ(sealed, 1);
    EXPECT_TRUE(clock.synced());
    EXPECT_EQ(shared::toUnixMillis(clock.wallNow()), kRealMs);

    // The step was kRealMs - (kBootWallMs + 1000) on the same monotonic instant: every stored
    // reading moves by exactly that.
    auto restamped = shared::decodeBatch(store.value()->get(1)->payload);
    ASSERT_TRUE(restamped);
    EXPECT_TRUE(restamped.value().clock_synced);
    EXPECT_EQ(restamped.value().readings[0].time_ms, kRealMs - 1000);
    EXPECT_EQ(restamped.value().readings[1].time_ms, kRealMs);
    EXPECT_NE(metrics_.exposition().find("tern_edge_clock_restamped_total 1"), std::string::npos);
    EXPECT_NE(metrics_.exposition().find("tern_edge_clock_synced 1"), std::string::npos);

    EXPECT_FALSE(watch.check());  // once only
    EXPECT_EQ(sealed, 1);
}

}  // namespace
}  // namespace tern::edge
