#include "tern/ingest/timeseries_sink.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tern/ingest/sink_worker.h"
#include "tern/ingest/spool.h"
#include "tern/shared/codec.h"

namespace tern::ingest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using O = RecordOutcome;

constexpr std::int64_t kDayMs = 86'400'000;
// 2026-06-01T00:00:00Z; the clock starts two days later.
const std::int64_t kDay0 =
    std::chrono::sys_days{std::chrono::year{2026} / std::chrono::June / 1}.time_since_epoch() /
    std::chrono::milliseconds{1};
const std::int64_t kNow = kDay0 + 2 * kDayMs;

const std::vector<shared::SensorInfo> kSensors = {
    {0, "temperature", "Cel", shared::SensorKind::Temperature},
    {1, "humidity", "%", shared::SensorKind::Humidity}};

shared::TelemetryBatch batch(std::uint64_t seq, std::int64_t start_ms) {
    shared::TelemetryBatch b;
    b.gateway_id = "gw-1";
    b.sequence = {1, seq};
    b.sent_at_ms = start_ms + 10'000;
    b.clock_synced = true;
    for (std::int64_t i = 0; i < 5; ++i) {
        const auto value = static_cast<double>(i);
        b.readings.push_back({0, start_ms + i * 1'000, 20.0 + value, shared::Quality::Good});
        b.readings.push_back({1, start_ms + i * 1'000, 50.0 - value, shared::Quality::Good});
    }
    return b;
}

shared::Alert alert(std::uint64_t seq, std::int64_t time_ms) {
    shared::Alert a;
    a.gateway_id = "gw-1";
    a.sequence = {1, seq};
    a.incident_id = seq;
    a.rule = "temp-high";
    a.sensor = 0;
    a.severity = shared::Severity::Critical;
    a.value = 81.25;
    a.time_ms = time_ms;
    a.clock_synced = true;
    a.message = "temperature above 80 Cel";
    return a;
}

Incoming incoming(std::uint64_t seq, Kind kind, shared::Bytes payload) {
    Incoming m;
    m.gateway_id = "gw-1";
    m.sequence = {1, seq};
    m.kind = kind;
    m.received_ms = kNow;
    m.payload = std::move(payload);
    return m;
}

Incoming telemetry(const shared::TelemetryBatch& b) {
    auto payload = shared::encodeBatch(b);
    EXPECT_TRUE(payload) << (payload ? "" : payload.error().message());
    return incoming(b.sequence.seq, Kind::Telemetry, payload ? payload.value() : shared::Bytes{});
}

Incoming alertRecord(const shared::Alert& a) {
    auto payload = shared::encodeAlert(a);
    EXPECT_TRUE(payload) << (payload ? "" : payload.error().message());
    return incoming(a.sequence.seq, Kind::Alert, payload ? payload.value() : shared::Bytes{});
}

// As the spool would hand them over: offsets from 1.
std::vector<SpoolRecord> records(const std::vector<Incoming>& messages) {
    std::vector<SpoolRecord> out;
    out.reserve(messages.size());
    std::uint64_t offset = 0;
    for (const auto& m : messages) {
        out.push_back(SpoolRecord{++offset, m.gateway_id, m.sequence, m.kind, m.readings,
                                  m.received_ms, m.payload});
    }
    return out;
}

// Polls until pred holds or the (generous) deadline passes; never a timing assertion.
bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

class TimeseriesSinkTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/tern-tsdb-sink-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        config_.path = (dir_ / "tsdb.db").string();
        config_.cache_bytes = 4 * shared::kMiB;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::unique_ptr<TimeseriesSink> makeSink() {
        auto store = TimeseriesStore::open(config_, clock_, metrics_);
        EXPECT_TRUE(store) << (store ? "" : store.error().message());
        if (!store) return nullptr;
        return std::make_unique<TimeseriesSink>("tsdb", std::move(store.value()), clock_);
    }

    // deliver() is synchronous for this sink: it answers before returning, exactly once.
    static SinkResult deliverNow(TimeseriesSink& sink, std::vector<SpoolRecord> slice) {
        int calls = 0;
        SinkResult result;
        sink.deliver(std::move(slice), [&](SinkResult r) {
            ++calls;
            result = std::move(r);
        });
        EXPECT_EQ(calls, 1);
        return result;
    }

    static std::size_t rawPoints(TimeseriesSink& sink, const std::string& sensor) {
        auto got = sink.store().query("gw-1", sensor, kDay0, kNow + kDayMs, 0);
        EXPECT_TRUE(got) << (got ? "" : got.error().message());
        return got ? got.value().points.size() : 0;
    }

    double metric(const std::string& series) const {
        std::istringstream in(metrics_.exposition());
        for (std::string line; std::getline(in, line);) {
            if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
        }
        return -1;
    }

    fs::path dir_;
    TimeseriesStoreConfig config_;
    shared::ManualClock clock_{shared::fromUnixMillis(kNow)};
    shared::MetricsRegistry metrics_;
};

TEST_F(TimeseriesSinkTest, SpooledBatchesAndAlertsEndUpQueryable) {
    auto spool = Spool::open((dir_ / "spool.db").string(), {}, clock_, metrics_);
    ASSERT_TRUE(spool) << spool.error().message();
    const std::vector<Incoming> messages = {telemetry(batch(1, kNow - 60'000)),
                                            alertRecord(alert(2, kNow - 30'000)),
                                            telemetry(batch(3, kNow - 10'000))};
    ASSERT_TRUE(spool.value()->append(messages));

    auto sink = makeSink();
    ASSERT_TRUE(sink);
    sink->setSensors("gw-1", kSensors);
    SinkWorkerOptions options;
    options.poll_interval = 10ms;
    auto worker =
        SinkWorker::create(*spool.value(), std::move(sink), options, clock_, metrics_).value();
    worker->start();
    ASSERT_TRUE(eventually([&] { return spool.value()->stats().records == 0; }));
    worker->stop(10s);  // the store is used from one thread at a time: query once it is stopped

    EXPECT_EQ(worker->stats().delivered, 3u);
    auto& tsdb = static_cast<TimeseriesSink&>(worker->sink());
    EXPECT_EQ(rawPoints(tsdb, "temperature"), 10u);
    EXPECT_EQ(rawPoints(tsdb, "humidity"), 10u);
    auto minutes =
        tsdb.store().query("gw-1", "temperature", kNow - kHourMs, kNow + kHourMs, kMinuteMs);
    ASSERT_TRUE(minutes) << minutes.error().message();
    std::uint64_t counted = 0;
    for (const auto& point : minutes.value().points) counted += point.count;
    EXPECT_EQ(counted, 10u);
    auto alerts = tsdb.store().alerts(AlertQuery{});
    ASSERT_TRUE(alerts) << alerts.error().message();
    ASSERT_EQ(alerts.value().size(), 1u);
    EXPECT_EQ(alerts.value()[0], alert(2, kNow - 30'000));
}

TEST_F(TimeseriesSinkTest, ARedeliveryStoresNothingTwice) {
    auto sink = makeSink();
    ASSERT_TRUE(sink);
    sink->setSensors("gw-1", kSensors);
    const std::vector<Incoming> messages = {telemetry(batch(1, kNow - 60'000)),
                                            alertRecord(alert(2, kNow - 30'000))};
    const SinkResult first = deliverNow(*sink, records(messages));
    EXPECT_EQ(first.outcomes, (std::vector<O>{O::Delivered, O::Delivered}));
    EXPECT_TRUE(first.error.empty()) << first.error;

    // The spool replays a slice whose cursor move a crash lost.
    const SinkResult again = deliverNow(*sink, records(messages));
    EXPECT_EQ(again.outcomes, (std::vector<O>{O::Delivered, O::Delivered}));
    EXPECT_EQ(rawPoints(*sink, "temperature"), 5u);
    auto minutes =
        sink->store().query("gw-1", "temperature", kNow - kHourMs, kNow + kHourMs, kMinuteMs);
    ASSERT_TRUE(minutes);
    std::uint64_t counted = 0;
    for (const auto& point : minutes.value().points) counted += point.count;
    EXPECT_EQ(counted, 5u);
    auto alerts = sink->store().alerts(AlertQuery{});
    ASSERT_TRUE(alerts);
    EXPECT_EQ(alerts.value().size(), 1u);
    EXPECT_EQ(metric("tern_ingest_tsdb_readings_written_total"), 10);
    EXPECT_EQ(metric("tern_ingest_tsdb_duplicates_ignored_total{kind=\"reading\"}"), 10);
}

TEST_F(TimeseriesSinkTest, AnUndecodablePayloadIsRejectedAndTheRestDelivered) {
    auto sink = makeSink();
    ASSERT_TRUE(sink);
    sink->setSensors("gw-1", kSensors);
    std::vector<Incoming> messages = {
        telemetry(batch(1, kNow - 60'000)),
        incoming(2, Kind::Telemetry, {0xde, 0xad, 0xbe, 0xef}),
        // A valid batch spooled as an alert: the alert decoder refuses it.
        incoming(3, Kind::Alert, telemetry(batch(3, kNow)).payload),
        alertRecord(alert(4, kNow - 30'000)),
    };
    const SinkResult result = deliverNow(*sink, records(messages));
    EXPECT_EQ(result.outcomes,
              (std::vector<O>{O::Delivered, O::Rejected, O::Rejected, O::Delivered}));
    EXPECT_NE(result.error.find("offset 2: "), std::string::npos) << result.error;
    EXPECT_NE(result.error.find("offset 3: "), std::string::npos) << result.error;
    EXPECT_EQ(rawPoints(*sink, "temperature"), 5u);
    auto alerts = sink->store().alerts(AlertQuery{});
    ASSERT_TRUE(alerts);
    EXPECT_EQ(alerts.value().size(), 1u);
}

TEST_F(TimeseriesSinkTest, AStoreErrorMakesEveryDecodableRecordRetry) {
    auto sink = makeSink();
    ASSERT_TRUE(sink);
    const std::vector<Incoming> messages = {incoming(1, Kind::Telemetry, {0x01}),
                                            telemetry(batch(2, kNow - 60'000)),
                                            alertRecord(alert(3, kNow - 30'000))};
    // Another writer holds the database: the store's writes fail (after its busy timeout).
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    const SinkResult failed = deliverNow(*sink, records(messages));
    EXPECT_EQ(failed.outcomes, (std::vector<O>{O::Rejected, O::Retry, O::Retry}));
    EXPECT_NE(failed.error.find("sqlite_error"), std::string::npos) << failed.error;
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);

    const SinkResult retried = deliverNow(*sink, records(messages));
    EXPECT_EQ(retried.outcomes, (std::vector<O>{O::Rejected, O::Delivered, O::Delivered}));
}

TEST_F(TimeseriesSinkTest, SensorsSetFromAnotherThreadApplyBeforeTheNextWrite) {
    auto sink = makeSink();
    ASSERT_TRUE(sink);
    std::thread birth([&] { sink->setSensors("gw-1", kSensors); });
    birth.join();
    // Not applied yet: setSensors() only queues it for the sink's thread.
    auto before = sink->store().query("gw-1", "temperature", kDay0, kNow + kDayMs, 0);
    ASSERT_FALSE(before);
    EXPECT_EQ(before.error().code, "unknown_sensor");

    const SinkResult result = deliverNow(*sink, records({telemetry(batch(1, kNow - 60'000))}));
    EXPECT_EQ(result.outcomes, std::vector<O>{O::Delivered});
    EXPECT_EQ(rawPoints(*sink, "temperature"), 5u);

    // Two births before the sink's thread runs again: the latest wins, applied by tick().
    std::thread rebirths([&] {
        sink->setSensors("gw-1", {{0, "old_name", "Cel", shared::SensorKind::Temperature}});
        sink->setSensors("gw-1", {{0, "inside", "Cel", shared::SensorKind::Temperature}});
    });
    rebirths.join();
    sink->tick();
    EXPECT_EQ(rawPoints(*sink, "inside"), 5u);
    EXPECT_FALSE(sink->store().query("gw-1", "temperature", kDay0, kNow + kDayMs, 0));
    EXPECT_FALSE(sink->store().query("gw-1", "old_name", kDay0, kNow + kDayMs, 0));
}

TEST_F(TimeseriesSinkTest, TickEnforcesRetentionAtMostOnceAnHour) {
    config_.raw_retention = std::chrono::hours{24};
    auto sink = makeSink();
    ASSERT_TRUE(sink);
    sink->setSensors("gw-1", kSensors);
    deliverNow(*sink, records({telemetry(batch(1, kNow - 60'000))}));
    sink->tick();  // the first tick runs retention; today's table stays
    ASSERT_EQ(sink->store().rawDays().size(), 1u);

    // Three days later by the wall clock, but within the hour by the monotonic one: not yet.
    clock_.setWall(shared::fromUnixMillis(kNow + 3 * kDayMs));
    sink->tick();
    EXPECT_EQ(sink->store().rawDays().size(), 1u);

    clock_.advance(1h);
    sink->tick();
    EXPECT_TRUE(sink->store().rawDays().empty());
}

}  // namespace
}  // namespace tern::ingest
