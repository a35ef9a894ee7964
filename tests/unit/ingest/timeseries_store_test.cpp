#include "tern/ingest/timeseries_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace tern::ingest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using shared::Quality;

constexpr std::int64_t kDayMs = 86'400'000;
// 2026-06-01T00:00:00Z, the start of a UTC day, hour and minute.
const std::int64_t kDay0 =
    std::chrono::sys_days{std::chrono::year{2026} / std::chrono::June / 1}.time_since_epoch() /
    std::chrono::milliseconds{1};
// The clock starts two days later, so that kDay0 and the next day are in the past.
const std::int64_t kNow = kDay0 + 2 * kDayMs;

shared::Reading reading(std::uint16_t sensor, std::int64_t time_ms, double value,
                        Quality quality = Quality::Good) {
    return shared::Reading{sensor, time_ms, value, quality};
}

shared::TelemetryBatch batch(std::vector<shared::Reading> readings,
                             std::vector<shared::Aggregate> aggregates = {}) {
    shared::TelemetryBatch b;
    b.gateway_id = "gw-1";
    b.clock_synced = true;
    b.readings = std::move(readings);
    b.aggregates = std::move(aggregates);
    return b;
}

// The value of one series in the Prometheus exposition, or -1 when absent.
double metric(const shared::MetricsRegistry& registry, const std::string& series) {
    std::istringstream in(registry.exposition());
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
}

class TimeseriesStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/tern-tsdb-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        config_.path = (dir_ / "tsdb.db").string();
        config_.cache_bytes = 4 * shared::kMiB;
        store_ = open();
        ASSERT_TRUE(store_);
        ASSERT_TRUE(
            store_->setSensors("gw-1", {{0, "temperature", "C", shared::SensorKind::Temperature},
                                        {1, "humidity", "%", shared::SensorKind::Humidity},
                                        {7, "fan", "rpm", shared::SensorKind::Fan}}));
    }
    void TearDown() override {
        store_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::unique_ptr<TimeseriesStore> open() {
        auto store = TimeseriesStore::open(config_, clock_, metrics_);
        EXPECT_TRUE(store) << (store ? "" : store.error().message());
        return store ? std::move(store.value()) : nullptr;
    }

    WriteResult write(const shared::TelemetryBatch& b, const std::string& gateway = "gw-1") {
        auto result = store_->write(gateway, b);
        EXPECT_TRUE(result) << (result ? "" : result.error().message());
        return result ? result.value() : WriteResult{};
    }

    SeriesResult query(const std::string& sensor, std::int64_t from, std::int64_t to,
                       std::int64_t step, const std::string& gateway = "gw-1") {
        auto result = store_->query(gateway, sensor, from, to, step);
        EXPECT_TRUE(result) << (result ? "" : result.error().message());
        return result ? result.value() : SeriesResult{};
    }

    fs::path dir_;
    TimeseriesStoreConfig config_;
    shared::ManualClock clock_{shared::fromUnixMillis(kNow)};
    shared::MetricsRegistry metrics_;
    std::unique_ptr<TimeseriesStore> store_;
};

SeriesPoint rawPoint(std::int64_t time_ms, double value, Quality quality = Quality::Good) {
    return SeriesPoint{time_ms, value, value, value, value, value, 1, quality};
}

SeriesPoint summary(std::int64_t time_ms, std::uint64_t count, double sum, double min, double max,
                    double first, double last) {
    return SeriesPoint{time_ms,      sum / static_cast<double>(count), min, max, first, last, count,
                       Quality::Good};
}

TEST_F(TimeseriesStoreTest, RawReadingsRoundTripExactly) {
    const std::vector<shared::Reading> readings = {
        reading(0, kDay0 + 1'000, 21.125),
        reading(0, kDay0 + 1'500, -0.1),
        reading(0, kDay0 + 2'001, 1e300, Quality::Uncertain),
        reading(0, kDay0 + 3'000, 4.9e-324, Quality::Bad),
        reading(0, kDay0 + 4'000, 22.0, Quality::TimeUncertain),
        reading(1, kDay0 + 1'000, 55.5)};
    const auto result = write(batch(readings));
    EXPECT_EQ(result.readings_written, 6u);
    EXPECT_EQ(result.readings_duplicate, 0u);

    const auto got = query("temperature", kDay0, kDay0 + 5'000, 0);
    EXPECT_EQ(got.tier, Tier::Raw);
    EXPECT_EQ(got.step_ms, 0);
    const std::vector<SeriesPoint> expected = {
        rawPoint(kDay0 + 1'000, 21.125), rawPoint(kDay0 + 1'500, -0.1),
        rawPoint(kDay0 + 2'001, 1e300, Quality::Uncertain),
        rawPoint(kDay0 + 3'000, 4.9e-324, Quality::Bad),
        rawPoint(kDay0 + 4'000, 22.0, Quality::TimeUncertain)};
    EXPECT_EQ(got.points, expected);
    // [from, to): the end is excluded, the start included.
    EXPECT_EQ(query("temperature", kDay0 + 1'500, kDay0 + 4'000, 0).points.size(), 3u);
    EXPECT_EQ(query("humidity", kDay0, kDay0 + 5'000, 0).points,
              std::vector<SeriesPoint>{rawPoint(kDay0 + 1'000, 55.5)});
}

TEST_F(TimeseriesStoreTest, RollupsForAMinuteAndAnHour) {
    // Minute 0: 1, 2, 6 (a Bad reading is kept raw but left out); minute 1: 10; hour 1: 100.
    write(batch({reading(0, kDay0 + 20'000, 2.0), reading(0, kDay0 + 5'000, 1.0),
                 reading(0, kDay0 + 59'999, 6.0), reading(0, kDay0 + 30'000, 1000.0, Quality::Bad),
                 reading(0, kDay0 + 60'000, 10.0), reading(0, kDay0 + 3'600'000 + 1, 100.0)}));

    const auto minutes = query("temperature", kDay0, kDay0 + 2 * kHourMs, kMinuteMs);
    EXPECT_EQ(minutes.tier, Tier::Minute);
    EXPECT_EQ(minutes.step_ms, kMinuteMs);
    const std::vector<SeriesPoint> expected_minutes = {
        summary(kDay0, 3, 9.0, 1.0, 6.0, 1.0, 6.0),
        summary(kDay0 + 60'000, 1, 10.0, 10.0, 10.0, 10.0, 10.0),
        summary(kDay0 + 3'600'000, 1, 100.0, 100.0, 100.0, 100.0, 100.0)};
    EXPECT_EQ(minutes.points, expected_minutes);

    const auto hours = query("temperature", kDay0, kDay0 + 2 * kHourMs, kHourMs);
    EXPECT_EQ(hours.tier, Tier::Hour);
    const std::vector<SeriesPoint> expected_hours = {
        summary(kDay0, 4, 19.0, 1.0, 10.0, 1.0, 10.0),
        summary(kDay0 + 3'600'000, 1, 100.0, 100.0, 100.0, 100.0, 100.0)};
    EXPECT_EQ(hours.points, expected_hours);

    // Raw with a step below a minute summarises the same way, Bad readings left out too.
    const auto raw = query("temperature", kDay0, kDay0 + 120'000, 30'000);
    EXPECT_EQ(raw.tier, Tier::Raw);
    const std::vector<SeriesPoint> expected_raw = {
        summary(kDay0, 2, 3.0, 1.0, 2.0, 1.0, 2.0),
        summary(kDay0 + 30'000, 1, 6.0, 6.0, 6.0, 6.0, 6.0),
        summary(kDay0 + 60'000, 1, 10.0, 10.0, 10.0, 10.0, 10.0)};
    EXPECT_EQ(raw.points, expected_raw);
}

TEST_F(TimeseriesStoreTest, LateDataUpdatesTheBucketsItBelongsTo) {
    write(batch({reading(0, kDay0 + 10 * kMinuteMs + 1'000, 5.0),
                 reading(0, kDay0 + 10 * kMinuteMs + 2'000, 7.0)}));
    // Arrives later: one reading for the same minute, earlier than both, and one for minute 3.
    write(batch(
        {reading(0, kDay0 + 10 * kMinuteMs + 500, 1.0), reading(0, kDay0 + 3 * kMinuteMs, 3.0)}));

    const std::vector<SeriesPoint> expected_minutes = {
        summary(kDay0 + 3 * kMinuteMs, 1, 3.0, 3.0, 3.0, 3.0, 3.0),
        summary(kDay0 + 10 * kMinuteMs, 3, 13.0, 1.0, 7.0, 1.0, 7.0)};
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, kMinuteMs).points, expected_minutes);
    const std::vector<SeriesPoint> expected_hour = {summary(kDay0, 4, 16.0, 1.0, 7.0, 3.0, 7.0)};
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, kHourMs).points, expected_hour);

    // A day-old reading goes into the older day's table and that day's buckets.
    write(batch({reading(0, kDay0 - kDayMs + 5, 42.0)}));
    EXPECT_EQ(query("temperature", kDay0 - kDayMs, kDay0 - kDayMs + kHourMs, kHourMs).points,
              std::vector<SeriesPoint>{summary(kDay0 - kDayMs, 1, 42.0, 42.0, 42.0, 42.0, 42.0)});
}

// The rows of a raw day table: (start_ms, end_ms, count) per chunk, by start.
std::vector<std::array<std::int64_t, 3>> chunkRows(const std::string& path,
                                                   const std::string& table) {
    sqlite3* db = nullptr;
    std::vector<std::array<std::int64_t, 3>> rows;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* select = nullptr;
    EXPECT_EQ(
        sqlite3_prepare_v2(
            db, ("SELECT start_ms, end_ms, count FROM " + table + " ORDER BY start_ms").c_str(), -1,
            &select, nullptr),
        SQLITE_OK)
        << sqlite3_errmsg(db);
    while (sqlite3_step(select) == SQLITE_ROW) {
        rows.push_back({sqlite3_column_int64(select, 0), sqlite3_column_int64(select, 1),
                        sqlite3_column_int64(select, 2)});
    }
    sqlite3_finalize(select);
    sqlite3_close(db);
    return rows;
}

TEST(RawChunkTest, RoundTripsEveryValueAndRejectsWhatIsNotAChunk) {
    const std::vector<shared::Reading> readings = {
        reading(3, -5'000, -0.0, Quality::TimeUncertain),
        reading(3, -4'999, std::numeric_limits<double>::denorm_min()),
        reading(3, 1'000'000, 1e308, Quality::Bad),
        reading(3, 1'000'000 + (std::int64_t{1} << 40), 21.125, Quality::Uncertain)};
    std::vector<std::uint8_t> bytes;
    encodeRawChunk(readings, bytes);
    std::vector<shared::Reading> back;
    ASSERT_TRUE(decodeRawChunk(bytes, -5'000, readings.size(), 3, back));
    EXPECT_EQ(back, readings);
    EXPECT_TRUE(std::signbit(back[0].value));

    // Short, long, a count that does not match, a repeated time.
    back.clear();
    EXPECT_FALSE(decodeRawChunk(std::span(bytes).first(bytes.size() - 1), -5'000, 4, 3, back));
    auto longer = bytes;
    longer.push_back(0);
    EXPECT_FALSE(decodeRawChunk(longer, -5'000, 4, 3, back));
    EXPECT_FALSE(decodeRawChunk(bytes, -5'000, 3, 3, back));
    std::vector<std::uint8_t> repeated;
    encodeRawChunk(std::span(readings).first(1), repeated);
    repeated.insert(repeated.end(), repeated.begin(), repeated.end());
    EXPECT_FALSE(decodeRawChunk(repeated, -5'000, 2, 3, back));
    // A quality byte is stored as given, as every other field is.
    auto odd_quality = bytes;
    odd_quality[9] = 9;
    back.clear();
    ASSERT_TRUE(decodeRawChunk(odd_quality, -5'000, 4, 3, back));
    EXPECT_EQ(static_cast<int>(back[0].quality), 9);
}

TEST(RawChunkTest, ChunksAreCutAtEachUtcHourAndEveryMaxReadings) {
    // Three readings before 1970 (the hour before zero), then 300 in the first hour.
    std::vector<shared::Reading> readings;
    for (int i = -3; i < 300; ++i) readings.push_back(reading(0, i * 1'000, i));
    std::vector<std::span<const shared::Reading>> chunks;
    cutRawChunks(readings, chunks);
    ASSERT_EQ(chunks.size(), 3u);
    EXPECT_EQ(chunks[0].size(), 3u);
    EXPECT_EQ(chunks[0].back().time_ms, -1'000);
    EXPECT_EQ(chunks[1].size(), kMaxChunkReadings);
    EXPECT_EQ(chunks[1].front().time_ms, 0);
    EXPECT_EQ(chunks[2].size(), 300u - kMaxChunkReadings);
    EXPECT_EQ(chunks[2].back().time_ms, 299'000);
}

TEST_F(TimeseriesStoreTest, ReadingsArePackedAndLateOnesComeBackInTimeOrder) {
    const std::string table = rawTableName(kDay0);
    // One call, one series, one hour: one chunk for three readings.
    write(batch({reading(0, kDay0 + 30'000, 3.0), reading(0, kDay0 + 10'000, 1.0),
                 reading(0, kDay0 + 20'000, 2.0)}));
    EXPECT_EQ(chunkRows(config_.path, table),
              (std::vector<std::array<std::int64_t, 3>>{{kDay0 + 10'000, kDay0 + 30'000, 3}}));

    // Late readings in between get a chunk of their own; a repeated time keeps the first value,
    // also when it repeats within the call.
    const auto late =
        write(batch({reading(0, kDay0 + 25'000, 2.5), reading(0, kDay0 + 20'000, 9.0),
                     reading(0, kDay0 + 15'000, 1.5), reading(0, kDay0 + 15'000, 8.0)}));
    EXPECT_EQ(late.readings_written, 2u);
    EXPECT_EQ(late.readings_duplicate, 2u);
    EXPECT_EQ(chunkRows(config_.path, table).size(), 2u);
    const std::vector<SeriesPoint> expected = {
        rawPoint(kDay0 + 10'000, 1.0), rawPoint(kDay0 + 15'000, 1.5), rawPoint(kDay0 + 20'000, 2.0),
        rawPoint(kDay0 + 25'000, 2.5), rawPoint(kDay0 + 30'000, 3.0)};
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, 0).points, expected);
    EXPECT_EQ(query("temperature", kDay0 + 12'000, kDay0 + 25'000, 0).points,
              std::vector<SeriesPoint>(expected.begin() + 1, expected.begin() + 3));
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kMinuteMs, kMinuteMs).points,
              std::vector<SeriesPoint>{summary(kDay0, 5, 10.0, 1.0, 3.0, 1.0, 3.0)});
    // Raw with a step: the late chunk's readings land in the steps they belong to.
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kMinuteMs, 10'000).points,
              (std::vector<SeriesPoint>{summary(kDay0 + 10'000, 2, 2.5, 1.0, 1.5, 1.0, 1.5),
                                        summary(kDay0 + 20'000, 2, 4.5, 2.0, 2.5, 2.0, 2.5),
                                        summary(kDay0 + 30'000, 1, 3.0, 3.0, 3.0, 3.0, 3.0)}));

    // More readings than a chunk holds, across an hour boundary: chunks split at both.
    std::vector<shared::Reading> many;
    const std::int64_t first = kDay0 + kHourMs - 300 * 1'000;
    for (int i = 0; i < 600; ++i) many.push_back(reading(1, first + i * 1'000, i));
    EXPECT_EQ(write(batch(many)).readings_written, 600u);
    std::vector<std::int64_t> sizes;
    for (const auto& row : chunkRows(config_.path, table)) {
        if (row[0] >= first) sizes.push_back(row[2]);
    }
    EXPECT_EQ(sizes, (std::vector<std::int64_t>{256, 44, 256, 44}));
    const auto humidity = query("humidity", kDay0, kDay0 + 2 * kHourMs, 0).points;
    ASSERT_EQ(humidity.size(), 600u);
    for (std::size_t i = 0; i < humidity.size(); ++i) {
        EXPECT_EQ(humidity[i],
                  rawPoint(first + static_cast<std::int64_t>(i) * 1'000, static_cast<double>(i)));
    }
    // After a reopen the store knows nothing in memory: duplicates are found in the chunks.
    store_.reset();
    store_ = open();
    ASSERT_TRUE(store_);
    const auto again = write(batch({many[0], many[299], many[300], many[599]}));
    EXPECT_EQ(again.readings_duplicate, 4u);
    EXPECT_EQ(again.readings_written, 0u);
}

// Runs SQL on the store's file from a connection of its own: the text of the first column of
// each row, then "error: ..." if the statement failed.
std::vector<std::string> sqlRows(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    std::vector<std::string> rows;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        rows.emplace_back(text == nullptr ? "NULL" : reinterpret_cast<const char*>(text));
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) rows.push_back(std::string("error: ") + sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
}

TEST_F(TimeseriesStoreTest, AChunkThatNoLongerDecodesIsSetAsideAndWritesGoOn) {
    const std::string table = rawTableName(kDay0);
    const std::string next_table = rawTableName(kDay0 + kDayMs);
    write(batch({reading(0, kDay0 + 10'000, 1.0), reading(0, kDay0 + 20'000, 2.0),
                 reading(0, kDay0 + 30'000, 3.0), reading(1, kDay0 + 10'000, 50.0),
                 reading(0, kDay0 + kDayMs + 10'000, 7.0)}));
    const std::vector<std::string> none;
    EXPECT_EQ(sqlRows(config_.path, "UPDATE " + table + " SET readings = x'ff' WHERE sensor = 0"),
              none);
    EXPECT_EQ(sqlRows(config_.path, "UPDATE " + next_table + " SET readings = x'fe'"), none);
    const std::string gateway_id =
        sqlRows(config_.path, "SELECT id FROM gateways WHERE name = 'gw-1'").at(0);

    // A query cannot read the chunk and says which one it is.
    auto broken = store_->query("gw-1", "temperature", kDay0, kDay0 + kHourMs, 0);
    ASSERT_FALSE(broken);
    const std::string why = broken.error().message();
    EXPECT_NE(why.find(table), std::string::npos) << why;
    EXPECT_NE(why.find("does not decode"), std::string::npos) << why;

    // A write that fails later rolls the setting aside back with everything else: a view squats
    // on the name of the day table its second reading needs.
    const std::string view = rawTableName(kNow);
    EXPECT_EQ(sqlRows(config_.path, "CREATE VIEW " + view + " AS SELECT 1"), none);
    EXPECT_FALSE(
        store_->write("gw-1", batch({reading(0, kDay0 + 15'000, 1.5), reading(0, kNow, 9.0)})));
    EXPECT_EQ(sqlRows(config_.path, "SELECT count(*) FROM undecodable_chunks"),
              std::vector<std::string>{"0"});
    EXPECT_EQ(sqlRows(config_.path, "SELECT count(*) FROM " + table + " WHERE sensor = 0"),
              std::vector<std::string>{"1"});
    EXPECT_EQ(sqlRows(config_.path, "DROP VIEW " + view), none);

    // A write into the same series-hour has to read the chunk for duplicates: the chunk is set
    // aside, named and counted, and the write is stored instead of failing on every retry.
    const auto late = write(batch({reading(0, kDay0 + 15'000, 1.5)}));
    const std::string described = table + " gateway id " + gateway_id + " sensor 0 start_ms " +
                                  std::to_string(kDay0 + 10'000);
    EXPECT_EQ(late.undecodable_chunks, std::vector<std::string>{described});
    EXPECT_EQ(late.readings_written, 1u);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_undecodable_chunks_total"), 1);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_write_errors_total"), 1);  // the failed one
    EXPECT_EQ(sqlRows(config_.path, "SELECT raw_table || ' ' || sensor || ' ' || (start_ms - " +
                                        std::to_string(kDay0) +
                                        ") || ' ' || count || ' ' || hex(readings) FROM "
                                        "undecodable_chunks"),
              std::vector<std::string>{table + " 0 10000 3 FF"});
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, 0).points,
              std::vector<SeriesPoint>{rawPoint(kDay0 + 15'000, 1.5)});
    EXPECT_EQ(query("humidity", kDay0, kDay0 + kHourMs, 0).points,
              std::vector<SeriesPoint>{rawPoint(kDay0 + 10'000, 50.0)});
    // The rollups counted the set-aside readings when they were written, and keep them.
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kMinuteMs, kMinuteMs).points.at(0).count, 4u);
    EXPECT_EQ(write(batch({reading(0, kDay0 + kDayMs + 10'000, 6.0)})).undecodable_chunks.size(),
              1u);

    // Set-aside chunks go with their day's raw table, and only with it.
    clock_.setWall(shared::fromUnixMillis(kDay0 + 91 * kDayMs + 1));
    auto retention = store_->enforceRetention();
    ASSERT_TRUE(retention) << retention.error().message();
    EXPECT_EQ(retention.value().tables_dropped, 1u);
    EXPECT_EQ(retention.value().undecodable_chunks_deleted, 1u);
    EXPECT_EQ(sqlRows(config_.path, "SELECT raw_table FROM undecodable_chunks"),
              std::vector<std::string>{next_table});
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_rows_deleted_total{kind=\"undecodable_chunk\"}"),
              1);
}

TEST_F(TimeseriesStoreTest, ManyUndecodableChunksInOneWriteFailItAndSetNoneAside) {
    const std::string table = rawTableName(kDay0);
    const auto chunks = static_cast<std::int64_t>(kMaxUndecodableChunksPerWrite) + 1;
    for (std::int64_t i = 0; i < chunks; ++i) {
        write(batch({reading(0, kDay0 + 10'000 + i * 1'000, 1.0)}));  // a chunk per call
    }
    EXPECT_EQ(sqlRows(config_.path, "UPDATE " + table + " SET readings = x'ff'"),
              std::vector<std::string>{});
    auto failed = store_->write(
        "gw-1", batch({reading(0, kDay0 + 5'000, 2.0), reading(0, kDay0 + 20 * 60'000, 2.0)}));
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, "undecodable_chunks");
    EXPECT_EQ(failed.error().action, shared::ErrorAction::Retry);
    EXPECT_NE(failed.error().message().find(table), std::string::npos) << failed.error().message();
    EXPECT_EQ(sqlRows(config_.path, "SELECT count(*) FROM " + table),
              std::vector<std::string>{std::to_string(chunks)});
    EXPECT_EQ(sqlRows(config_.path, "SELECT count(*) FROM undecodable_chunks"),
              std::vector<std::string>{"0"});
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_undecodable_chunks_total"), 0);
}

TEST_F(TimeseriesStoreTest, AVersion1FileIsConvertedToChunksWhenOpened) {
    write(batch({reading(0, kDay0 + 1'000, 0.5)}));  // interns gw-1 and creates the schema
    store_.reset();
    // Version 1: a row per reading.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    std::string sql = "DROP TABLE " + rawTableName(kDay0) + "; CREATE TABLE " +
                      rawTableName(kDay0) +
                      "(gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, time_ms INTEGER NOT "
                      "NULL, value REAL NOT NULL, quality INTEGER NOT NULL, PRIMARY KEY(gateway, "
                      "sensor, time_ms)) WITHOUT ROWID; PRAGMA user_version=1;";
    for (int i = 0; i < 300; ++i) {
        sql += "INSERT INTO " + rawTableName(kDay0) + " VALUES (1, 0, " +
               std::to_string(kDay0 + i * 1'000) + ", " + std::to_string(i) + ".5, " +
               std::to_string(i % 4) + ");";
    }
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);

    store_ = open();
    ASSERT_TRUE(store_);
    EXPECT_EQ(chunkRows(config_.path, rawTableName(kDay0)).size(), 2u);  // 256 + 44
    const auto points = query("temperature", kDay0, kDay0 + kHourMs, 0).points;
    ASSERT_EQ(points.size(), 300u);
    for (int i = 0; i < 300; ++i) {
        EXPECT_EQ(points[static_cast<std::size_t>(i)],
                  rawPoint(kDay0 + i * 1'000, i + 0.5, static_cast<Quality>(i % 4)));
    }
    EXPECT_EQ(write(batch({reading(0, kDay0 + 7'000, 1.0)})).readings_duplicate, 1u);
    store_.reset();
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* version = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &version, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(version), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(version, 0), 2);
    sqlite3_finalize(version);
    sqlite3_close(db);
}

TEST_F(TimeseriesStoreTest, ReplayingABatchChangesNothing) {
    const auto b =
        batch({reading(0, kDay0 + 1'000, 1.5), reading(0, kDay0 + 61'000, 2.5),
               reading(1, kDay0 + 1'000, 3.5)},
              {shared::Aggregate{7, kDay0, 60'000, 10, 100.0, 200.0, 150.0, 180.0, Quality::Good}});
    const auto first = write(b);
    EXPECT_EQ(first.readings_written, 3u);
    EXPECT_EQ(first.aggregates_written, 1u);
    const auto raw_before = query("temperature", kDay0, kDay0 + kHourMs, 0).points;
    const auto minutes_before = query("temperature", kDay0, kDay0 + kHourMs, kMinuteMs).points;
    const auto hours_before = query("temperature", kDay0, kDay0 + kHourMs, kHourMs).points;

    // Replayed alone, after a reopen (a crash and restart), and twice within one group commit.
    const auto again = write(b);
    EXPECT_EQ(again.readings_written, 0u);
    EXPECT_EQ(again.readings_duplicate, 3u);
    EXPECT_EQ(again.aggregates_duplicate, 1u);
    store_.reset();
    store_ = open();
    ASSERT_TRUE(store_);
    const std::vector<GatewayBatch> twice = {{"gw-1", &b}, {"gw-1", &b}};
    auto many = store_->writeMany(twice);
    ASSERT_TRUE(many) << many.error().message();
    EXPECT_EQ(many.value().readings_duplicate, 6u);
    EXPECT_EQ(many.value().readings_written, 0u);

    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, 0).points, raw_before);
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, kMinuteMs).points, minutes_before);
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, kHourMs).points, hours_before);
    auto aggregates = store_->aggregates("gw-1", "fan", kDay0, kDay0 + kHourMs);
    ASSERT_TRUE(aggregates);
    EXPECT_EQ(aggregates.value().size(), 1u);

    // A new reading among replayed ones counts once, and only it.
    const auto mixed = write(batch({reading(0, kDay0 + 1'000, 99.0),  // same key: first wins
                                    reading(0, kDay0 + 2'000, 4.0)}));
    EXPECT_EQ(mixed.readings_written, 1u);
    EXPECT_EQ(mixed.readings_duplicate, 1u);
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kMinuteMs, kMinuteMs).points,
              std::vector<SeriesPoint>{summary(kDay0, 2, 5.5, 1.5, 4.0, 1.5, 4.0)});
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_readings_written_total"), 4);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_duplicates_ignored_total{kind=\"reading\"}"), 10);
}

TEST_F(TimeseriesStoreTest, StepPicksTheTier) {
    write(batch({reading(0, kDay0 + 1'000, 1.0)}));
    struct Case {
        std::int64_t step;
        Tier tier;
        std::int64_t effective;
    };
    for (const Case& c :
         {Case{0, Tier::Raw, 0}, Case{1, Tier::Raw, 1}, Case{59'999, Tier::Raw, 59'999},
          Case{60'000, Tier::Minute, 60'000}, Case{90'000, Tier::Minute, 120'000},
          Case{3'599'999, Tier::Minute, 3'600'000}, Case{3'600'000, Tier::Hour, 3'600'000},
          Case{5'400'000, Tier::Hour, 7'200'000}, Case{kDayMs, Tier::Hour, kDayMs}}) {
        auto got = store_->query("gw-1", "temperature", kDay0, kDay0 + kHourMs, c.step, 10'000'000);
        ASSERT_TRUE(got) << c.step << ": " << got.error().message();
        EXPECT_EQ(got.value().tier, c.tier) << c.step;
        EXPECT_EQ(got.value().step_ms, c.effective) << c.step;
        ASSERT_EQ(got.value().points.size(), 1u) << c.step;
        EXPECT_EQ(got.value().points[0].count, 1u) << c.step;
        const std::int64_t start =
            c.step == 0 ? kDay0 + 1'000 : (kDay0 + 1'000) / c.effective * c.effective;
        EXPECT_EQ(got.value().points[0].time_ms, start) << c.step;
    }
    // Only the tier's own table is read: a rollup row written behind the store's back shows up in
    // the minute tier and nowhere else.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE rollup_1m SET count = 5, sum_value = 50, max_value = 20",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, kMinuteMs).points.at(0).count, 5u);
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, 30'000).points.at(0).count, 1u);
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kHourMs, kHourMs).points.at(0).count, 1u);
}

TEST_F(TimeseriesStoreTest, QueriesAreBoundedAndSayWhy) {
    std::vector<shared::Reading> readings;
    readings.reserve(20);
    for (int i = 0; i < 20; ++i) readings.push_back(reading(0, kDay0 + i * std::int64_t{1'000}, i));
    write(batch(readings));

    auto raw = store_->query("gw-1", "temperature", kDay0, kDay0 + kDayMs, 0, 19);
    ASSERT_FALSE(raw);
    EXPECT_EQ(raw.error().code, "too_many_points");
    EXPECT_EQ(raw.error().action, shared::ErrorAction::Drop);
    EXPECT_NE(raw.error().detail.find("more than 19 points"), std::string::npos)
        << raw.error().detail;
    EXPECT_TRUE(store_->query("gw-1", "temperature", kDay0, kDay0 + kDayMs, 0, 20));

    // With a step the bound is known before anything is read: 1441 minutes > 1440.
    auto minutes =
        store_->query("gw-1", "temperature", kDay0, kDay0 + kDayMs + 1, kMinuteMs, 1'440);
    ASSERT_FALSE(minutes);
    EXPECT_EQ(minutes.error().code, "too_many_points");
    EXPECT_TRUE(store_->query("gw-1", "temperature", kDay0, kDay0 + kDayMs, kMinuteMs, 1'440));
    // The configured bound applies when the caller gives none.
    EXPECT_FALSE(store_->query("gw-1", "temperature", 0, kNow, 1'000));

    auto empty = store_->query("gw-1", "temperature", kDay0, kDay0, 0);
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code, "invalid_query");
    EXPECT_EQ(store_->query("gw-1", "temperature", kDay0, kDay0 + 1, -5).error().code,
              "invalid_query");
    // Extreme ranges neither overflow nor read a year-zero table name.
    EXPECT_TRUE(store_->query("gw-1", "temperature", std::numeric_limits<std::int64_t>::min(),
                              std::numeric_limits<std::int64_t>::max(), 0, 1'000));
    EXPECT_EQ(query("temperature", kDay0 - 1, std::numeric_limits<std::int64_t>::max(),
                    std::numeric_limits<std::int64_t>::max() / 4)
                  .points.size(),
              1u);
}

TEST_F(TimeseriesStoreTest, OneRawTablePerDayAndRetentionDropsWholeDays) {
    EXPECT_EQ(rawTableName(0), "raw_19700101");
    EXPECT_EQ(rawTableName(-1), "raw_19691231");
    EXPECT_EQ(rawTableName(kDay0 + kDayMs - 1), "raw_20260601");
    EXPECT_EQ(rawTableName(kDay0 + kDayMs), "raw_20260602");

    EXPECT_TRUE(store_->rawDays().empty());
    write(batch({reading(0, kDay0 - kDayMs + 1, 1.0), reading(0, kDay0 + 1, 2.0),
                 reading(0, kDay0 + kDayMs - 1, 3.0), reading(0, kDay0 + kDayMs, 4.0)}));
    const std::int64_t day0 = kDay0 / kDayMs;
    EXPECT_EQ(store_->rawDays(), (std::vector<std::int64_t>{day0 - 1, day0, day0 + 1}));
    store_.reset();
    store_ = open();
    ASSERT_TRUE(store_);
    EXPECT_EQ(store_->rawDays(), (std::vector<std::int64_t>{day0 - 1, day0, day0 + 1}));

    // 90 days after kDay0 - 1 day ended, that day goes; kDay0 (which ends later) stays.
    clock_.setWall(shared::fromUnixMillis(kDay0 + 90 * kDayMs + 1));
    auto retention = store_->enforceRetention();
    ASSERT_TRUE(retention) << retention.error().message();
    EXPECT_EQ(retention.value().tables_dropped, 1u);
    EXPECT_EQ(store_->rawDays(), (std::vector<std::int64_t>{day0, day0 + 1}));
    EXPECT_TRUE(query("temperature", kDay0 - kDayMs, kDay0, 0).points.empty());
    EXPECT_EQ(query("temperature", kDay0 - kDayMs, kDay0 + 2 * kDayMs, 0).points.size(), 3u);
    // Its rollups live on (1-minute rollups are kept a year).
    EXPECT_EQ(query("temperature", kDay0 - kDayMs, kDay0, kMinuteMs).points.size(), 1u);

    // Replaying the dropped day's reading stores nothing and leaves its rollup alone.
    const auto replay = write(batch({reading(0, kDay0 - kDayMs + 1, 1.0)}));
    EXPECT_EQ(replay.readings_expired, 1u);
    EXPECT_EQ(query("temperature", kDay0 - kDayMs, kDay0, kMinuteMs).points.at(0).count, 1u);
    EXPECT_EQ(store_->rawDays(), (std::vector<std::int64_t>{day0, day0 + 1}));

    // Even with the wall clock stepped back, a day once given up stays given up.
    clock_.setWall(shared::fromUnixMillis(kNow));
    EXPECT_EQ(write(batch({reading(0, kDay0 - kDayMs + 1, 1.0)})).readings_expired, 1u);
    store_.reset();
    store_ = open();
    ASSERT_TRUE(store_);
    EXPECT_EQ(write(batch({reading(0, kDay0 - kDayMs + 1, 1.0)})).readings_expired, 1u);

    clock_.setWall(shared::fromUnixMillis(kDay0 + 92 * kDayMs + 1));
    retention = store_->enforceRetention();
    ASSERT_TRUE(retention);
    EXPECT_EQ(retention.value().tables_dropped, 2u);
    EXPECT_TRUE(store_->rawDays().empty());
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_tables_dropped_total"), 3);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'raw_%'",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(stmt, 0), 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

TEST_F(TimeseriesStoreTest, RetentionDeletesRollupsAlertsAndAggregatesByTier) {
    shared::Alert alert;
    alert.sequence = {1, 1};
    alert.time_ms = kDay0;
    alert.rule = "hot";
    ASSERT_TRUE(store_->writeAlert("gw-1", alert));
    write(batch({reading(0, kDay0 + 1, 1.0)},
                {shared::Aggregate{7, kDay0, 60'000, 1, 1.0, 1.0, 1.0, 1.0, Quality::Good}}));
    const auto counts = [&] {
        std::vector<std::size_t> out;
        out.push_back(
            query("temperature", kDay0 - kDayMs, kDay0 + kDayMs, kMinuteMs).points.size());
        out.push_back(query("temperature", kDay0 - kDayMs, kDay0 + kDayMs, kHourMs).points.size());
        out.push_back(
            store_->aggregates("gw-1", "fan", kDay0 - kDayMs, kDay0 + kDayMs).value().size());
        out.push_back(store_->alerts({}).value().size());
        return out;
    };
    EXPECT_EQ(counts(), (std::vector<std::size_t>{1, 1, 1, 1}));
    // Just inside each tier's retention, then just past it.
    clock_.setWall(shared::fromUnixMillis(kDay0 + 90 * kDayMs + kDayMs - 1));
    ASSERT_TRUE(store_->enforceRetention());
    EXPECT_EQ(counts(), (std::vector<std::size_t>{1, 1, 1, 1}));
    clock_.setWall(shared::fromUnixMillis(kDay0 + 91 * kDayMs));
    ASSERT_TRUE(store_->enforceRetention());
    EXPECT_EQ(counts(), (std::vector<std::size_t>{1, 1, 0, 1}));
    clock_.setWall(shared::fromUnixMillis(kDay0 + 365 * kDayMs + kMinuteMs - 1));
    ASSERT_TRUE(store_->enforceRetention());
    EXPECT_EQ(counts(), (std::vector<std::size_t>{1, 1, 0, 1}));
    clock_.setWall(shared::fromUnixMillis(kDay0 + 365 * kDayMs + kMinuteMs));
    auto result = store_->enforceRetention();
    ASSERT_TRUE(result);
    EXPECT_EQ(result.value().minute_rows_deleted, 1u);
    EXPECT_EQ(counts(), (std::vector<std::size_t>{0, 1, 0, 1}));
    clock_.setWall(shared::fromUnixMillis(kDay0 + kDayMs * 365 * 5 + kHourMs));
    result = store_->enforceRetention();
    ASSERT_TRUE(result);
    EXPECT_EQ(result.value().hour_rows_deleted, 1u);
    EXPECT_EQ(result.value().alerts_deleted, 1u);
    EXPECT_EQ(counts(), (std::vector<std::size_t>{0, 0, 0, 0}));
}

TEST_F(TimeseriesStoreTest, SensorsAreNamedByTheLatestBirth) {
    write(batch({reading(0, kDay0, 20.0), reading(7, kDay0, 1200.0)}));
    EXPECT_EQ(query("fan", kDay0, kDay0 + 1, 0).points,
              std::vector<SeriesPoint>{rawPoint(kDay0, 1200.0)});
    auto listed = store_->sensors("gw-1");
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed.value().size(), 3u);
    EXPECT_EQ(listed.value()[2], (shared::SensorInfo{7, "fan", "rpm", shared::SensorKind::Fan}));
    EXPECT_TRUE(store_->sensors("gw-unknown").value().empty());

    auto unknown = store_->query("gw-1", "pressure", kDay0, kDay0 + 1, 0);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, "unknown_sensor");
    EXPECT_NE(unknown.error().detail.find("pressure"), std::string::npos);
    EXPECT_EQ(store_->query("gw-2", "fan", kDay0, kDay0 + 1, 0).error().code, "unknown_sensor");

    // A rebirth replaces the table: index 0 is now "inlet".
    ASSERT_TRUE(store_->setSensors("gw-1", {{0, "inlet", "C", shared::SensorKind::Temperature}}));
    EXPECT_EQ(query("inlet", kDay0, kDay0 + 1, 0).points,
              std::vector<SeriesPoint>{rawPoint(kDay0, 20.0)});
    EXPECT_FALSE(store_->query("gw-1", "temperature", kDay0, kDay0 + 1, 0));
    EXPECT_FALSE(store_->query("gw-1", "fan", kDay0, kDay0 + 1, 0));

    // Another gateway's sensor of the same name is its own series.
    ASSERT_TRUE(store_->setSensors("gw-2", {{0, "inlet", "C", shared::SensorKind::Temperature}}));
    write(batch({reading(0, kDay0, 30.0)}), "gw-2");
    EXPECT_EQ(query("inlet", kDay0, kDay0 + 1, 0, "gw-2").points,
              std::vector<SeriesPoint>{rawPoint(kDay0, 30.0)});

    auto repeated = store_->setSensors(
        "gw-1", {{0, "a", "", shared::SensorKind::Other}, {1, "a", "", shared::SensorKind::Other}});
    ASSERT_FALSE(repeated);
    EXPECT_EQ(repeated.error().code, "invalid_sensors");
    EXPECT_FALSE(store_->setSensors("gw-1", {{0, "", "", shared::SensorKind::Other}}));
    EXPECT_EQ(store_->sensors("gw-1").value().size(), 1u);  // the failed births changed nothing
}

TEST_F(TimeseriesStoreTest, AlertsAreStoredOnceAndQueriedNewestFirst) {
    const auto make = [](std::uint64_t seq, std::int64_t time_ms, std::string rule) {
        shared::Alert a;
        a.gateway_id = "whatever-the-payload-says";
        a.sequence = {3, seq};
        a.incident_id = seq * 10;
        a.rule = std::move(rule);
        a.sensor = 7;
        a.severity = shared::Severity::Critical;
        a.state = shared::AlertState::Firing;
        a.value = 1234.5;
        a.time_ms = time_ms;
        a.clock_synced = true;
        a.message = "fan above 1200 rpm";
        return a;
    };
    const auto first = make(1, kDay0 + 1'000, "fan_fast");
    auto stored = store_->writeAlert("gw-1", first);
    ASSERT_TRUE(stored) << stored.error().message();
    EXPECT_TRUE(stored.value());
    EXPECT_FALSE(store_->writeAlert("gw-1", first).value());  // a replay
    EXPECT_TRUE(store_->writeAlert("gw-2", first).value());   // same seq, another gateway
    auto resolved = make(2, kDay0 + 5'000, "fan_fast");
    resolved.state = shared::AlertState::Resolved;
    resolved.value = std::numeric_limits<double>::quiet_NaN();
    EXPECT_TRUE(store_->writeAlert("gw-1", resolved).value());
    // Without a sequence there is no identity: stored each time.
    auto unsequenced = make(0, kDay0 + 3'000, "cloud_rule");
    EXPECT_TRUE(store_->writeAlert("gw-1", unsequenced).value());
    EXPECT_TRUE(store_->writeAlert("gw-1", unsequenced).value());

    auto all = store_->alerts({});
    ASSERT_TRUE(all);
    ASSERT_EQ(all.value().size(), 5u);
    auto got_resolved = all.value()[0];
    EXPECT_EQ(got_resolved.gateway_id, "gw-1");
    EXPECT_EQ(got_resolved.state, shared::AlertState::Resolved);
    EXPECT_TRUE(std::isnan(got_resolved.value));
    auto expected = first;
    expected.gateway_id = "gw-1";
    EXPECT_EQ(all.value()[3].gateway_id, "gw-2");  // same time: the later-stored one first
    EXPECT_EQ(all.value()[4], expected);

    auto gw1 = store_->alerts({.gateway = "gw-1"}).value();
    EXPECT_EQ(gw1.size(), 4u);
    for (std::size_t i = 1; i < gw1.size(); ++i) EXPECT_GE(gw1[i - 1].time_ms, gw1[i].time_ms);
    EXPECT_EQ(store_->alerts({.gateway = "gw-2"}).value().size(), 1u);
    EXPECT_TRUE(store_->alerts({.gateway = "gw-3"}).value().empty());
    auto window =
        store_->alerts({.gateway = std::nullopt, .from_ms = kDay0 + 1'000, .to_ms = kDay0 + 5'000})
            .value();
    EXPECT_EQ(window.size(), 4u);  // both gateways' first alert and the two unsequenced ones
    auto limited = store_->alerts({.gateway = "gw-1", .limit = 2}).value();
    ASSERT_EQ(limited.size(), 2u);
    EXPECT_EQ(limited[0].time_ms, kDay0 + 5'000);
    EXPECT_EQ(limited[1].time_ms, kDay0 + 3'000);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_alerts_written_total"), 5);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_duplicates_ignored_total{kind=\"alert\"}"), 1);
}

TEST_F(TimeseriesStoreTest, AggregatesAreStoredAsSent) {
    const std::vector<shared::Aggregate> aggregates = {
        {7, kDay0 + 60'000, 60'000, 600, 800.0, 1250.0, 1010.5, 1100.0, Quality::Good},
        {7, kDay0, 60'000, 598, 790.0, 1200.0, 1000.25, 1005.0, Quality::Uncertain},
        {7, kDay0, 10'000, 100, 795.0, 1100.0, 950.0, 1000.0, Quality::Good},
        {1, kDay0, 60'000, 6, 40.0, 41.0, 40.5, 41.0, Quality::Good}};
    const auto result = write(batch({}, aggregates));
    EXPECT_EQ(result.aggregates_written, 4u);
    auto fan = store_->aggregates("gw-1", "fan", kDay0, kDay0 + kHourMs);
    ASSERT_TRUE(fan) << fan.error().message();
    EXPECT_EQ(fan.value(),
              (std::vector<shared::Aggregate>{aggregates[2], aggregates[1], aggregates[0]}));
    // They are not folded into the rollups: the raw readings are the rollups' only source.
    EXPECT_TRUE(query("fan", kDay0, kDay0 + kHourMs, kMinuteMs).points.empty());

    auto bounded = store_->aggregates("gw-1", "fan", kDay0, kDay0 + kHourMs, 2);
    ASSERT_FALSE(bounded);
    EXPECT_EQ(bounded.error().code, "too_many_points");
    EXPECT_EQ(store_->aggregates("gw-1", "nope", kDay0, kDay0 + 1).error().code, "unknown_sensor");
    auto bad = aggregates[0];
    bad.start_ms = kDay0 + 2 * kMinuteMs;
    bad.mean = std::numeric_limits<double>::infinity();
    EXPECT_EQ(write(batch({}, {bad})).aggregates_rejected, 1u);
}

TEST_F(TimeseriesStoreTest, ReadingsItCannotKeepAreCountedAndTheRestStored) {
    const auto result =
        write(batch({reading(0, kDay0, std::numeric_limits<double>::quiet_NaN()),
                     reading(0, kDay0 + 1, std::numeric_limits<double>::infinity()),
                     reading(0, kNow + 24 * kHourMs + 1, 1.0),  // beyond max_future
                     reading(0, kNow + 24 * kHourMs, 2.0),      // just within
                     reading(0, kNow - 90 * kDayMs - kDayMs, 3.0), reading(0, kDay0 + 2, 4.0)}));
    EXPECT_EQ(result.readings_non_finite, 2u);
    EXPECT_EQ(result.readings_future, 1u);
    EXPECT_EQ(result.readings_expired, 1u);
    EXPECT_EQ(result.readings_written, 2u);
    std::uint64_t stored = 0;
    for (const auto& point : query("temperature", 0, kNow + 2 * kDayMs, 30 * kDayMs).points) {
        stored += point.count;
    }
    EXPECT_EQ(stored, 2u);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_readings_rejected_total{reason=\"non_finite\"}"),
              2);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_readings_rejected_total{reason=\"expired\"}"), 1);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_readings_rejected_total{reason=\"future\"}"), 1);
}

TEST_F(TimeseriesStoreTest, AFailedWriteStoresNothingAndForgetsWhatItLearnt) {
    // A view squats on tomorrow's table name, so inserting into "tomorrow" fails mid-transaction,
    // after the store has interned a new gateway and created today's table.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    const std::string view = rawTableName(kNow + kDayMs);
    ASSERT_EQ(sqlite3_exec(db, ("CREATE VIEW " + view + " AS SELECT 1").c_str(), nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    const auto b = batch({reading(0, kNow, 1.0), reading(0, kNow + kDayMs, 2.0)});
    auto failed = store_->write("gw-new", b);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().action, shared::ErrorAction::Retry);
    EXPECT_EQ(failed.error().code, "sqlite_error");
    EXPECT_TRUE(store_->rawDays().empty());
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_write_errors_total"), 1);
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_readings_written_total"), 0);

    ASSERT_EQ(sqlite3_exec(db, ("DROP VIEW " + view).c_str(), nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    ASSERT_TRUE(store_->setSensors("gw-new", {{0, "t", "C", shared::SensorKind::Temperature}}));
    EXPECT_EQ(write(b, "gw-new").readings_written, 2u);
    EXPECT_EQ(query("t", kNow, kNow + 2 * kDayMs, 0, "gw-new").points.size(), 2u);
    EXPECT_EQ(store_->rawDays().size(), 2u);
}

TEST_F(TimeseriesStoreTest, AGroupCommitWritesManyGatewaysAtOnce) {
    ASSERT_TRUE(store_->setSensors("gw-2", {{0, "temperature", "C", shared::SensorKind::Other}}));
    const auto a = batch({reading(0, kDay0 + 1'000, 1.0), reading(0, kDay0 + 2'000, 2.0)});
    const auto b = batch({reading(0, kDay0 + 1'500, 10.0)});
    const std::vector<GatewayBatch> group = {{"gw-1", &a}, {"gw-2", &b}, {"gw-1", &b}};
    auto result = store_->writeMany(group);
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(result.value().readings_written, 4u);
    // One minute row per series, summing both batches of gw-1.
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kMinuteMs, kMinuteMs).points,
              std::vector<SeriesPoint>{summary(kDay0, 3, 13.0, 1.0, 10.0, 1.0, 2.0)});
    EXPECT_EQ(query("temperature", kDay0, kDay0 + kMinuteMs, kMinuteMs, "gw-2").points,
              std::vector<SeriesPoint>{summary(kDay0, 1, 10.0, 10.0, 10.0, 10.0, 10.0)});
    EXPECT_TRUE(store_->sync());
    EXPECT_EQ(metric(metrics_, "tern_ingest_tsdb_write_seconds_count"), 1);
}

TEST_F(TimeseriesStoreTest, ASecondConnectionCanServeQueries) {
    shared::MetricsRegistry reader_metrics;
    auto reader = TimeseriesStore::open(config_, clock_, reader_metrics);
    ASSERT_TRUE(reader) << reader.error().message();
    // Tables created after the reader opened are found: queries read the schema afresh.
    write(batch({reading(0, kDay0 + kDayMs + 5, 8.0)}));
    auto got = reader.value()->query("gw-1", "temperature", kDay0, kDay0 + 2 * kDayMs, 0);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(got.value().points, std::vector<SeriesPoint>{rawPoint(kDay0 + kDayMs + 5, 8.0)});
}

TEST_F(TimeseriesStoreTest, OpenRefusesWhatItCannotUse) {
    shared::MetricsRegistry other;
    auto config = config_;
    config.minute_retention = config.raw_retention - 1ms;
    auto out_of_order = TimeseriesStore::open(config, clock_, other);
    ASSERT_FALSE(out_of_order);
    EXPECT_EQ(out_of_order.error().code, "invalid_config");
    EXPECT_EQ(out_of_order.error().action, shared::ErrorAction::Stop);

    config = config_;
    config.path = (dir_ / "missing" / "tsdb.db").string();
    auto missing = TimeseriesStore::open(config, clock_, other);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, "tsdb_open_failed");

    store_.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    auto newer = TimeseriesStore::open(config_, clock_, other);
    ASSERT_FALSE(newer);
    EXPECT_NE(newer.error().detail.find("schema version 99"), std::string::npos);
}

TEST(TimeseriesStoreConfigTest, DefaultsAndRanges) {
    auto loaded =
        shared::loadConfigString(R"(raw_retention = "30d")", "tsdb.toml", timeseriesStoreTable());
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded.value().raw_retention, std::chrono::hours{24 * 30});
    EXPECT_EQ(loaded.value().minute_retention, std::chrono::hours{24 * 365});
    EXPECT_EQ(loaded.value().hour_retention, std::chrono::hours{24 * 365 * 5});
    EXPECT_EQ(loaded.value().max_points, 11'000);
    EXPECT_FALSE(
        shared::loadConfigString(R"(raw_retention = "1h")", "tsdb.toml", timeseriesStoreTable()));
    EXPECT_FALSE(
        shared::loadConfigString(R"(retention = "1d")", "tsdb.toml", timeseriesStoreTable()));
}

}  // namespace
}  // namespace tern::ingest
