#include "tern/ingest/fleet_state.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tern::ingest {
namespace {

using shared::StatusKind;

constexpr std::int64_t kT0 = 1'780'000'000'000;

shared::GatewayStatus status(StatusKind kind, std::uint64_t session, std::int64_t sent_at_ms,
                             const std::string& gateway = "gw-1") {
    shared::GatewayStatus s;
    s.gateway_id = gateway;
    s.kind = kind;
    s.session = session;
    s.epoch = 2;
    s.sent_at_ms = sent_at_ms;
    s.clock_synced = true;
    s.firmware_version = "2.1." + std::to_string(session);
    if (kind == StatusKind::Birth) {
        s.sensors = {{0, "temperature", "Cel", shared::SensorKind::Temperature},
                     {1, "humidity", "%", shared::SensorKind::Humidity}};
    }
    s.backlog_batches = static_cast<std::uint64_t>(sent_at_ms - kT0);
    s.drops = {{"store_full", 1, 10}};
    return s;
}

class FleetStateTest : public ::testing::Test {
protected:
    // The value of one series in the exposition; -1 when it is not there.
    double metric(const std::string& series) const {
        std::istringstream in(metrics_.exposition());
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        }
        return -1;
    }
    double online() const { return metric("tern_ingest_gateways{state=\"online\"}"); }
    double offline() const { return metric("tern_ingest_gateways{state=\"offline\"}"); }

    GatewayView view(const std::string& gateway = "gw-1") const {
        auto found = fleet_.get(gateway);
        EXPECT_TRUE(found) << gateway;
        return found.value_or(GatewayView{});
    }

    shared::MetricsRegistry metrics_;
    FleetState fleet_{metrics_};
};

TEST_F(FleetStateTest, StartsEmpty) {
    EXPECT_TRUE(fleet_.list().empty());
    EXPECT_FALSE(fleet_.get("gw-1"));
    EXPECT_EQ(online(), 0);
    EXPECT_EQ(offline(), 0);
}

TEST_F(FleetStateTest, BirthPutsAGatewayOnline) {
    const auto birth = status(StatusKind::Birth, 4, kT0 + 10);
    EXPECT_TRUE(fleet_.onStatus("gw-1", birth, kT0 + 250, 240, false));
    const GatewayView gw = view();
    EXPECT_EQ(gw.gateway_id, "gw-1");
    EXPECT_TRUE(gw.online);
    EXPECT_TRUE(gw.has_status);
    EXPECT_EQ(gw.last_status, StatusKind::Birth);
    EXPECT_EQ(gw.last_status_ms, kT0 + 250);
    EXPECT_EQ(gw.last_seen_ms, kT0 + 250);
    EXPECT_EQ(gw.session, 4u);
    EXPECT_EQ(gw.epoch, 2u);
    EXPECT_EQ(gw.firmware_version, "2.1.4");
    EXPECT_TRUE(gw.clock_synced);
    EXPECT_EQ(gw.clock_skew_ms, 240);
    EXPECT_EQ(gw.sensors, birth.sensors);
    EXPECT_EQ(gw.backlog_batches, 10u);
    EXPECT_EQ(gw.drops, birth.drops);
    EXPECT_EQ(online(), 1);
    EXPECT_EQ(offline(), 0);
}

TEST_F(FleetStateTest, DeathTakesItOffline) {
    fleet_.onStatus("gw-1", status(StatusKind::Birth, 4, kT0 + 10), kT0 + 20, 10, false);
    fleet_.onStatus("gw-1", status(StatusKind::Update, 4, kT0 + 60'000), kT0 + 60'005, 5, false);
    EXPECT_TRUE(fleet_.onStatus("gw-1", status(StatusKind::Death, 4, kT0 + 90'000), kT0 + 90'010,
                                10, false));
    const GatewayView gw = view();
    EXPECT_FALSE(gw.online);
    EXPECT_EQ(gw.last_status, StatusKind::Death);
    EXPECT_EQ(gw.last_status_ms, kT0 + 90'010);
    EXPECT_EQ(gw.backlog_batches, 90'000u);
    // The sensor table of the Birth stays; a Death's skew is not taken (it may be the will).
    EXPECT_EQ(gw.sensors.size(), 2u);
    EXPECT_EQ(gw.clock_skew_ms, 5);
    EXPECT_EQ(online(), 0);
    EXPECT_EQ(offline(), 1);

    // A new session comes back online.
    EXPECT_TRUE(fleet_.onStatus("gw-1", status(StatusKind::Birth, 5, kT0 + 95'000), kT0 + 95'000, 0,
                                false));
    EXPECT_TRUE(view().online);
    EXPECT_EQ(view().session, 5u);
    EXPECT_EQ(online(), 1);
    EXPECT_EQ(offline(), 0);
}

// The will is encoded when the gateway connects, before its Birth: it still ends the session.
TEST_F(FleetStateTest, TheWillEndsItsSessionThoughItIsOlderThanTheBirth) {
    fleet_.onStatus("gw-1", status(StatusKind::Birth, 4, kT0 + 100), kT0 + 110, 10, false);
    fleet_.onStatus("gw-1", status(StatusKind::Update, 4, kT0 + 60'000), kT0 + 60'010, 10, false);
    const auto will = status(StatusKind::Death, 4, kT0 + 50);
    EXPECT_TRUE(fleet_.onStatus("gw-1", will, kT0 + 200'000, 199'950, false));
    const GatewayView gw = view();
    EXPECT_FALSE(gw.online);
    EXPECT_EQ(gw.last_status, StatusKind::Death);
    EXPECT_EQ(gw.last_status_ms, kT0 + 200'000);
    // The will's backlog is from the connect; the Update's is newer and stays.
    EXPECT_EQ(gw.backlog_batches, 60'000u);
    EXPECT_EQ(gw.clock_skew_ms, 10);
    EXPECT_EQ(offline(), 1);

    // A copy of the session's Update arriving late does not bring the dead session back.
    EXPECT_FALSE(fleet_.onStatus("gw-1", status(StatusKind::Update, 4, kT0 + 61'000), kT0 + 200'100,
                                 0, true));
    EXPECT_FALSE(view().online);
    EXPECT_FALSE(
        fleet_.onStatus("gw-1", status(StatusKind::Birth, 4, kT0 + 100), kT0 + 200'200, 0, false));
    EXPECT_FALSE(view().online);
    // Nor does an even older copy of the will change anything.
    EXPECT_FALSE(
        fleet_.onStatus("gw-1", status(StatusKind::Death, 4, kT0 + 40), kT0 + 200'300, 0, true));
    EXPECT_EQ(view().last_status_ms, kT0 + 200'000);
}

TEST_F(FleetStateTest, OlderStatusesAreIgnored) {
    fleet_.onStatus("gw-1", status(StatusKind::Birth, 5, kT0 + 1000), kT0 + 1010, 10, false);
    fleet_.onStatus("gw-1", status(StatusKind::Update, 5, kT0 + 2000), kT0 + 2010, 10, false);
    const GatewayView before = view();

    // An earlier session's will, delivered late.
    EXPECT_FALSE(
        fleet_.onStatus("gw-1", status(StatusKind::Death, 4, kT0 + 3000), kT0 + 3010, 10, false));
    // An earlier session's Birth.
    EXPECT_FALSE(
        fleet_.onStatus("gw-1", status(StatusKind::Birth, 4, kT0 + 3000), kT0 + 3020, 10, true));
    // The same session, sent before the Update held.
    EXPECT_FALSE(
        fleet_.onStatus("gw-1", status(StatusKind::Update, 5, kT0 + 1500), kT0 + 3030, 10, false));

    const GatewayView after = view();
    EXPECT_TRUE(after.online);
    EXPECT_EQ(after.session, 5u);
    EXPECT_EQ(after.last_status, StatusKind::Update);
    EXPECT_EQ(after.last_status_ms, before.last_status_ms);
    EXPECT_EQ(after.backlog_batches, 2000u);
    EXPECT_EQ(after.firmware_version, before.firmware_version);
    EXPECT_EQ(online(), 1);

    // Same session, same or later time: applied.
    EXPECT_TRUE(
        fleet_.onStatus("gw-1", status(StatusKind::Update, 5, kT0 + 2000), kT0 + 4000, 10, false));
    EXPECT_TRUE(
        fleet_.onStatus("gw-1", status(StatusKind::Update, 5, kT0 + 5000), kT0 + 5010, 10, false));
    EXPECT_EQ(view().backlog_batches, 5000u);
}

TEST_F(FleetStateTest, RetainedStatusesCarryNoSkewAndAreNotNews) {
    // What a restarted ingest gets on subscribing: the broker's copy, hours old.
    EXPECT_TRUE(fleet_.onStatus("gw-1", status(StatusKind::Birth, 3, kT0), kT0 + 3'600'000,
                                3'600'000, true));
    GatewayView gw = view();
    EXPECT_TRUE(gw.online);
    EXPECT_TRUE(gw.has_status);
    EXPECT_FALSE(gw.clock_skew_ms);
    EXPECT_EQ(gw.last_seen_ms, 0);
    EXPECT_EQ(gw.last_status_ms, kT0 + 3'600'000);
    EXPECT_EQ(gw.sensors.size(), 2u);

    // A live one then measures the skew.
    fleet_.onStatus("gw-1", status(StatusKind::Update, 3, kT0 + 3'600'000), kT0 + 3'600'040, 40,
                    false);
    gw = view();
    EXPECT_EQ(gw.clock_skew_ms, 40);
    EXPECT_EQ(gw.last_seen_ms, kT0 + 3'600'040);

    // A retained copy later (a resubscribe) keeps the measurement.
    fleet_.onStatus("gw-1", status(StatusKind::Update, 3, kT0 + 3'600'000), kT0 + 7'200'000,
                    3'600'000, true);
    EXPECT_EQ(view().clock_skew_ms, 40);
    EXPECT_EQ(view().last_seen_ms, kT0 + 3'600'040);
}

TEST_F(FleetStateTest, UpdatesKeepTheSensorTableOfTheBirth) {
    fleet_.onStatus("gw-1", status(StatusKind::Birth, 1, kT0), kT0, 0, false);
    auto update = status(StatusKind::Update, 1, kT0 + 10);
    update.firmware_version = "2.2.0";
    update.clock_synced = false;
    update.drops = {{"max_age", 3, 300}};
    update.oldest_backlog_ms = kT0 - 5000;
    update.backlog_bytes = 4096;
    fleet_.onStatus("gw-1", update, kT0 + 10, 0, false);
    const GatewayView gw = view();
    EXPECT_EQ(gw.sensors.size(), 2u);
    EXPECT_EQ(gw.last_status, StatusKind::Update);
    EXPECT_EQ(gw.firmware_version, "2.2.0");
    EXPECT_FALSE(gw.clock_synced);
    EXPECT_EQ(gw.drops, update.drops);
    EXPECT_EQ(gw.oldest_backlog_ms, kT0 - 5000);
    EXPECT_EQ(gw.backlog_bytes, 4096u);
}

TEST_F(FleetStateTest, CountsWhatEachGatewaySends) {
    fleet_.onTelemetry("gw-2", {2, 10}, 100, kT0 + 1);
    fleet_.onTelemetry("gw-2", {2, 11}, 50, kT0 + 2);
    fleet_.onAlert("gw-2", kT0 + 3);
    fleet_.onRejected("gw-2", kT0 + 4);
    fleet_.onRejected("gw-2", kT0 + 5);
    shared::CommandAck ack{"gw-2", 99, shared::CommandResult::Done, "resent 3 batches", kT0};
    fleet_.onCommandAck("gw-2", ack, kT0 + 6);
    // Out of order: last_seen_ms does not go back.
    fleet_.onTelemetry("gw-2", {2, 12}, 1, kT0);

    const GatewayView gw = view("gw-2");
    EXPECT_EQ(gw.batches_received, 3u);
    EXPECT_EQ(gw.readings_received, 151u);
    EXPECT_EQ(gw.alerts_received, 1u);
    EXPECT_EQ(gw.rejected, 2u);
    ASSERT_TRUE(gw.last_command_ack);
    EXPECT_EQ(*gw.last_command_ack, ack);
    EXPECT_EQ(gw.last_seen_ms, kT0 + 6);
    EXPECT_EQ(gw.epoch, 2u);
    // Known only from its traffic: not online until a Status says so.
    EXPECT_FALSE(gw.has_status);
    EXPECT_FALSE(gw.online);
    EXPECT_EQ(online(), 0);
    EXPECT_EQ(offline(), 1);

    // A rejection from a topic that named no gateway is nobody's.
    fleet_.onRejected("", kT0 + 7);
    EXPECT_EQ(fleet_.list().size(), 1u);
}

TEST_F(FleetStateTest, ListsGatewaysByIdWithGauges) {
    fleet_.onTelemetry("gw-c", {1, 1}, 1, kT0);
    fleet_.onStatus("gw-a", status(StatusKind::Birth, 1, kT0, "gw-a"), kT0, 0, false);
    fleet_.onStatus("gw-b", status(StatusKind::Birth, 1, kT0, "gw-b"), kT0, 0, false);
    fleet_.onStatus("gw-b", status(StatusKind::Death, 1, kT0 + 1, "gw-b"), kT0 + 1, 0, false);
    const auto all = fleet_.list();
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].gateway_id, "gw-a");
    EXPECT_EQ(all[1].gateway_id, "gw-b");
    EXPECT_EQ(all[2].gateway_id, "gw-c");
    EXPECT_TRUE(all[0].online);
    EXPECT_FALSE(all[1].online);
    EXPECT_FALSE(all[2].online);
    EXPECT_EQ(online(), 1);
    EXPECT_EQ(offline(), 2);
}

TEST_F(FleetStateTest, GaugesAgreeAfterConcurrentUpdates) {
    constexpr int kThreads = 4;
    constexpr int kGateways = 25;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int g = 0; g < kGateways; ++g) {
                const std::string id = "gw-" + std::to_string(t) + "-" + std::to_string(g);
                fleet_.onStatus(id, status(StatusKind::Birth, 1, kT0, id), kT0, 0, false);
                fleet_.onTelemetry(id, {1, 1}, 10, kT0 + 1);
                // Every other gateway dies again.
                if (g % 2 == 1) {
                    fleet_.onStatus(id, status(StatusKind::Death, 1, kT0 + 2, id), kT0 + 2, 0,
                                    false);
                }
                fleet_.list();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(fleet_.list().size(), static_cast<std::size_t>(kThreads * kGateways));
    EXPECT_EQ(online(), kThreads * 13);
    EXPECT_EQ(offline(), kThreads * 12);
}

}  // namespace
}  // namespace tern::ingest
