#include "tern/edge/store/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::int64_t kStartMs = 1'780'000'000'000;  // 2026

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/tern-store-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        path_ = (dir_ / "edge.db").string();
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    StoreOptions options(std::uint64_t max_bytes = 256 * shared::kMiB,
                         std::chrono::milliseconds max_age = 24h) {
        StoreOptions o;
        o.gateway_id = "gw-1";
        o.max_bytes = max_bytes;
        o.max_age = max_age;
        return o;
    }

    std::unique_ptr<Store> open(StoreOptions o) {
        auto store = Store::open(path_, std::move(o), clock_, metrics_);
        EXPECT_TRUE(store) << (store ? "" : store.error().message());
        return store ? std::move(store.value()) : nullptr;
    }
    std::unique_ptr<Store> open() { return open(options()); }

    // `count` readings of one sensor; seed varies the values so that sizes stay realistic.
    shared::TelemetryBatch batch(std::size_t count, std::uint32_t seed = 1) {
        shared::TelemetryBatch b;
        b.sent_at_ms = kStartMs;
        std::mt19937 rng(seed);
        std::uniform_real_distribution<double> value(-1000.0, 1000.0);
        for (std::size_t i = 0; i < count; ++i) {
            b.readings.push_back(shared::Reading{3, kStartMs + static_cast<std::int64_t>(i) * 1000,
                                                 value(rng), shared::Quality::Good});
        }
        return b;
    }

    shared::Alert alert(std::uint64_t incident) {
        shared::Alert a;
        a.incident_id = incident;
        a.rule = "too_hot";
        a.sensor = 3;
        a.value = 91.5;
        a.time_ms = kStartMs;
        a.message = "temperature above 90";
        return a;
    }

    shared::Receipt receipt(const Store& store, std::uint64_t cumulative,
                            std::vector<shared::SeqRange> ranges = {}) {
        shared::Receipt r;
        r.gateway_id = "gw-1";
        r.epoch = store.epoch();
        r.cumulative_seq = cumulative;
        r.ranges = std::move(ranges);
        return r;
    }

    static std::vector<std::uint64_t> seqs(const std::vector<StoredMessage>& messages) {
        std::vector<std::uint64_t> out;
        for (const auto& m : messages) out.push_back(m.sequence.seq);
        return out;
    }

    static shared::DropCounter drop(const Store& store, const std::string& reason) {
        for (const auto& d : store.dropCounters()) {
            if (d.reason == reason) return d;
        }
        return {};
    }

    fs::path dir_;
    std::string path_;
    shared::ManualClock clock_{shared::fromUnixMillis(kStartMs)};
    shared::MetricsRegistry metrics_;
};

TEST_F(StoreTest, AssignsSequencesAndPayloadsDecodeToTheStampedBatch) {
    auto store = open();
    ASSERT_TRUE(store);
    // A new file's epoch is the clock's Unix seconds, so a wiped store never reuses old pairs.
    EXPECT_EQ(store->epoch(), static_cast<std::uint64_t>(kStartMs / 1000));
    const auto input = batch(20);
    auto first = store->storeBatch(input);
    ASSERT_TRUE(first);
    EXPECT_EQ(first.value(), (shared::Sequence{store->epoch(), 1}));
    auto second = store->storeAlert(alert(7));
    ASSERT_TRUE(second);
    EXPECT_EQ(second.value(), (shared::Sequence{store->epoch(), 2}));

    auto stored = store->get(1);
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->lane, Lane::Telemetry);
    EXPECT_EQ(stored->readings, 20u);
    EXPECT_EQ(stored->created_ms, kStartMs);
    auto decoded = shared::decodeBatch(stored->payload);
    ASSERT_TRUE(decoded) << decoded.error().message();
    auto expected = input;
    expected.gateway_id = "gw-1";
    expected.sequence = {store->epoch(), 1};
    EXPECT_EQ(decoded.value(), expected);

    auto stored_alert = store->get(2);
    ASSERT_TRUE(stored_alert);
    auto decoded_alert = shared::decodeAlert(stored_alert->payload);
    ASSERT_TRUE(decoded_alert) << decoded_alert.error().message();
    EXPECT_EQ(decoded_alert.value().gateway_id, "gw-1");
    EXPECT_EQ(decoded_alert.value().sequence, (shared::Sequence{store->epoch(), 2}));
    EXPECT_EQ(decoded_alert.value().incident_id, 7u);

    const auto backlog = store->backlog();
    EXPECT_EQ(backlog.messages, 2u);
    EXPECT_EQ(backlog.bytes, stored->payload.size() + stored_alert->payload.size());
    EXPECT_EQ(backlog.oldest_created_ms, kStartMs);
}

TEST_F(StoreTest, PendingPutsAlertsFirstThenOldestTelemetry) {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->storeBatch(batch(5)));  // 1
    ASSERT_TRUE(store->storeAlert(alert(1)));  // 2
    ASSERT_TRUE(store->storeBatch(batch(5)));  // 3
    ASSERT_TRUE(store->storeAlert(alert(2)));  // 4
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{2, 4, 1, 3}));
    EXPECT_EQ(seqs(store->pending(3)), (std::vector<std::uint64_t>{2, 4, 1}));
}

TEST_F(StoreTest, ScanReadsOneLaneBetweenCursors) {
    auto store = open();
    ASSERT_TRUE(store);
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(store->storeBatch(batch(2)));  // 1..6
    ASSERT_TRUE(store->storeAlert(alert(1)));                              // 7
    ASSERT_TRUE(store->storeBatch(batch(2)));                              // 8
    EXPECT_EQ(seqs(store->scan(Lane::Telemetry, 0, 100, 3)), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(seqs(store->scan(Lane::Telemetry, 3, 5, 10)), (std::vector<std::uint64_t>{4, 5}));
    EXPECT_EQ(seqs(store->scan(Lane::Telemetry, 5, 100, 10)), (std::vector<std::uint64_t>{6, 8}));
    EXPECT_EQ(seqs(store->scan(Lane::Alert, 0, 100, 10)), (std::vector<std::uint64_t>{7}));
    EXPECT_TRUE(store->scan(Lane::Telemetry, 5, 5, 10).empty());
    EXPECT_TRUE(store->scan(Lane::Telemetry, 0, 100, 0).empty());
}

TEST_F(StoreTest, DiscardOversizeIsCountedAsAnEviction) {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->storeBatch(batch(7)));
    ASSERT_TRUE(store->storeBatch(batch(2)));
    auto discarded = store->discardOversize(1);
    ASSERT_TRUE(discarded);
    EXPECT_TRUE(discarded.value());
    auto again = store->discardOversize(1);
    ASSERT_TRUE(again);
    EXPECT_FALSE(again.value());
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{2}));
    EXPECT_EQ(drop(*store, "oversize").batches, 1u);
    EXPECT_EQ(drop(*store, "oversize").readings, 7u);
    EXPECT_EQ(store->backlog().messages, 1u);
}

TEST_F(StoreTest, SessionNumbersGrowAcrossReopen) {
    {
        auto store = open();
        ASSERT_TRUE(store);
        EXPECT_EQ(store->nextSession().value(), 1u);
        EXPECT_EQ(store->nextSession().value(), 2u);
    }
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_EQ(store->nextSession().value(), 3u);
}

TEST_F(StoreTest, RestampShiftsThisBootsUnsyncedMessagesOnly) {
    // Another boot's unsynchronised message: its offset cannot be known any more.
    {
        auto o = options();
        o.boot_id = 41;
        auto store = open(o);
        ASSERT_TRUE(store);
        auto old_boot = batch(2);
        old_boot.clock_synced = false;
        ASSERT_TRUE(store->storeBatch(old_boot));  // 1
    }
    auto o = options();
    o.boot_id = 42;
    auto store = open(o);
    ASSERT_TRUE(store);
    auto unsynced = batch(3);
    unsynced.clock_synced = false;
    ASSERT_TRUE(store->storeBatch(unsynced));  // 2
    auto unsynced_alert = alert(1);
    ASSERT_TRUE(store->storeAlert(unsynced_alert));  // 3
    auto synced = batch(2);
    synced.clock_synced = true;
    ASSERT_TRUE(store->storeBatch(synced));  // 4
    EXPECT_EQ(store->unsyncedMessages(), 3u);

    // NTP steps the wall clock forward by an hour; monotonic time moves on by 5 s meanwhile.
    constexpr std::int64_t kHourMs = 3'600'000;
    clock_.advance(5s);
    clock_.setWall(clock_.wallNow() + 1h);
    auto result = store->restamp();
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(result.value().restamped, 2u);
    EXPECT_EQ(result.value().failed, 0u);
    EXPECT_EQ(result.value().unrecoverable, 1u);
    EXPECT_EQ(store->unsyncedMessages(), 0u);
    EXPECT_EQ(store->get(2)->created_ms, kStartMs + kHourMs);

    auto restamped = shared::decodeBatch(store->get(2)->payload);
    ASSERT_TRUE(restamped);
    EXPECT_TRUE(restamped.value().clock_synced);
    ASSERT_EQ(restamped.value().readings.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(restamped.value().readings[i].time_ms, unsynced.readings[i].time_ms + kHourMs);
        EXPECT_EQ(restamped.value().readings[i].value, unsynced.readings[i].value);
    }
    auto restamped_alert = shared::decodeAlert(store->get(3)->payload);
    ASSERT_TRUE(restamped_alert);
    EXPECT_TRUE(restamped_alert.value().clock_synced);
    EXPECT_EQ(restamped_alert.value().time_ms, unsynced_alert.time_ms + kHourMs);
    auto untouched = shared::decodeBatch(store->get(4)->payload);
    EXPECT_EQ(untouched.value().readings, synced.readings);
    auto other_boot = shared::decodeBatch(store->get(1)->payload);
    EXPECT_FALSE(other_boot.value().clock_synced);

    // Nothing left to do the second time.
    EXPECT_EQ(store->restamp().value().restamped, 0u);
    std::uint64_t payload_bytes = 0;
    for (const auto& m : store->pending(10)) payload_bytes += m.payload.size();
    EXPECT_EQ(store->backlog().bytes, payload_bytes);
}

TEST_F(StoreTest, AcknowledgeDeletesOnlyWhatTheReceiptCovers) {
    auto store = open();
    ASSERT_TRUE(store);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->storeBatch(batch(3)));

    auto deleted = store->acknowledge(receipt(*store, 3));
    ASSERT_TRUE(deleted);
    EXPECT_EQ(deleted.value(), 3u);
    EXPECT_EQ(seqs(store->pending(100)), (std::vector<std::uint64_t>{4, 5, 6, 7, 8, 9, 10}));

    deleted = store->acknowledge(receipt(*store, 3, {{5, 6}, {9, 9}}));
    ASSERT_TRUE(deleted);
    EXPECT_EQ(deleted.value(), 3u);
    EXPECT_EQ(seqs(store->pending(100)), (std::vector<std::uint64_t>{4, 7, 8, 10}));
    EXPECT_FALSE(store->get(5));
    EXPECT_TRUE(store->get(7));

    // Another epoch or another gateway deletes nothing.
    auto other_epoch = receipt(*store, 100);
    other_epoch.epoch = store->epoch() + 1;
    EXPECT_EQ(store->acknowledge(other_epoch).value(), 0u);
    auto other_gateway = receipt(*store, 100);
    other_gateway.gateway_id = "gw-2";
    EXPECT_EQ(store->acknowledge(other_gateway).value(), 0u);
    EXPECT_EQ(store->backlog().messages, 4u);
}

TEST_F(StoreTest, SeqSurvivesReopenAndKeepsGrowingAfterEverythingIsAcknowledged) {
    std::uint64_t epoch = 0;
    {
        auto store = open();
        ASSERT_TRUE(store);
        epoch = store->epoch();
        for (int i = 0; i < 4; ++i) ASSERT_TRUE(store->storeBatch(batch(2)));
        ASSERT_EQ(store->acknowledge(receipt(*store, 4)).value(), 4u);
        EXPECT_EQ(store->backlog().messages, 0u);
    }
    {
        auto store = open();
        ASSERT_TRUE(store);
        EXPECT_FALSE(store->recovered());
        EXPECT_EQ(store->epoch(), epoch);
        EXPECT_EQ(store->lastSeq(), 4u);
        auto next = store->storeAlert(alert(1));
        ASSERT_TRUE(next);
        EXPECT_EQ(next.value(), (shared::Sequence{epoch, 5}));
    }
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_EQ(store->epoch(), epoch);
    EXPECT_EQ(store->backlog().messages, 1u);
    EXPECT_EQ(store->storeBatch(batch(1)).value().seq, 6u);
}

TEST_F(StoreTest, GarbageFileIsMovedAsideAndANewLargerEpochStarts) {
    {
        auto store = open();
        ASSERT_TRUE(store);
        ASSERT_TRUE(store->storeBatch(batch(5)));
    }
    {
        std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
        const std::string garbage(512, '\x5a');
        file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    }
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_TRUE(store->recovered());
    EXPECT_GT(store->epoch(), 1u);
    EXPECT_EQ(store->lastSeq(), 0u);
    EXPECT_EQ(store->backlog().messages, 0u);
    auto seq = store->storeBatch(batch(5));
    ASSERT_TRUE(seq);
    EXPECT_EQ(seq.value(), (shared::Sequence{store->epoch(), 1}));

    const std::string aside = path_ + ".corrupt-" + std::to_string(kStartMs);
    EXPECT_TRUE(fs::exists(aside));
    const auto recovered_epoch = store->epoch();
    store.reset();
    // The replacement is a healthy database that reopens without another recovery.
    auto again = open();
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->recovered());
    EXPECT_EQ(again->epoch(), recovered_epoch);
    EXPECT_EQ(again->backlog().messages, 1u);
}

TEST_F(StoreTest, TruncatedFileIsRecoveredWithAnEpochAboveTheOldOne) {
    std::uint64_t old_epoch = 0;
    {
        auto store = open();
        ASSERT_TRUE(store);
        old_epoch = store->epoch();
        for (std::uint32_t i = 0; i < 40; ++i) ASSERT_TRUE(store->storeBatch(batch(300, i)));
    }
    const auto size = fs::file_size(path_);
    ASSERT_GT(size, 8u * 4096u);
    fs::resize_file(path_, size / 2 + 1000);  // mid-page
    // Found at a later boot. Nothing in a file truncated below its header's page count can be
    // read, the old epoch included: the new epoch comes from the wall clock (Unix seconds).
    clock_.advance(std::chrono::hours(1));
    const std::int64_t now_ms = kStartMs + 3'600'000;
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_TRUE(store->recovered());
    EXPECT_GT(store->epoch(), old_epoch);
    EXPECT_EQ(store->epoch(), static_cast<std::uint64_t>(now_ms / 1000));
    EXPECT_TRUE(store->storeBatch(batch(5)));
    EXPECT_TRUE(fs::exists(path_ + ".corrupt-" + std::to_string(now_ms)));
}

TEST_F(StoreTest, EvictsOldestTelemetryByBytesAndKeepsAlerts) {
    // Every batch of 50 readings is under 1 KiB, uncompressed, so 4 KiB holds only a few.
    auto store = open(options(4 * shared::kKiB));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->storeAlert(alert(1)));  // 1
    for (std::uint32_t i = 0; i < 20; ++i) ASSERT_TRUE(store->storeBatch(batch(50, i)));

    const auto left = store->pending(100);
    EXPECT_LE(store->backlog().bytes, 4 * shared::kKiB);
    ASSERT_GE(left.size(), 2u);
    EXPECT_EQ(left.front().sequence.seq, 1u);  // the alert, older than every batch, stays
    EXPECT_EQ(left.front().lane, Lane::Alert);
    // What is left of the telemetry is the newest, without gaps.
    const std::uint64_t kept = left.size() - 1;
    for (std::size_t i = 1; i < left.size(); ++i) {
        EXPECT_EQ(left[i].sequence.seq, 21 - kept + i);
    }
    const std::uint64_t evicted = 20 - kept;
    EXPECT_EQ(drop(*store, "store_full").batches, evicted);
    EXPECT_EQ(drop(*store, "store_full").readings, evicted * 50);
    EXPECT_NE(metrics_.exposition().find("tern_edge_store_evicted_total{lane=\"telemetry\","
                                         "reason=\"store_full\"} " +
                                         std::to_string(evicted)),
              std::string::npos);
    EXPECT_NE(metrics_.exposition().find(
                  "tern_edge_store_evicted_readings_total{reason=\"store_full\"} " +
                  std::to_string(evicted * 50)),
              std::string::npos);
}

TEST_F(StoreTest, EvictsAlertsOnlyWhenNoTelemetryIsLeft) {
    shared::EncodeOptions plain;
    plain.compression = shared::Compression::None;
    auto sizeOf = [&](shared::TelemetryBatch b) {
        b.gateway_id = "gw-1";
        b.sequence = {1, 1};
        return shared::encodeBatch(b, plain).value().size();
    };
    auto stamped = alert(1);
    stamped.gateway_id = "gw-1";
    stamped.sequence = {1, 1};
    const std::uint64_t alert_bytes = shared::encodeAlert(stamped, plain).value().size();
    const std::uint64_t batch_bytes = sizeOf(batch(60, 1));
    // Room for two batches and two alerts, not three batches.
    const std::uint64_t cap = 2 * batch_bytes + 2 * alert_bytes + batch_bytes / 2;
    auto o = options(cap);
    o.encode = plain;
    auto store = open(o);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->storeBatch(batch(60, 1)));  // 1
    ASSERT_TRUE(store->storeAlert(alert(1)));      // 2
    ASSERT_TRUE(store->storeAlert(alert(2)));      // 3
    ASSERT_TRUE(store->storeBatch(batch(60, 1)));  // 4
    EXPECT_EQ(store->backlog().messages, 4u);
    ASSERT_TRUE(store->storeBatch(batch(60, 1)));  // 5: batch 1 goes, not the older alerts
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{2, 3, 4, 5}));

    // A batch that fits beside one alert but not two: all telemetry goes, then the oldest alert.
    std::size_t readings = 60;
    while (sizeOf(batch(readings, 9)) + 2 * alert_bytes <= cap) ++readings;
    ASSERT_LE(sizeOf(batch(readings, 9)) + alert_bytes, cap);
    auto big = store->storeBatch(batch(readings, 9));  // 6
    ASSERT_TRUE(big) << big.error().message();
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{3, 6}));
    EXPECT_EQ(drop(*store, "store_full").batches, 4u);
    EXPECT_EQ(drop(*store, "store_full").readings, 180u);
    const auto text = metrics_.exposition();
    EXPECT_NE(text.find("tern_edge_store_evicted_total{lane=\"alert\",reason=\"store_full\"} 1"),
              std::string::npos);
    EXPECT_NE(
        text.find("tern_edge_store_evicted_total{lane=\"telemetry\",reason=\"store_full\"} 3"),
        std::string::npos);
    EXPECT_LE(store->backlog().bytes, cap);
}

TEST_F(StoreTest, RejectsAPayloadLargerThanTheWholeStoreWithoutEvicting) {
    auto store = open(options(2 * shared::kKiB));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->storeBatch(batch(10)));
    auto too_big = store->storeBatch(batch(1000));
    ASSERT_FALSE(too_big);
    EXPECT_EQ(too_big.error().code, "too_large");
    EXPECT_EQ(too_big.error().action, shared::ErrorAction::Drop);
    EXPECT_EQ(store->backlog().messages, 1u);
    EXPECT_EQ(store->lastSeq(), 1u);
}

TEST_F(StoreTest, EvictsByAgeWhenStoringAndOnEnforceLimits) {
    auto store = open(options(256 * shared::kMiB, 1h));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->storeBatch(batch(7)));  // 1
    ASSERT_TRUE(store->storeAlert(alert(1)));  // 2
    clock_.advance(30min);
    ASSERT_TRUE(store->storeBatch(batch(7)));  // 3
    clock_.advance(31min);                     // 1 and 2 are 61 minutes old
    ASSERT_TRUE(store->storeBatch(batch(7)));  // 4
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{3, 4}));
    EXPECT_EQ(drop(*store, "max_age").batches, 2u);
    EXPECT_EQ(drop(*store, "max_age").readings, 7u);
    EXPECT_EQ(store->backlog().oldest_created_ms, kStartMs + 30 * 60 * 1000);

    clock_.advance(30min);  // 3 is 61 minutes old, 4 is 30
    ASSERT_TRUE(store->enforceLimits());
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(drop(*store, "max_age").batches, 3u);
    EXPECT_EQ(drop(*store, "max_age").readings, 14u);
    EXPECT_NE(metrics_.exposition().find(
                  "tern_edge_store_evicted_total{lane=\"alert\",reason=\"max_age\"} 1"),
              std::string::npos);
}

TEST_F(StoreTest, DiskFullEvictsOldestTelemetryAndFailsOnlyWhenNothingIsLeft) {
    auto o = options();
    o.max_disk_bytes = 96 * shared::kKiB;
    auto store = open(o);
    ASSERT_TRUE(store);
    for (std::uint32_t i = 0; i < 100; ++i) {
        auto seq = store->storeBatch(batch(200, i));
        ASSERT_TRUE(seq) << i << ": " << seq.error().message();
    }
    const auto disk_full = drop(*store, "disk_full");
    EXPECT_GT(disk_full.batches, 0u);
    EXPECT_EQ(disk_full.readings, disk_full.batches * 200);
    EXPECT_EQ(store->backlog().messages, 100 - disk_full.batches);
    // Survivors are the newest ones.
    const auto left = store->pending(1000);
    ASSERT_FALSE(left.empty());
    EXPECT_EQ(left.back().sequence.seq, 100u);
    EXPECT_EQ(left.front().sequence.seq, 100 - left.size() + 1);

    // A batch bigger than the file may grow: everything older is tried, then a retry error.
    auto huge = store->storeBatch(batch(20000, 7));
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().code, "disk_full");
    EXPECT_EQ(huge.error().action, shared::ErrorAction::Retry);
    EXPECT_EQ(store->backlog().messages, 0u);
    EXPECT_EQ(store->lastSeq(), 100u);
    EXPECT_NE(metrics_.exposition().find("tern_edge_store_write_errors_total 1"),
              std::string::npos);

    // Still usable, and the failed message consumed no seq.
    auto after = store->storeBatch(batch(10));
    ASSERT_TRUE(after);
    EXPECT_EQ(after.value().seq, 101u);
}

TEST_F(StoreTest, SinkAdaptersStoreAndCountFailures) {
    auto store = open(options(2 * shared::kKiB));
    ASSERT_TRUE(store);
    BatchSink& batches = *store;
    AlertSink& alerts = *store;
    batches.onBatch(batch(10));
    alerts.onAlert(alert(3));
    batches.onBatch(batch(1000));  // too large for the store
    EXPECT_EQ(seqs(store->pending(10)), (std::vector<std::uint64_t>{2, 1}));
    EXPECT_EQ(drop(*store, "store_failed").batches, 1u);
    EXPECT_EQ(drop(*store, "store_failed").readings, 1000u);
    // A caller that stores through storeBatch counts its own give-ups the same way.
    store->countFailed(7);
    EXPECT_EQ(drop(*store, "store_failed").batches, 2u);
    EXPECT_EQ(drop(*store, "store_failed").readings, 1007u);
    EXPECT_EQ(store->pending(10).size(), 2u);
}

TEST_F(StoreTest, ConfigTableHasDefaultsAndRejectsUnknownKeys) {
    struct Root {
        StoreConfig store;
    };
    const auto root = shared::ConfigTable<Root>("", "root").table(&Root::store, storeTable());
    auto defaults = shared::loadConfigString("", "t.toml", root);
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults.value().store.path, "/var/lib/tern/edge.db");
    EXPECT_EQ(defaults.value().store.max_bytes, 256 * shared::kMiB);
    EXPECT_EQ(defaults.value().store.max_age, std::chrono::milliseconds(7 * 24h));
    auto set = shared::loadConfigString(
        "[store]\npath = \"/data/e.db\"\nmax_bytes = \"64MiB\"\nmax_age = \"2d\"\n", "t.toml",
        root);
    ASSERT_TRUE(set);
    EXPECT_EQ(set.value().store.max_bytes, 64 * shared::kMiB);
    EXPECT_EQ(set.value().store.max_age, std::chrono::milliseconds(48h));
    EXPECT_FALSE(shared::loadConfigString("[store]\nmax_byte = 5\n", "t.toml", root));
}

// A child stores batches and reports each committed seq; it is killed at a random moment. Every
// reported seq must be in the reopened store, and the file must pass integrity_check.
TEST_F(StoreTest, CommittedMessagesSurviveSigkill) {
    std::mt19937 rng(42);
    for (int round = 0; round < 20; ++round) {
        std::error_code ec;
        fs::remove(path_, ec);
        fs::remove(path_ + "-wal", ec);
        fs::remove(path_ + "-shm", ec);
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::close(fds[0]);
            shared::MetricsRegistry metrics;
            auto store = Store::open(path_, options(), clock_, metrics);
            if (!store) ::_exit(3);
            for (std::uint32_t i = 0;; ++i) {
                auto seq = store.value()->storeBatch(batch(20, i));
                if (!seq) ::_exit(4);
                const std::uint64_t value = seq.value().seq;
                if (::write(fds[1], &value, sizeof value) != sizeof value) ::_exit(5);
            }
        }
        ::close(fds[1]);
        const int kill_after = std::uniform_int_distribution<int>(1, 40)(rng);
        std::vector<std::uint64_t> committed;
        std::uint64_t value = 0;
        while (static_cast<int>(committed.size()) < kill_after &&
               ::read(fds[0], &value, sizeof value) == sizeof value) {
            committed.push_back(value);
        }
        ::kill(child, SIGKILL);
        while (::read(fds[0], &value, sizeof value) == sizeof value) committed.push_back(value);
        ::close(fds[0]);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
        ASSERT_GE(committed.size(), static_cast<std::size_t>(kill_after));

        {
            sqlite3* db = nullptr;
            ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
            sqlite3_stmt* stmt = nullptr;
            ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr),
                      SQLITE_OK);
            ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
            EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "ok");
            sqlite3_finalize(stmt);
            sqlite3_close(db);
        }
        auto store = open();
        ASSERT_TRUE(store);
        EXPECT_FALSE(store->recovered());
        EXPECT_GE(store->lastSeq(), committed.back());
        for (std::uint64_t seq : committed) EXPECT_TRUE(store->get(seq)) << "seq " << seq;
    }
}

}  // namespace
}  // namespace tern::edge
