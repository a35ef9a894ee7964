#include "tern/ingest/timeseries_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "tern/shared/sqlite.h"

namespace tern::ingest {

using namespace std::chrono_literals;
using shared::Error;
using shared::Result;

shared::ConfigTable<TimeseriesStoreConfig> timeseriesStoreTable() {
    using Config = TimeseriesStoreConfig;
    constexpr std::chrono::milliseconds kDay = 24h;
    return shared::ConfigTable<Config>(
               "tsdb", "Embedded time-series store (SQLite): raw readings, rollups, alerts")
        .string("path", &Config::path, "/var/lib/tern/tsdb.db", "SQLite database file")
        .duration("raw_retention", &Config::raw_retention, 90 * kDay, {kDay, 7300 * kDay},
                  "Raw readings and gateway aggregates are kept this long (whole UTC days)")
        .duration("minute_retention", &Config::minute_retention, 365 * kDay, {kDay, 7300 * kDay},
                  "1-minute rollups are kept this long; at least raw_retention")
        .duration("hour_retention", &Config::hour_retention, 5 * 365 * kDay, {kDay, 7300 * kDay},
                  "1-hour rollups and alerts are kept this long; at least minute_retention")
        .duration("max_future", &Config::max_future, kDay, {1min, 7 * kDay},
                  "Readings further ahead of the ingest's clock are rejected")
        .byteSize("cache_bytes", &Config::cache_bytes, 64 * shared::kMiB,
                  {shared::kMiB, 64 * shared::kGiB}, "SQLite page cache")
        .integer("max_points", &Config::max_points, 11'000, {1, 10'000'000}, "points",
                 "Most points one query may return unless the caller asks for fewer");
}

namespace {

constexpr std::int64_t kDayMs = 86'400'000;
// 1: a row per raw reading; 2: raw readings packed in chunks (converted on open).
constexpr int kSchemaVersion = 2;
constexpr std::int64_t kWalCheckpointPages = 16384;

using Db = shared::SqliteDb;
using Statement = shared::SqliteStatement;
using shared::ScopedStatement;

std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
    const std::int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::int64_t floorTo(std::int64_t t, std::int64_t step) { return floorDiv(t, step) * step; }

// Table names sort as the days do only with four-digit years, which every time the store accepts
// has; queries clamp their ranges to them.
constexpr std::int64_t kFirstNamedDay = -354'285;  // 1000-01-01
constexpr std::int64_t kLastNamedDay = 2'932'896;  // 9999-12-31

std::string dayTableName(std::int64_t day) {
    const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day}}};
    return fmt::format("raw_{:04d}{:02d}{:02d}", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

std::optional<std::int64_t> dayOfTableName(std::string_view name) {
    constexpr std::string_view kPrefix = "raw_";
    if (name.size() != kPrefix.size() + 8 || !name.starts_with(kPrefix)) return std::nullopt;
    const char* digits = name.data() + kPrefix.size();
    int year = 0;
    unsigned month = 0;
    unsigned day = 0;
    if (std::from_chars(digits, digits + 4, year).ptr != digits + 4 ||
        std::from_chars(digits + 4, digits + 6, month).ptr != digits + 6 ||
        std::from_chars(digits + 6, digits + 8, day).ptr != digits + 8) {
        return std::nullopt;
    }
    const std::chrono::year_month_day ymd{std::chrono::year{year}, std::chrono::month{month},
                                          std::chrono::day{day}};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

std::string describe(sqlite3* db, int rc) {
    std::string text = sqlite3_errstr(rc);
    if (db != nullptr) text += std::string(" (") + sqlite3_errmsg(db) + ")";
    return text;
}

Error sqliteError(sqlite3* db, int rc) {
    if ((rc & 0xff) == SQLITE_FULL) return Error::retry("disk_full", describe(db, rc));
    return Error::retry("sqlite_error", describe(db, rc));
}

int exec(sqlite3* db, const std::string& sql) {
    return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
}

constexpr std::string_view kRollupColumns =
    "gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, bucket_ms INTEGER NOT NULL, "
    "count INTEGER NOT NULL, sum_value REAL NOT NULL, min_value REAL NOT NULL, "
    "max_value REAL NOT NULL, first_ms INTEGER NOT NULL, first_value REAL NOT NULL, "
    "last_ms INTEGER NOT NULL, last_value REAL NOT NULL, PRIMARY KEY(gateway, sensor, bucket_ms)";

std::string schemaSql() {
    return fmt::format(R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateways(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS sensors(
    gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, name TEXT NOT NULL, unit TEXT NOT NULL,
    kind INTEGER NOT NULL, PRIMARY KEY(gateway, sensor), UNIQUE(gateway, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1m({0}) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h({0}) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aggregates(
    gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, start_ms INTEGER NOT NULL,
    window_ms INTEGER NOT NULL, count INTEGER NOT NULL, min_value REAL NOT NULL,
    max_value REAL NOT NULL, mean_value REAL NOT NULL, last_value REAL NOT NULL,
    quality INTEGER NOT NULL, PRIMARY KEY(gateway, sensor, start_ms, window_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts(
    id INTEGER PRIMARY KEY, gateway INTEGER NOT NULL,
    -- NULL when the alert has no sequence: such alerts have no identity to deduplicate by.
    epoch INTEGER, seq INTEGER,
    incident_id INTEGER NOT NULL, rule TEXT NOT NULL, sensor INTEGER NOT NULL,
    severity INTEGER NOT NULL, state INTEGER NOT NULL, value REAL, time_ms INTEGER NOT NULL,
    clock_synced INTEGER NOT NULL, message TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_identity ON alerts(gateway, epoch, seq);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts(time_ms);
CREATE INDEX IF NOT EXISTS alerts_by_gateway ON alerts(gateway, time_ms);
-- Raw chunks that no longer decoded when a write had to read them (see setAsideChunk): kept
-- byte for byte for an operator, and deleted by retention with their day's raw table.
CREATE TABLE IF NOT EXISTS undecodable_chunks(
    raw_table TEXT NOT NULL, gateway INTEGER NOT NULL, sensor INTEGER NOT NULL,
    start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, count INTEGER NOT NULL, readings BLOB,
    set_aside_ms INTEGER NOT NULL);
)sql",
                       kRollupColumns);
}

std::string upsertRollupSql(std::string_view table) {
    // SET expressions all see the row as it was, so their order does not matter. Times within a
    // series are unique (they are the raw key), so first and last never tie.
    return fmt::format(
        "INSERT INTO {}(gateway, sensor, bucket_ms, count, sum_value, min_value, max_value, "
        "first_ms, first_value, last_ms, last_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(gateway, sensor, bucket_ms) DO UPDATE SET "
        "count = count + excluded.count, sum_value = sum_value + excluded.sum_value, "
        "min_value = min(min_value, excluded.min_value), "
        "max_value = max(max_value, excluded.max_value), "
        "first_value = CASE WHEN excluded.first_ms < first_ms THEN excluded.first_value "
        "ELSE first_value END, first_ms = min(first_ms, excluded.first_ms), "
        "last_value = CASE WHEN excluded.last_ms > last_ms THEN excluded.last_value "
        "ELSE last_value END, last_ms = max(last_ms, excluded.last_ms)",
        table);
}

// count, sum, min, max, first and last of some readings of one series.
struct Summary {
    std::uint64_t count = 0;
    double sum = 0.0;
    double min = 0.0;
    double max = 0.0;
    std::int64_t first_ms = 0;
    double first = 0.0;
    std::int64_t last_ms = 0;
    double last = 0.0;

    void add(std::int64_t time_ms, double value) {
        if (count == 0) {
            *this = Summary{1, value, value, value, time_ms, value, time_ms, value};
            return;
        }
        count += 1;
        sum += value;
        min = std::min(min, value);
        max = std::max(max, value);
        if (time_ms < first_ms) {
            first_ms = time_ms;
            first = value;
        }
        if (time_ms > last_ms) {
            last_ms = time_ms;
            last = value;
        }
    }
    void merge(const Summary& other) {
        if (count == 0) {
            *this = other;
            return;
        }
        count += other.count;
        sum += other.sum;
        min = std::min(min, other.min);
        max = std::max(max, other.max);
        if (other.first_ms < first_ms) {
            first_ms = other.first_ms;
            first = other.first;
        }
        if (other.last_ms > last_ms) {
            last_ms = other.last_ms;
            last = other.last;
        }
    }
    SeriesPoint point(std::int64_t time_ms) const {
        return SeriesPoint{time_ms, sum / static_cast<double>(count),
                           min,     max,
                           first,   last,
                           count,   shared::Quality::Good};
    }
};

struct BucketKey {
    std::int64_t gateway = 0;
    std::int64_t sensor = 0;
    std::int64_t bucket_ms = 0;
    friend bool operator==(const BucketKey&, const BucketKey&) = default;
    friend auto operator<=>(const BucketKey&, const BucketKey&) = default;
};

struct BucketKeyHash {
    std::size_t operator()(const BucketKey& key) const {
        std::uint64_t h = static_cast<std::uint64_t>(key.gateway) * 0x9E3779B97F4A7C15ULL;
        h ^= static_cast<std::uint64_t>(key.sensor) + 0x7F4A7C15ULL + (h << 6) + (h >> 2);
        h ^=
            static_cast<std::uint64_t>(key.bucket_ms) * 0xC2B2AE3D27D4EB4FULL + (h << 6) + (h >> 2);
        return static_cast<std::size_t>(h);
    }
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        return std::hash<std::string_view>{}(text);
    }
};

constexpr std::array<std::string_view, 3> kRejectReasons = {"non_finite", "expired", "future"};
enum class Reject : std::size_t { NonFinite = 0, Expired = 1, Future = 2 };

constexpr std::array<std::int64_t, 3> kTierMs = {0, kMinuteMs, kHourMs};

// a + b, held at the int64 range instead of overflowing.
std::int64_t saturatingAdd(std::int64_t a, std::int64_t b) {
    std::int64_t out = 0;
    if (!__builtin_add_overflow(a, b, &out)) return out;
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
}

// A reading waiting in a write call.
struct Pending {
    std::int64_t gateway = 0;
    shared::Reading reading;
};

struct DayStatements {
    Statement insert;
    Statement chunks;  // a series' chunks starting in [?, ?)
    // Created by this store, and nothing about it forgotten since: latest_stored then knows
    // every series-hour that has chunks in it.
    bool created_here = false;
};

// Series-hours whose latest stored time the store remembers, at most: about 70 MB. Past it, all
// but the last two hours written are forgotten (see trimStoredTimes).
constexpr std::size_t kMaxRememberedSeriesHours = std::size_t{1} << 20;

// Binds and runs a day table's INSERT (gateway, sensor, start_ms, end_ms, count, readings) for
// one chunk; `bytes` is scratch space.
int insertRawChunk(sqlite3_stmt* insert, std::int64_t gateway,
                   std::span<const shared::Reading> chunk, std::vector<std::uint8_t>& bytes) {
    bytes.clear();
    encodeRawChunk(chunk, bytes);
    sqlite3_bind_int64(insert, 1, gateway);
    sqlite3_bind_int(insert, 2, chunk.front().sensor);
    sqlite3_bind_int64(insert, 3, chunk.front().time_ms);
    sqlite3_bind_int64(insert, 4, chunk.back().time_ms);
    sqlite3_bind_int64(insert, 5, static_cast<sqlite3_int64>(chunk.size()));
    sqlite3_bind_blob(insert, 6, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
    // Every parameter is bound again for the next chunk: no clear_bindings on this path.
    const int rc = sqlite3_step(insert);
    sqlite3_reset(insert);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

std::span<const std::uint8_t> blobOf(sqlite3_stmt* stmt, int column) {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, column));
    const int size = sqlite3_column_bytes(stmt, column);
    return {data, data == nullptr ? 0 : static_cast<std::size_t>(size)};
}

// A series' chunks that start in [?3, ?4), in the columns decodeChunkRow reads, then end_ms.
std::string selectRawChunksSql(const std::string& table) {
    return "SELECT start_ms, count, readings, end_ms FROM " + table +
           " WHERE gateway = ? AND sensor = ? AND start_ms >= ? AND start_ms < ? ORDER BY start_ms";
}

// How errors, logs and WriteResult name one chunk.
std::string chunkName(std::string_view table, std::int64_t gateway, std::int64_t sensor,
                      std::int64_t start_ms) {
    return fmt::format("{} gateway id {} sensor {} start_ms {}", table, gateway, sensor, start_ms);
}

// The chunk in the current row of a SELECT whose first columns are start_ms, count, readings,
// decoded into `out` (cleared first) with `sensor` set; false if it does not decode.
bool decodeChunkRow(sqlite3_stmt* select, std::uint16_t sensor, std::vector<shared::Reading>& out) {
    out.clear();
    return decodeRawChunk(blobOf(select, 2), sqlite3_column_int64(select, 0),
                          static_cast<std::size_t>(sqlite3_column_int64(select, 1)), sensor, out);
}

// Version 1 kept a row per reading in raw_YYYYMMDD(gateway, sensor, time_ms, value, quality).
// Rewrites each such table as chunks under the same name, inside the caller's transaction.
int convertRowsToChunks(sqlite3* db) {
    std::vector<std::string> tables;
    {
        sqlite3_stmt* raw = nullptr;
        int rc = sqlite3_prepare_v2(
            db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'raw_%'", -1,
            &raw, nullptr);
        Statement list(raw);
        if (rc != SQLITE_OK) return rc;
        while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
            const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
            if (name != nullptr && dayOfTableName(name)) tables.emplace_back(name);
        }
        if (rc != SQLITE_DONE) return rc;
    }
    for (const auto& table : tables) {
        const std::string old = table + "_v1";
        int rc = exec(db, "ALTER TABLE " + table + " RENAME TO " + old);
        if (rc == SQLITE_OK) rc = exec(db, createRawTableSql(table));
        if (rc != SQLITE_OK) return rc;
        sqlite3_stmt* select_raw = nullptr;
        sqlite3_stmt* insert_raw = nullptr;
        rc = sqlite3_prepare_v2(db,
                                ("SELECT gateway, sensor, time_ms, value, quality FROM " + old +
                                 " ORDER BY gateway, sensor, time_ms")
                                    .c_str(),
                                -1, &select_raw, nullptr);
        Statement select(select_raw);
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_prepare_v2(db, insertRawChunkSql(table).c_str(), -1, &insert_raw, nullptr);
        Statement insert(insert_raw);
        if (rc != SQLITE_OK) return rc;
        // A series at a time (a day of it at most: version 1 kept a table per day).
        std::vector<shared::Reading> series;
        std::vector<std::span<const shared::Reading>> chunks;
        std::vector<std::uint8_t> bytes;
        std::int64_t gateway = 0;
        const auto flush = [&] {
            chunks.clear();
            cutRawChunks(series, chunks);
            for (const auto& chunk : chunks) {
                if (const int step = insertRawChunk(insert_raw, gateway, chunk, bytes);
                    step != SQLITE_OK) {
                    return step;
                }
            }
            series.clear();
            return SQLITE_OK;
        };
        while ((rc = sqlite3_step(select_raw)) == SQLITE_ROW) {
            const std::int64_t row_gateway = sqlite3_column_int64(select_raw, 0);
            const shared::Reading reading{
                static_cast<std::uint16_t>(sqlite3_column_int(select_raw, 1)),
                sqlite3_column_int64(select_raw, 2), sqlite3_column_double(select_raw, 3),
                static_cast<shared::Quality>(sqlite3_column_int(select_raw, 4))};
            if (!series.empty() &&
                (row_gateway != gateway || reading.sensor != series.front().sensor)) {
                if (const int step = flush(); step != SQLITE_OK) return step;
            }
            gateway = row_gateway;
            series.push_back(reading);
        }
        if (rc != SQLITE_DONE) return rc;
        if (rc = flush(); rc != SQLITE_OK) return rc;
        select.reset();
        insert.reset();
        if (rc = exec(db, "DROP TABLE " + old); rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

}  // namespace

std::string rawTableName(std::int64_t time_ms) { return dayTableName(floorDiv(time_ms, kDayMs)); }

std::string insertRawChunkSql(const std::string& table) {
    return "INSERT INTO " + table +
           "(gateway, sensor, start_ms, end_ms, count, readings) VALUES (?, ?, ?, ?, ?, ?)";
}

// synchronous=NORMAL: see "Durable when" in the header; the spool is the durable copy until
// sync(). A checkpoint costs two fsyncs and a group commit of series-keyed rows dirties about a
// page per series, so with SQLite's default (1000 pages) nearly every commit would checkpoint;
// 16384 pages (64 MiB at 4 KiB) checkpoints every dozen or so commits, and journal_size_limit
// gives the disk back after each checkpoint.
std::string storePragmasSql(std::uint64_t cache_bytes) {
    return fmt::format(
        "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-{}; PRAGMA temp_store=MEMORY; "
        "PRAGMA wal_autocheckpoint={}; PRAGMA journal_size_limit={};",
        std::max<std::uint64_t>(1, cache_bytes / shared::kKiB), kWalCheckpointPages,
        kWalCheckpointPages * 4096);
}

// The primary key (an index beside the rowid table) orders a day's chunks by series and time, so
// a query reads a range of it. A rowid table rather than WITHOUT ROWID: a chunk of a few
// kilobytes fits a table leaf page, where an index page would spill it to overflow pages.
std::string createRawTableSql(const std::string& table) {
    return "CREATE TABLE IF NOT EXISTS " + table +
           "(gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, start_ms INTEGER NOT NULL, "
           "end_ms INTEGER NOT NULL, count INTEGER NOT NULL, readings BLOB NOT NULL, "
           "PRIMARY KEY(gateway, sensor, start_ms))";
}

void encodeRawChunk(std::span<const shared::Reading> ascending, std::vector<std::uint8_t>& out) {
    if (ascending.empty()) return;
    std::int64_t previous = ascending.front().time_ms;
    for (const auto& reading : ascending) {
        auto delta = static_cast<std::uint64_t>(reading.time_ms - previous);
        previous = reading.time_ms;
        while (delta >= 0x80) {
            out.push_back(static_cast<std::uint8_t>(delta | 0x80));
            delta >>= 7;
        }
        out.push_back(static_cast<std::uint8_t>(delta));
        const auto bits = std::bit_cast<std::uint64_t>(reading.value);
        for (int shift = 0; shift < 64; shift += 8) {
            out.push_back(static_cast<std::uint8_t>(bits >> shift));
        }
        out.push_back(static_cast<std::uint8_t>(reading.quality));
    }
}

void cutRawChunks(std::span<const shared::Reading> ascending,
                  std::vector<std::span<const shared::Reading>>& out) {
    std::size_t first = 0;
    for (std::size_t i = 1; i <= ascending.size(); ++i) {
        if (i == ascending.size() || i - first == kMaxChunkReadings ||
            floorDiv(ascending[i].time_ms, kHourMs) !=
                floorDiv(ascending[first].time_ms, kHourMs)) {
            out.push_back(ascending.subspan(first, i - first));
            first = i;
        }
    }
}

bool decodeRawChunk(std::span<const std::uint8_t> chunk, std::int64_t start_ms, std::size_t count,
                    std::uint16_t sensor, std::vector<shared::Reading>& out) {
    std::size_t at = 0;
    std::int64_t time = start_ms;
    for (std::size_t i = 0; i < count; ++i) {
        std::uint64_t delta = 0;
        for (int shift = 0;; shift += 7) {
            if (at == chunk.size() || shift > 56) return false;
            const std::uint8_t byte = chunk[at++];
            delta |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            if ((byte & 0x80) == 0) break;
        }
        if (chunk.size() - at < 9 || (i == 0 && delta != 0) || (i > 0 && delta == 0)) return false;
        time = static_cast<std::int64_t>(static_cast<std::uint64_t>(time) + delta);
        std::uint64_t bits = 0;
        for (int b = 0; b < 8; ++b) bits |= static_cast<std::uint64_t>(chunk[at++]) << (8 * b);
        // Stored as given, like every other field (the codec validates what gateways send).
        const auto quality = static_cast<shared::Quality>(chunk[at++]);
        out.push_back(shared::Reading{sensor, time, std::bit_cast<double>(bits), quality});
    }
    return at == chunk.size();
}

struct TimeseriesStore::Impl {
    Impl(const TimeseriesStoreConfig& c, const shared::Clock& clk, shared::MetricsRegistry& metrics)
        : config(c), clock(clk) {
        readings_written = &metrics.counter("tern_ingest_tsdb_readings_written_total",
                                            "Raw readings committed to the time-series store");
        for (const char* kind : {"reading", "aggregate", "alert"}) {
            duplicates.push_back(
                &metrics.counter("tern_ingest_tsdb_duplicates_ignored_total",
                                 "Items already stored (a replay or a resend), left as they were",
                                 {{"kind", kind}}));
        }
        for (std::size_t i = 0; i < kRejectReasons.size(); ++i) {
            readings_rejected[i] =
                &metrics.counter("tern_ingest_tsdb_readings_rejected_total",
                                 "Readings the time-series store did not accept, by reason",
                                 {{"reason", std::string(kRejectReasons[i])}});
        }
        aggregates_written = &metrics.counter("tern_ingest_tsdb_aggregates_written_total",
                                              "Gateway window aggregates committed");
        aggregates_rejected = &metrics.counter(
            "tern_ingest_tsdb_aggregates_rejected_total",
            "Gateway window aggregates not accepted (non-finite, expired, future)");
        alerts_written =
            &metrics.counter("tern_ingest_tsdb_alerts_written_total", "Alerts committed");
        tables_dropped = &metrics.counter("tern_ingest_tsdb_tables_dropped_total",
                                          "Raw day tables dropped by retention");
        for (const char* kind :
             {"rollup_1m", "rollup_1h", "aggregate", "alert", "undecodable_chunk"}) {
            rows_deleted.push_back(&metrics.counter("tern_ingest_tsdb_rows_deleted_total",
                                                    "Rows deleted by retention", {{"kind", kind}}));
        }
        write_errors = &metrics.counter("tern_ingest_tsdb_write_errors_total",
                                        "Write calls that failed and stored nothing");
        undecodable_chunks = &metrics.counter(
            "tern_ingest_tsdb_undecodable_chunks_total",
            "Stored raw chunks that no longer decoded, set aside in the undecodable_chunks table");
        write_seconds = &metrics.histogram("tern_ingest_tsdb_write_seconds",
                                           "Duration of one write or group commit, commit included",
                                           shared::exponentialBuckets(0.0005, 2.0, 14));
    }

    int prepare(Statement& stmt, std::string_view sql) const {
        sqlite3_stmt* raw = nullptr;
        const int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
        stmt.reset(raw);
        return rc;
    }

    int prepareAll() {
        const std::pair<Statement*, std::string> all[] = {
            {&begin, "BEGIN IMMEDIATE"},
            {&commit, "COMMIT"},
            {&rollback, "ROLLBACK"},
            {&gateway_select, "SELECT id FROM gateways WHERE name = ?"},
            {&gateway_insert, "INSERT INTO gateways(name) VALUES (?)"},
            {&upsert_minute, upsertRollupSql("rollup_1m")},
            {&upsert_hour, upsertRollupSql("rollup_1h")},
            {&aggregate_insert,
             "INSERT INTO aggregates(gateway, sensor, start_ms, window_ms, count, min_value, "
             "max_value, mean_value, last_value, quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
             "ON CONFLICT DO NOTHING"},
            {&alert_insert,
             "INSERT INTO alerts(gateway, epoch, seq, incident_id, rule, sensor, severity, state, "
             "value, time_ms, clock_synced, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
             "ON CONFLICT DO NOTHING"},
            {&sensors_delete, "DELETE FROM sensors WHERE gateway = ?"},
            {&sensors_insert,
             "INSERT INTO sensors(gateway, sensor, name, unit, kind) VALUES (?, ?, ?, ?, ?)"},
            {&sensors_select,
             "SELECT s.sensor, s.name, s.unit, s.kind FROM sensors s JOIN gateways g "
             "ON g.id = s.gateway WHERE g.name = ? ORDER BY s.sensor"},
            {&sensor_lookup,
             "SELECT g.id, s.sensor FROM sensors s JOIN gateways g ON g.id = s.gateway "
             "WHERE g.name = ? AND s.name = ?"},
            {&day_tables,
             "SELECT name FROM sqlite_schema WHERE type = 'table' AND name >= ? AND name <= ? "
             "ORDER BY name"},
            {&select_minute,
             "SELECT bucket_ms, count, sum_value, min_value, max_value, first_ms, first_value, "
             "last_ms, last_value FROM rollup_1m WHERE gateway = ? AND sensor = ? AND "
             "bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms"},
            {&select_hour,
             "SELECT bucket_ms, count, sum_value, min_value, max_value, first_ms, first_value, "
             "last_ms, last_value FROM rollup_1h WHERE gateway = ? AND sensor = ? AND "
             "bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms"},
            {&select_aggregates,
             "SELECT sensor, start_ms, window_ms, count, min_value, max_value, mean_value, "
             "last_value, quality FROM aggregates WHERE gateway = ? AND sensor = ? AND "
             "start_ms >= ? AND start_ms < ? ORDER BY start_ms, window_ms LIMIT ?"},
            {&select_alerts,
             "SELECT g.name, a.epoch, a.seq, a.incident_id, a.rule, a.sensor, a.severity, "
             "a.state, a.value, a.time_ms, a.clock_synced, a.message FROM alerts a "
             "JOIN gateways g ON g.id = a.gateway WHERE a.time_ms >= ? AND a.time_ms < ? "
             "ORDER BY a.time_ms DESC, a.id DESC LIMIT ?"},
            {&select_gateway_alerts,
             "SELECT g.name, a.epoch, a.seq, a.incident_id, a.rule, a.sensor, a.severity, "
             "a.state, a.value, a.time_ms, a.clock_synced, a.message FROM alerts a "
             "JOIN gateways g ON g.id = a.gateway WHERE a.time_ms >= ? AND a.time_ms < ? "
             "AND g.name = ? ORDER BY a.time_ms DESC, a.id DESC LIMIT ?"},
            {&delete_minute, "DELETE FROM rollup_1m WHERE bucket_ms < ?"},
            {&delete_hour, "DELETE FROM rollup_1h WHERE bucket_ms < ?"},
            {&delete_aggregates, "DELETE FROM aggregates WHERE start_ms < ?"},
            {&delete_alerts, "DELETE FROM alerts WHERE time_ms < ?"},
            // Day table names sort as their days do.
            {&delete_undecodable, "DELETE FROM undecodable_chunks WHERE raw_table < ?"},
            {&meta_get, "SELECT value FROM meta WHERE key = ?"},
            {&meta_set,
             "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
             "value = excluded.value"},
        };
        for (const auto& [stmt, sql] : all) {
            if (const int rc = prepare(*stmt, sql); rc != SQLITE_OK) return rc;
        }
        return SQLITE_OK;
    }

    int run(const Statement& stmt) const {
        ScopedStatement use(stmt);
        const int rc = sqlite3_step(*use);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    // The transaction failed: undo it and forget what the caches learnt inside it.
    void rollbackTx() {
        if (sqlite3_get_autocommit(db.get()) == 0) run(rollback);
        for (const auto& name : new_gateways) gateway_ids.erase(name);
        for (const std::int64_t day : new_days) days.erase(day);
        // What the transaction wrote is gone, and what these entries said before it is not
        // kept: forget them, and that the tables' other series-hours are all known.
        for (const auto& series_hour : touched_hours) latest_stored.erase(series_hour);
        for (auto& entry : days) entry.second.created_here = false;
        new_gateways.clear();
        new_days.clear();
        touched_hours.clear();
        cached_day = std::numeric_limits<std::int64_t>::min();
        cached_statements = nullptr;
    }

    int beginTx() {
        new_gateways.clear();
        new_days.clear();
        touched_hours.clear();
        return run(begin);
    }

    // On failure the caller reads the error, then calls rollbackTx().
    int commitTx() {
        const int rc = run(commit);
        if (rc == SQLITE_OK) {
            new_gateways.clear();
            new_days.clear();
            touched_hours.clear();
        }
        return rc;
    }

    // The gateway's id, interning the name inside the open transaction.
    std::optional<std::int64_t> gatewayId(std::string_view name, int& rc) {
        if (auto it = gateway_ids.find(name); it != gateway_ids.end()) return it->second;
        {
            ScopedStatement use(gateway_select);
            sqlite3_bind_text(*use, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
            rc = sqlite3_step(*use);
            if (rc == SQLITE_ROW) {
                const std::int64_t id = sqlite3_column_int64(*use, 0);
                gateway_ids.emplace(std::string(name), id);
                rc = SQLITE_OK;
                return id;
            }
            if (rc != SQLITE_DONE) return std::nullopt;
        }
        ScopedStatement use(gateway_insert);
        sqlite3_bind_text(*use, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
        rc = sqlite3_step(*use);
        if (rc != SQLITE_DONE) return std::nullopt;
        rc = SQLITE_OK;
        const std::int64_t id = sqlite3_last_insert_rowid(db.get());
        gateway_ids.emplace(std::string(name), id);
        new_gateways.emplace_back(name);
        return id;
    }

    // Keeps the last two hours that were written (late data is rare; the live hours are what
    // every call writes), or nothing if those alone are too many. Forgetting is always safe: the
    // next write of a series-hour it forgot reads its chunks again. What a table's created_here
    // promises is gone with anything forgotten.
    void trimStoredTimes() {
        // Not past the current hour: a gateway whose clock runs ahead would keep only its own.
        std::int64_t newest = std::numeric_limits<std::int64_t>::min();
        for (const auto& entry : latest_stored) newest = std::max(newest, entry.first.bucket_ms);
        newest = std::min(newest, floorTo(nowMs(), kHourMs));
        std::erase_if(latest_stored,
                      [&](const auto& entry) { return entry.first.bucket_ms < newest - kHourMs; });
        for (auto& entry : days) entry.second.created_here = false;
        if (latest_stored.size() > kMaxRememberedSeriesHours / 2) latest_stored.clear();
    }

    // The statements of the day's raw table, creating the table inside the open transaction.
    DayStatements* dayStatements(std::int64_t day, int& rc) {
        if (day == cached_day) return cached_statements;
        auto it = days.find(day);
        if (it == days.end()) {
            rc = exec(db.get(), createRawTableSql(dayTableName(day)));
            if (rc != SQLITE_OK) return nullptr;
            it = days.emplace(day, DayStatements{}).first;
            it->second.created_here = true;
            new_days.push_back(day);
        }
        DayStatements& statements = it->second;
        if (!statements.insert) {
            const std::string table = dayTableName(day);
            rc = prepare(statements.insert, insertRawChunkSql(table));
            if (rc == SQLITE_OK) rc = prepare(statements.chunks, selectRawChunksSql(table));
            if (rc != SQLITE_OK) {
                statements = DayStatements{};
                return nullptr;
            }
        }
        cached_day = day;
        cached_statements = &statements;
        return cached_statements;
    }

    // Reads the series' chunks that start in the hour: the times of their readings in
    // [from_ms, to_ms] into `times` (ascending), and the latest time of any of them into `latest`
    // (INT64_MIN if the hour has none). A chunk that does not decode is set aside: retrying
    // would meet it again on every attempt and hold up every later write of the sink.
    int storedTimes(std::int64_t day_number, DayStatements& day, const BucketKey& series_hour,
                    std::int64_t from_ms, std::int64_t to_ms, std::vector<std::int64_t>& times,
                    std::int64_t& latest, WriteResult& result) {
        times.clear();
        latest = std::numeric_limits<std::int64_t>::min();
        corrupt_chunk_starts.clear();
        ScopedStatement use(day.chunks);
        sqlite3_bind_int64(*use, 1, series_hour.gateway);
        sqlite3_bind_int64(*use, 2, series_hour.sensor);
        sqlite3_bind_int64(*use, 3, series_hour.bucket_ms);
        sqlite3_bind_int64(*use, 4, series_hour.bucket_ms + kHourMs);
        bool ascending = true;
        int rc = SQLITE_OK;
        while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
            const std::int64_t start_ms = sqlite3_column_int64(*use, 0);
            const std::int64_t end_ms = sqlite3_column_int64(*use, 3);
            latest = std::max(latest, end_ms);
            if (end_ms < from_ms || start_ms > to_ms) continue;
            if (!decodeChunkRow(*use, 0, decoded)) {
                corrupt_chunk_starts.push_back(start_ms);
                continue;
            }
            for (const auto& reading : decoded) {
                if (reading.time_ms < from_ms || reading.time_ms > to_ms) continue;
                ascending = ascending && (times.empty() || times.back() < reading.time_ms);
                times.push_back(reading.time_ms);
            }
        }
        if (rc != SQLITE_DONE) return rc;
        sqlite3_reset(*use);  // done with the table before rows of it move
        for (const std::int64_t start_ms : corrupt_chunk_starts) {
            // Many at once looks like a decoder bug rather than a damaged page: stop, loudly,
            // before the raw tables are emptied.
            if (result.undecodable_chunks.size() >= kMaxUndecodableChunksPerWrite) {
                too_many_undecodable = true;
                return SQLITE_CORRUPT;
            }
            if (rc = setAsideChunk(day_number, series_hour, start_ms); rc != SQLITE_OK) return rc;
            result.undecodable_chunks.push_back(chunkName(
                dayTableName(day_number), series_hour.gateway, series_hour.sensor, start_ms));
        }
        if (!ascending) std::sort(times.begin(), times.end());
        return SQLITE_OK;
    }

    // Moves one chunk of the day's raw table into undecodable_chunks, in the open transaction.
    // Its readings can no longer be read, so later copies of them are not known as duplicates
    // (and the rollups, which counted them when they were written, count such copies again).
    int setAsideChunk(std::int64_t day_number, const BucketKey& series_hour,
                      std::int64_t start_ms) {
        const std::string table = dayTableName(day_number);
        const std::string where = " WHERE gateway = ? AND sensor = ? AND start_ms = ?";
        const std::string move_sql =
            "INSERT INTO undecodable_chunks(raw_table, gateway, sensor, start_ms, end_ms, count, "
            "readings, set_aside_ms) SELECT ?, gateway, sensor, start_ms, end_ms, count, "
            "readings, ? FROM " +
            table + where;
        const std::string remove_sql = "DELETE FROM " + table + where;
        sqlite3_stmt* move_raw = nullptr;
        int rc = sqlite3_prepare_v2(db.get(), move_sql.c_str(), -1, &move_raw, nullptr);
        Statement move(move_raw);
        if (rc != SQLITE_OK) return rc;
        sqlite3_stmt* remove_raw = nullptr;
        rc = sqlite3_prepare_v2(db.get(), remove_sql.c_str(), -1, &remove_raw, nullptr);
        Statement remove(remove_raw);
        if (rc != SQLITE_OK) return rc;
        sqlite3_bind_text(move.get(), 1, table.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_int64(move.get(), 2, nowMs());
        sqlite3_bind_int64(move.get(), 3, series_hour.gateway);
        sqlite3_bind_int64(move.get(), 4, series_hour.sensor);
        sqlite3_bind_int64(move.get(), 5, start_ms);
        if (rc = sqlite3_step(move.get()); rc != SQLITE_DONE) return rc;
        sqlite3_bind_int64(remove.get(), 1, series_hour.gateway);
        sqlite3_bind_int64(remove.get(), 2, series_hour.sensor);
        sqlite3_bind_int64(remove.get(), 3, start_ms);
        rc = sqlite3_step(remove.get());
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    // Writes one series' new readings of one hour (ascending, distinct times) as chunks, leaving
    // out those already stored, and feeds what it wrote to the minute summaries.
    int writeSeriesHour(const BucketKey& series_hour, std::vector<shared::Reading>& readings,
                        WriteResult& result) {
        int rc = SQLITE_OK;
        const std::int64_t day_number = floorDiv(series_hour.bucket_ms, kDayMs);
        DayStatements* day = dayStatements(day_number, rc);
        if (day == nullptr) return rc;
        const std::int64_t first = readings.front().time_ms;
        const std::int64_t last = readings.back().time_ms;
        auto known = latest_stored.find(series_hour);
        if (known == latest_stored.end() && day->created_here) {
            // Every chunk of a table this store created went through it, and what it forgot it
            // forgot with the table's flag: a series-hour it does not know has no chunks.
            known =
                latest_stored.emplace(series_hour, std::numeric_limits<std::int64_t>::min()).first;
        }
        if (known == latest_stored.end() || first <= known->second) {
            std::int64_t latest = 0;
            rc = storedTimes(day_number, *day, series_hour, first, last, stored_times, latest,
                             result);
            if (rc != SQLITE_OK) return rc;
            if (!stored_times.empty()) {
                const auto before = readings.size();
                std::erase_if(readings, [&](const shared::Reading& r) {
                    return std::binary_search(stored_times.begin(), stored_times.end(), r.time_ms);
                });
                result.readings_duplicate += before - readings.size();
            }
            known = latest_stored.insert_or_assign(series_hour, latest).first;
        }
        chunk_spans.clear();
        cutRawChunks(readings, chunk_spans);
        for (const auto& chunk : chunk_spans) {
            rc = insertRawChunk(day->insert.get(), series_hour.gateway, chunk, chunk_bytes);
            if (rc != SQLITE_OK) return rc;
        }
        if (readings.empty()) return SQLITE_OK;
        known->second = std::max(known->second, readings.back().time_ms);
        touched_hours.push_back(series_hour);
        result.readings_written += readings.size();
        for (const auto& reading : readings) {
            if (reading.quality == shared::Quality::Bad) continue;
            minuteSummary(
                {series_hour.gateway, series_hour.sensor, floorTo(reading.time_ms, kMinuteMs)})
                .add(reading.time_ms, reading.value);
        }
        return SQLITE_OK;
    }

    // Writes the raw readings gathered in this transaction, series by series and hour by hour.
    // A reading whose (gateway, sensor, time) came earlier in the call is a duplicate: readings
    // keep their arrival order among equal times, so the first one given wins.
    int writePending(WriteResult& result) {
        // Grouped by series in linear time (a slot per series, then a stable counting sort by
        // slot): a full sort of every reading cost more than the SQLite work. A series' readings
        // usually arrive in time order already, as a gateway's batches do.
        series_slots.clear();
        series_keys.clear();
        slot_of.resize(pending.size());
        for (std::size_t i = 0; i < pending.size(); ++i) {
            const BucketKey key{pending[i].gateway, pending[i].reading.sensor, 0};
            const auto [it, added] =
                series_slots.try_emplace(key, static_cast<std::uint32_t>(series_keys.size()));
            if (added) series_keys.push_back(key);
            slot_of[i] = it->second;
        }
        slot_starts.assign(series_keys.size() + 1, 0);
        for (const std::uint32_t slot : slot_of) slot_starts[slot + 1] += 1;
        for (std::size_t k = 1; k < slot_starts.size(); ++k) slot_starts[k] += slot_starts[k - 1];
        slot_next.assign(slot_starts.begin(), slot_starts.end() - 1);
        grouped.resize(pending.size());
        for (std::size_t i = 0; i < pending.size(); ++i)
            grouped[slot_next[slot_of[i]]++] = pending[i];
        // Series in key order, so that chunks enter the primary key's index in order.
        slot_order.resize(series_keys.size());
        for (std::uint32_t k = 0; k < slot_order.size(); ++k) slot_order[k] = k;
        std::sort(slot_order.begin(), slot_order.end(), [&](std::uint32_t a, std::uint32_t b) {
            return series_keys[a] < series_keys[b];
        });
        const auto by_time = [](const Pending& a, const Pending& b) {
            return a.reading.time_ms < b.reading.time_ms;
        };
        for (const std::uint32_t slot : slot_order) {
            const auto first = grouped.begin() + slot_starts[slot];
            const auto last = grouped.begin() + slot_starts[slot + 1];
            if (!std::is_sorted(first, last, by_time)) std::stable_sort(first, last, by_time);
            auto at = first;
            while (at != last) {
                const BucketKey series_hour{at->gateway, at->reading.sensor,
                                            floorTo(at->reading.time_ms, kHourMs)};
                series_readings.clear();
                for (; at != last && at->reading.time_ms < series_hour.bucket_ms + kHourMs; ++at) {
                    if (!series_readings.empty() &&
                        series_readings.back().time_ms == at->reading.time_ms) {
                        result.readings_duplicate += 1;
                        continue;
                    }
                    series_readings.push_back(at->reading);
                }
                if (const int rc = writeSeriesHour(series_hour, series_readings, result);
                    rc != SQLITE_OK) {
                    return rc;
                }
            }
        }
        pending.clear();
        return SQLITE_OK;
    }

    std::int64_t nowMs() const { return shared::toUnixMillis(clock.wallNow()); }

    // The first day whose raw table is kept: retention against now, never earlier than a day
    // already given up.
    std::int64_t firstKeptDay(std::int64_t now_ms) const {
        return std::max(raw_floor_day, floorDiv(now_ms - config.raw_retention.count(), kDayMs));
    }

    Summary& minuteSummary(const BucketKey& key) {
        if (last_summary != nullptr && key == last_key) return *last_summary;
        last_key = key;
        last_summary = &minutes[key];
        return *last_summary;
    }

    int upsert(const Statement& stmt, const BucketKey& key, const Summary& s) {
        sqlite3_stmt* raw = stmt.get();
        sqlite3_bind_int64(raw, 1, key.gateway);
        sqlite3_bind_int64(raw, 2, key.sensor);
        sqlite3_bind_int64(raw, 3, key.bucket_ms);
        sqlite3_bind_int64(raw, 4, static_cast<sqlite3_int64>(s.count));
        sqlite3_bind_double(raw, 5, s.sum);
        sqlite3_bind_double(raw, 6, s.min);
        sqlite3_bind_double(raw, 7, s.max);
        sqlite3_bind_int64(raw, 8, s.first_ms);
        sqlite3_bind_double(raw, 9, s.first);
        sqlite3_bind_int64(raw, 10, s.last_ms);
        sqlite3_bind_double(raw, 11, s.last);
        const int rc = sqlite3_step(raw);
        sqlite3_reset(raw);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    // Writes the minute summaries gathered in this transaction, and the hours they add up to, once
    // per bucket, in key order so that neighbouring rows share pages.
    int flushRollups() {
        std::vector<std::pair<BucketKey, Summary>> sorted(minutes.begin(), minutes.end());
        minutes.clear();
        last_summary = nullptr;
        std::sort(sorted.begin(), sorted.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& [key, summary] : sorted) {
            if (const int rc = upsert(upsert_minute, key, summary); rc != SQLITE_OK) return rc;
        }
        // Sorted by (gateway, sensor, minute): the minutes of one hour are adjacent.
        std::optional<BucketKey> hour_key;
        Summary hour;
        for (const auto& [key, summary] : sorted) {
            const BucketKey this_hour{key.gateway, key.sensor, floorTo(key.bucket_ms, kHourMs)};
            if (hour_key && *hour_key != this_hour) {
                if (const int rc = upsert(upsert_hour, *hour_key, hour); rc != SQLITE_OK) {
                    return rc;
                }
                hour = Summary{};
            }
            hour_key = this_hour;
            hour.merge(summary);
        }
        if (hour_key) return upsert(upsert_hour, *hour_key, hour);
        return SQLITE_OK;
    }

    // Inside the open transaction: stores the batch's aggregates and gathers its readings for
    // writePending(); returns an SQLite error code or SQLITE_OK.
    int writeBatch(std::string_view gateway, const shared::TelemetryBatch& batch,
                   std::int64_t floor_ms, std::int64_t ceiling_ms, WriteResult& result) {
        int rc = SQLITE_OK;
        const auto gateway_id = gatewayId(gateway, rc);
        if (!gateway_id) return rc;
        for (const auto& reading : batch.readings) {
            if (!std::isfinite(reading.value)) {
                result.readings_non_finite += 1;
                continue;
            }
            if (reading.time_ms < floor_ms) {
                result.readings_expired += 1;
                continue;
            }
            if (reading.time_ms > ceiling_ms) {
                result.readings_future += 1;
                continue;
            }
            pending.push_back({*gateway_id, reading});
        }
        for (const auto& aggregate : batch.aggregates) {
            if (!std::isfinite(aggregate.min) || !std::isfinite(aggregate.max) ||
                !std::isfinite(aggregate.mean) || !std::isfinite(aggregate.last) ||
                aggregate.start_ms < floor_ms || aggregate.start_ms > ceiling_ms) {
                result.aggregates_rejected += 1;
                continue;
            }
            ScopedStatement use(aggregate_insert);
            sqlite3_bind_int64(*use, 1, *gateway_id);
            sqlite3_bind_int(*use, 2, aggregate.sensor);
            sqlite3_bind_int64(*use, 3, aggregate.start_ms);
            sqlite3_bind_int64(*use, 4, aggregate.window_ms);
            sqlite3_bind_int64(*use, 5, aggregate.count);
            sqlite3_bind_double(*use, 6, aggregate.min);
            sqlite3_bind_double(*use, 7, aggregate.max);
            sqlite3_bind_double(*use, 8, aggregate.mean);
            sqlite3_bind_double(*use, 9, aggregate.last);
            sqlite3_bind_int(*use, 10, static_cast<int>(aggregate.quality));
            rc = sqlite3_step(*use);
            if (rc != SQLITE_DONE) return rc;
            if (sqlite3_changes(db.get()) == 0) {
                result.aggregates_duplicate += 1;
            } else {
                result.aggregates_written += 1;
            }
        }
        return SQLITE_OK;
    }

    Result<WriteResult> writeMany(std::span<const GatewayBatch> batches) {
        const auto started = std::chrono::steady_clock::now();
        const std::int64_t now_ms = nowMs();
        const std::int64_t floor_ms = firstKeptDay(now_ms) * kDayMs;
        const std::int64_t ceiling_ms = now_ms + config.max_future.count();
        WriteResult result;
        too_many_undecodable = false;
        int rc = beginTx();
        if (rc != SQLITE_OK) {
            write_errors->inc();
            return sqliteError(db.get(), rc);
        }
        minutes.clear();
        last_summary = nullptr;
        pending.clear();
        for (const auto& item : batches) {
            rc = writeBatch(item.gateway, *item.batch, floor_ms, ceiling_ms, result);
            if (rc != SQLITE_OK) break;
        }
        if (rc == SQLITE_OK) rc = writePending(result);
        if (rc == SQLITE_OK) rc = flushRollups();
        if (rc == SQLITE_OK) rc = commitTx();
        if (rc != SQLITE_OK) {
            Error error = sqliteError(db.get(), rc);  // before ROLLBACK replaces the message
            if (too_many_undecodable) {
                error = Error::retry(
                    "undecodable_chunks",
                    fmt::format("more than {} stored raw chunks met by one write do not decode, "
                                "the first {}; none was set aside",
                                kMaxUndecodableChunksPerWrite, result.undecodable_chunks.front()));
            }
            rollbackTx();
            minutes.clear();
            last_summary = nullptr;
            pending.clear();
            write_errors->inc();
            return error;
        }
        if (latest_stored.size() > kMaxRememberedSeriesHours) trimStoredTimes();
        readings_written->inc(result.readings_written);
        duplicates[0]->inc(result.readings_duplicate);
        duplicates[1]->inc(result.aggregates_duplicate);
        readings_rejected[static_cast<std::size_t>(Reject::NonFinite)]->inc(
            result.readings_non_finite);
        readings_rejected[static_cast<std::size_t>(Reject::Expired)]->inc(result.readings_expired);
        readings_rejected[static_cast<std::size_t>(Reject::Future)]->inc(result.readings_future);
        aggregates_written->inc(result.aggregates_written);
        aggregates_rejected->inc(result.aggregates_rejected);
        undecodable_chunks->inc(result.undecodable_chunks.size());
        write_seconds->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        return result;
    }

    // Runs body inside a transaction: commit if it returns SQLITE_OK, else roll back.
    shared::VoidResult transaction(const std::function<int()>& body) {
        int rc = beginTx();
        if (rc == SQLITE_OK) rc = body();
        if (rc == SQLITE_OK) rc = commitTx();
        if (rc == SQLITE_OK) return shared::success();
        Error error = sqliteError(db.get(), rc);  // before ROLLBACK replaces the message
        rollbackTx();
        return error;
    }

    // The gateway and sensor index a query names, or unknown_sensor.
    Result<std::pair<std::int64_t, int>> lookupSensor(std::string_view gateway,
                                                      std::string_view sensor) const {
        ScopedStatement use(sensor_lookup);
        sqlite3_bind_text(*use, 1, gateway.data(), static_cast<int>(gateway.size()), SQLITE_STATIC);
        sqlite3_bind_text(*use, 2, sensor.data(), static_cast<int>(sensor.size()), SQLITE_STATIC);
        const int rc = sqlite3_step(*use);
        if (rc == SQLITE_ROW) {
            return std::pair<std::int64_t, int>{sqlite3_column_int64(*use, 0),
                                                sqlite3_column_int(*use, 1)};
        }
        if (rc != SQLITE_DONE) return sqliteError(db.get(), rc);
        return Error::drop("unknown_sensor", fmt::format("gateway '{}' has no sensor named '{}' "
                                                         "in its latest birth",
                                                         gateway, sensor));
    }

    // Raw table names for the days overlapping [from_ms, to_ms), read from the schema itself.
    Result<std::vector<std::string>> dayTablesBetween(std::int64_t from_ms,
                                                      std::int64_t to_ms) const {
        const std::int64_t first =
            std::clamp(floorDiv(from_ms, kDayMs), kFirstNamedDay, kLastNamedDay);
        const std::int64_t last =
            std::clamp(floorDiv(to_ms - 1, kDayMs), kFirstNamedDay, kLastNamedDay);
        const std::string low = dayTableName(first);
        const std::string high = dayTableName(last);
        std::vector<std::string> out;
        ScopedStatement use(day_tables);
        sqlite3_bind_text(*use, 1, low.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(*use, 2, high.c_str(), -1, SQLITE_TRANSIENT);
        int rc = SQLITE_OK;
        while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
            const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(*use, 0));
            if (name != nullptr && dayOfTableName(name)) out.emplace_back(name);
        }
        if (rc != SQLITE_DONE) return sqliteError(db.get(), rc);
        return out;
    }

    const TimeseriesStoreConfig config;
    const shared::Clock& clock;
    Db db;

    // Caches of what the database holds, valid while this is the only writer.
    std::unordered_map<std::string, std::int64_t, StringHash, std::equal_to<>> gateway_ids;
    std::map<std::int64_t, DayStatements> days;  // raw day tables; their statements, once prepared
    std::int64_t raw_floor_day = std::numeric_limits<std::int64_t>::min();
    std::int64_t cached_day = std::numeric_limits<std::int64_t>::min();
    DayStatements* cached_statements = nullptr;
    // Per series-hour (bucket_ms: the hour): the latest time in the chunks that start in it.
    std::unordered_map<BucketKey, std::int64_t, BucketKeyHash> latest_stored;
    // What the open transaction added to the caches, to forget if it rolls back.
    std::vector<std::string> new_gateways;
    std::vector<std::int64_t> new_days;
    std::vector<BucketKey> touched_hours;

    // Buffers of the write path, kept to reuse their memory.
    std::vector<Pending> pending;                                              // in the order given
    std::unordered_map<BucketKey, std::uint32_t, BucketKeyHash> series_slots;  // bucket_ms 0
    std::vector<BucketKey> series_keys;
    std::vector<std::uint32_t> slot_of, slot_starts, slot_next, slot_order;
    std::vector<Pending> grouped;  // pending by series, each in the order given
    std::vector<shared::Reading> series_readings;
    std::vector<shared::Reading> decoded;
    std::vector<std::int64_t> stored_times;
    std::vector<std::int64_t> corrupt_chunk_starts;
    bool too_many_undecodable = false;  // why the last write failed, if it did
    std::vector<std::span<const shared::Reading>> chunk_spans;
    std::vector<std::uint8_t> chunk_bytes;

    // Minute summaries of the open write transaction.
    std::unordered_map<BucketKey, Summary, BucketKeyHash> minutes;
    BucketKey last_key;
    Summary* last_summary = nullptr;

    Statement begin, commit, rollback, gateway_select, gateway_insert, upsert_minute, upsert_hour,
        aggregate_insert, alert_insert, sensors_delete, sensors_insert, sensors_select,
        sensor_lookup, day_tables, select_minute, select_hour, select_aggregates, select_alerts,
        select_gateway_alerts, delete_minute, delete_hour, delete_aggregates, delete_alerts,
        delete_undecodable, meta_get, meta_set;

    shared::Counter* readings_written = nullptr;
    std::vector<shared::Counter*> duplicates;  // reading, aggregate, alert
    std::array<shared::Counter*, kRejectReasons.size()> readings_rejected{};
    shared::Counter* aggregates_written = nullptr;
    shared::Counter* aggregates_rejected = nullptr;
    shared::Counter* alerts_written = nullptr;
    shared::Counter* tables_dropped = nullptr;
    // rollup_1m, rollup_1h, aggregate, alert, undecodable_chunk
    std::vector<shared::Counter*> rows_deleted;
    shared::Counter* write_errors = nullptr;
    shared::Counter* undecodable_chunks = nullptr;
    shared::Histogram* write_seconds = nullptr;
};

Result<std::unique_ptr<TimeseriesStore>> TimeseriesStore::open(const TimeseriesStoreConfig& config,
                                                               const shared::Clock& clock,
                                                               shared::MetricsRegistry& metrics) {
    if (config.raw_retention > config.minute_retention ||
        config.minute_retention > config.hour_retention) {
        return Error::stop("invalid_config",
                           "tsdb retention must satisfy raw_retention <= minute_retention <= "
                           "hour_retention, or late readings could find their rollups gone");
    }
    auto impl = std::make_unique<Impl>(config, clock, metrics);
    const std::string& path = config.path;
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    impl->db.reset(raw);
    auto fail = [&](std::string_view what) {
        return Error::stop("tsdb_open_failed",
                           fmt::format("{}: {}: {}", path, what, describe(raw, rc)));
    };
    if (rc != SQLITE_OK) return fail("open");
    sqlite3_extended_result_codes(raw, 1);
    // A second connection (queries from another thread) waits for a write instead of failing.
    sqlite3_busy_timeout(raw, 5000);
    {
        // journal_mode answers with the mode in force: a file that cannot do WAL says so here.
        sqlite3_stmt* mode_raw = nullptr;
        rc = sqlite3_prepare_v2(raw, "PRAGMA journal_mode=WAL", -1, &mode_raw, nullptr);
        Statement mode(mode_raw);
        if (rc == SQLITE_OK) rc = sqlite3_step(mode_raw);
        if (rc != SQLITE_ROW) return fail("journal_mode");
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(mode_raw, 0));
        if (text == nullptr || std::string_view(text) != "wal") {
            return Error::stop("tsdb_open_failed",
                               path + ": cannot use WAL (journal_mode is " +
                                   (text == nullptr ? std::string("unknown") : text) + ")");
        }
    }
    if (rc = exec(raw, storePragmasSql(config.cache_bytes)); rc != SQLITE_OK)
        return fail("pragmas");
    int found_version = 0;
    {
        sqlite3_stmt* version_raw = nullptr;
        rc = sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &version_raw, nullptr);
        Statement version(version_raw);
        if (rc == SQLITE_OK) rc = sqlite3_step(version_raw);
        if (rc != SQLITE_ROW) return fail("user_version");
        found_version = sqlite3_column_int(version_raw, 0);
        if (const int found = found_version; found > kSchemaVersion) {
            return Error::stop("tsdb_open_failed",
                               fmt::format("{}: schema version {} is newer than this build's {}",
                                           path, found, kSchemaVersion));
        }
    }
    if (rc = exec(raw, "BEGIN IMMEDIATE"); rc != SQLITE_OK) return fail("begin");
    rc = exec(raw, schemaSql());
    if (rc == SQLITE_OK && found_version == 1) rc = convertRowsToChunks(raw);
    if (rc == SQLITE_OK) rc = exec(raw, fmt::format("PRAGMA user_version={}", kSchemaVersion));
    if (rc == SQLITE_OK) rc = exec(raw, "COMMIT");
    if (rc != SQLITE_OK) {
        const Error error = fail("schema");
        exec(raw, "ROLLBACK");
        return error;
    }
    if (rc = impl->prepareAll(); rc != SQLITE_OK) return fail("prepare");
    {
        ScopedStatement use(impl->meta_get);
        sqlite3_bind_text(*use, 1, "raw_floor_day", -1, SQLITE_STATIC);
        rc = sqlite3_step(*use);
        if (rc == SQLITE_ROW) impl->raw_floor_day = sqlite3_column_int64(*use, 0);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail("meta");
    }
    auto tables = impl->dayTablesBetween(std::numeric_limits<std::int64_t>::min() / 2,
                                         std::numeric_limits<std::int64_t>::max() / 2);
    if (!tables) return Error::stop("tsdb_open_failed", path + ": " + tables.error().message());
    for (const auto& name : tables.value()) {
        impl->days.emplace(*dayOfTableName(name), DayStatements{});
    }
    return std::unique_ptr<TimeseriesStore>(new TimeseriesStore(std::move(impl)));
}

TimeseriesStore::TimeseriesStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TimeseriesStore::~TimeseriesStore() = default;

Result<WriteResult> TimeseriesStore::write(std::string_view gateway,
                                           const shared::TelemetryBatch& batch) {
    const GatewayBatch one{gateway, &batch};
    return impl_->writeMany(std::span(&one, 1));
}

Result<WriteResult> TimeseriesStore::writeMany(std::span<const GatewayBatch> batches) {
    return impl_->writeMany(batches);
}

shared::VoidResult TimeseriesStore::sync() {
    auto& impl = *impl_;
    // In WAL mode a commit under synchronous=FULL fsyncs the WAL, and with it every transaction
    // committed before under NORMAL; checkpoints already sync the main file. One small write is
    // enough, and it records when the last sync happened.
    if (const int rc = exec(impl.db.get(), "PRAGMA synchronous=FULL"); rc != SQLITE_OK) {
        return sqliteError(impl.db.get(), rc);
    }
    auto synced = impl.transaction([&] {
        ScopedStatement use(impl.meta_set);
        sqlite3_bind_text(*use, 1, "synced_at_ms", -1, SQLITE_STATIC);
        sqlite3_bind_int64(*use, 2, impl.nowMs());
        const int step = sqlite3_step(*use);
        return step == SQLITE_DONE ? SQLITE_OK : step;
    });
    if (const int rc = exec(impl.db.get(), "PRAGMA synchronous=NORMAL"); rc != SQLITE_OK) {
        return sqliteError(impl.db.get(), rc);
    }
    return synced;
}

shared::VoidResult TimeseriesStore::setSensors(std::string_view gateway,
                                               const std::vector<shared::SensorInfo>& sensors) {
    auto& impl = *impl_;
    for (std::size_t i = 0; i < sensors.size(); ++i) {
        if (sensors[i].name.empty()) {
            return Error::drop("invalid_sensors",
                               fmt::format("sensor {} has an empty name", sensors[i].index));
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (sensors[j].index == sensors[i].index || sensors[j].name == sensors[i].name) {
                return Error::drop("invalid_sensors",
                                   fmt::format("sensor {} '{}' repeats the index or name of "
                                               "sensor {} '{}'",
                                               sensors[i].index, sensors[i].name, sensors[j].index,
                                               sensors[j].name));
            }
        }
    }
    return impl.transaction([&] {
        int step = SQLITE_OK;
        const auto id = impl.gatewayId(gateway, step);
        if (!id) return step;
        {
            ScopedStatement use(impl.sensors_delete);
            sqlite3_bind_int64(*use, 1, *id);
            if (step = sqlite3_step(*use); step != SQLITE_DONE) return step;
        }
        for (const auto& sensor : sensors) {
            ScopedStatement use(impl.sensors_insert);
            sqlite3_bind_int64(*use, 1, *id);
            sqlite3_bind_int(*use, 2, sensor.index);
            sqlite3_bind_text(*use, 3, sensor.name.c_str(), -1, SQLITE_STATIC);
            sqlite3_bind_text(*use, 4, sensor.unit.c_str(), -1, SQLITE_STATIC);
            sqlite3_bind_int(*use, 5, static_cast<int>(sensor.kind));
            if (step = sqlite3_step(*use); step != SQLITE_DONE) return step;
        }
        return SQLITE_OK;
    });
}

Result<std::vector<shared::SensorInfo>> TimeseriesStore::sensors(std::string_view gateway) const {
    auto& impl = *impl_;
    std::vector<shared::SensorInfo> out;
    ScopedStatement use(impl.sensors_select);
    sqlite3_bind_text(*use, 1, gateway.data(), static_cast<int>(gateway.size()), SQLITE_STATIC);
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
        shared::SensorInfo info;
        info.index = static_cast<std::uint16_t>(sqlite3_column_int(*use, 0));
        info.name = reinterpret_cast<const char*>(sqlite3_column_text(*use, 1));
        info.unit = reinterpret_cast<const char*>(sqlite3_column_text(*use, 2));
        info.kind = static_cast<shared::SensorKind>(sqlite3_column_int(*use, 3));
        out.push_back(std::move(info));
    }
    if (rc != SQLITE_DONE) return sqliteError(impl.db.get(), rc);
    return out;
}

Result<bool> TimeseriesStore::writeAlert(std::string_view gateway, const shared::Alert& alert) {
    auto& impl = *impl_;
    bool stored = false;
    auto done = impl.transaction([&] {
        int step = SQLITE_OK;
        const auto id = impl.gatewayId(gateway, step);
        if (!id) return step;
        ScopedStatement use(impl.alert_insert);
        sqlite3_bind_int64(*use, 1, *id);
        if (alert.sequence.seq != 0) {
            sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(alert.sequence.epoch));
            sqlite3_bind_int64(*use, 3, static_cast<sqlite3_int64>(alert.sequence.seq));
        }
        sqlite3_bind_int64(*use, 4, static_cast<sqlite3_int64>(alert.incident_id));
        sqlite3_bind_text(*use, 5, alert.rule.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_int(*use, 6, alert.sensor);
        sqlite3_bind_int(*use, 7, static_cast<int>(alert.severity));
        sqlite3_bind_int(*use, 8, static_cast<int>(alert.state));
        // A non-finite value is stored as NULL (SQLite has no NaN) and read back as NaN.
        if (std::isfinite(alert.value)) sqlite3_bind_double(*use, 9, alert.value);
        sqlite3_bind_int64(*use, 10, alert.time_ms);
        sqlite3_bind_int(*use, 11, alert.clock_synced ? 1 : 0);
        sqlite3_bind_text(*use, 12, alert.message.c_str(), -1, SQLITE_STATIC);
        step = sqlite3_step(*use);
        if (step != SQLITE_DONE) return step;
        stored = sqlite3_changes(impl.db.get()) > 0;
        return SQLITE_OK;
    });
    if (!done) {
        impl.write_errors->inc();
        return done.error();
    }
    (stored ? impl.alerts_written : impl.duplicates[2])->inc();
    return stored;
}

Result<std::vector<shared::Alert>> TimeseriesStore::alerts(const AlertQuery& query) const {
    auto& impl = *impl_;
    std::vector<shared::Alert> out;
    const Statement& stmt = query.gateway ? impl.select_gateway_alerts : impl.select_alerts;
    ScopedStatement use(stmt);
    sqlite3_bind_int64(*use, 1, query.from_ms);
    sqlite3_bind_int64(*use, 2, query.to_ms);
    int next = 3;
    if (query.gateway) {
        sqlite3_bind_text(*use, next++, query.gateway->c_str(), -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(*use, next,
                       static_cast<sqlite3_int64>(std::min<std::size_t>(
                           query.limit, std::numeric_limits<sqlite3_int64>::max())));
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
        shared::Alert alert;
        alert.gateway_id = reinterpret_cast<const char*>(sqlite3_column_text(*use, 0));
        alert.sequence.epoch = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 1));
        alert.sequence.seq = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 2));
        alert.incident_id = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 3));
        alert.rule = reinterpret_cast<const char*>(sqlite3_column_text(*use, 4));
        alert.sensor = static_cast<std::uint16_t>(sqlite3_column_int(*use, 5));
        alert.severity = static_cast<shared::Severity>(sqlite3_column_int(*use, 6));
        alert.state = static_cast<shared::AlertState>(sqlite3_column_int(*use, 7));
        alert.value = sqlite3_column_type(*use, 8) == SQLITE_NULL
                          ? std::numeric_limits<double>::quiet_NaN()
                          : sqlite3_column_double(*use, 8);
        alert.time_ms = sqlite3_column_int64(*use, 9);
        alert.clock_synced = sqlite3_column_int(*use, 10) != 0;
        alert.message = reinterpret_cast<const char*>(sqlite3_column_text(*use, 11));
        out.push_back(std::move(alert));
    }
    if (rc != SQLITE_DONE) return sqliteError(impl.db.get(), rc);
    return out;
}

Result<SeriesResult> TimeseriesStore::query(std::string_view gateway, std::string_view sensor,
                                            std::int64_t from_ms, std::int64_t to_ms,
                                            std::int64_t step_ms, std::size_t max_points) const {
    auto& impl = *impl_;
    if (to_ms <= from_ms || step_ms < 0) {
        return Error::drop("invalid_query",
                           fmt::format("need from_ms < to_ms and step_ms >= 0 (got [{}, {}), "
                                       "step {})",
                                       from_ms, to_ms, step_ms));
    }
    const std::size_t limit =
        max_points != 0 ? max_points : static_cast<std::size_t>(impl.config.max_points);
    auto series = impl.lookupSensor(gateway, sensor);
    if (!series) return series.error();
    const auto [gateway_id, index] = series.value();

    SeriesResult result;
    result.tier = step_ms >= kHourMs ? Tier::Hour : step_ms >= kMinuteMs ? Tier::Minute : Tier::Raw;
    const std::int64_t tier_ms = kTierMs[static_cast<std::size_t>(result.tier)];
    result.step_ms = tier_ms == 0 ? step_ms : (step_ms + tier_ms - 1) / tier_ms * tier_ms;
    const std::int64_t step = result.step_ms;
    const auto too_many = [&] {
        return Error::drop("too_many_points",
                           fmt::format("the query would return more than {} points; raise "
                                       "step_ms or narrow [from_ms, to_ms)",
                                       limit));
    };

    // Aggregated points cover whole steps: the range widens to step boundaries.
    std::int64_t begin_ms = from_ms;
    std::int64_t end_ms = to_ms;
    if (step > 0) {
        const std::int64_t first = floorDiv(from_ms, step);
        const std::int64_t last = floorDiv(to_ms - 1, step);
        if (static_cast<std::uint64_t>(last) - static_cast<std::uint64_t>(first) >= limit) {
            return too_many();
        }
        begin_ms = first * step;
        end_ms = saturatingAdd(last * step, step);
    }
    // Summaries arrive in ascending time; each joins the point of its step.
    std::optional<std::int64_t> open_start;
    Summary open;
    const auto add = [&](std::int64_t time_ms, const Summary& s) {
        const std::int64_t start = floorTo(time_ms, step);
        if (open_start && *open_start != start) {
            result.points.push_back(open.point(*open_start));
            open = Summary{};
        }
        open_start = start;
        open.merge(s);
    };

    if (result.tier == Tier::Raw) {
        auto tables = impl.dayTablesBetween(begin_ms, end_ms);
        if (!tables) return tables.error();
        // A chunk holding begin_ms starts in the same hour, at or before it.
        const std::int64_t first_start =
            begin_ms < std::numeric_limits<std::int64_t>::min() + kHourMs
                ? std::numeric_limits<std::int64_t>::min()
                : floorTo(begin_ms, kHourMs);
        // Step 0: the readings themselves, at most `limit`. Otherwise a summary per step, at
        // most `limit` of them (checked above), filled in any order: late data has chunks of its
        // own that overlap earlier ones in time, and a summary picks first and last by time.
        std::vector<shared::Reading> readings;
        bool ascending = true;
        const std::int64_t first_slot = step > 0 ? floorDiv(begin_ms, step) : 0;
        std::vector<Summary> slots(
            step > 0 ? static_cast<std::size_t>(floorDiv(end_ms - 1, step) - first_slot + 1) : 0);
        for (const auto& table : tables.value()) {
            Statement stmt;
            int rc = impl.prepare(stmt, selectRawChunksSql(table));
            if (rc != SQLITE_OK) return sqliteError(impl.db.get(), rc);
            sqlite3_bind_int64(stmt.get(), 1, gateway_id);
            sqlite3_bind_int(stmt.get(), 2, index);
            sqlite3_bind_int64(stmt.get(), 3, first_start);
            sqlite3_bind_int64(stmt.get(), 4, end_ms);
            std::vector<shared::Reading> chunk;
            while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
                if (!decodeChunkRow(stmt.get(), static_cast<std::uint16_t>(index), chunk)) {
                    return Error::retry(
                        "sqlite_error",
                        "a stored raw chunk does not decode (" +
                            chunkName(table, gateway_id, index,
                                      sqlite3_column_int64(stmt.get(), 0)) +
                            "); the next write that reads it for duplicates sets it "
                            "aside");
                }
                for (const auto& reading : chunk) {
                    if (reading.time_ms < begin_ms || reading.time_ms >= end_ms) continue;
                    if (step > 0) {
                        const auto slot =
                            static_cast<std::size_t>(floorDiv(reading.time_ms, step) - first_slot);
                        if (reading.quality != shared::Quality::Bad && slot < slots.size()) {
                            slots[slot].add(reading.time_ms, reading.value);
                        }
                        continue;
                    }
                    ascending = ascending &&
                                (readings.empty() || readings.back().time_ms < reading.time_ms);
                    readings.push_back(reading);
                    if (readings.size() > limit) return too_many();
                }
            }
            if (rc != SQLITE_DONE) return sqliteError(impl.db.get(), rc);
        }
        if (!ascending) {
            std::sort(readings.begin(), readings.end(),
                      [](const auto& a, const auto& b) { return a.time_ms < b.time_ms; });
        }
        for (const auto& r : readings) {
            result.points.push_back(
                SeriesPoint{r.time_ms, r.value, r.value, r.value, r.value, r.value, 1, r.quality});
        }
        for (std::size_t slot = 0; slot < slots.size(); ++slot) {
            if (slots[slot].count == 0) continue;
            result.points.push_back(
                slots[slot].point((first_slot + static_cast<std::int64_t>(slot)) * step));
        }
    } else {
        ScopedStatement use(result.tier == Tier::Minute ? impl.select_minute : impl.select_hour);
        sqlite3_bind_int64(*use, 1, gateway_id);
        sqlite3_bind_int(*use, 2, index);
        sqlite3_bind_int64(*use, 3, begin_ms);
        sqlite3_bind_int64(*use, 4, end_ms);
        int rc = SQLITE_OK;
        while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
            const Summary s{static_cast<std::uint64_t>(sqlite3_column_int64(*use, 1)),
                            sqlite3_column_double(*use, 2),
                            sqlite3_column_double(*use, 3),
                            sqlite3_column_double(*use, 4),
                            sqlite3_column_int64(*use, 5),
                            sqlite3_column_double(*use, 6),
                            sqlite3_column_int64(*use, 7),
                            sqlite3_column_double(*use, 8)};
            add(sqlite3_column_int64(*use, 0), s);
        }
        if (rc != SQLITE_DONE) return sqliteError(impl.db.get(), rc);
    }
    if (open_start) result.points.push_back(open.point(*open_start));
    return result;
}

Result<std::vector<shared::Aggregate>> TimeseriesStore::aggregates(std::string_view gateway,
                                                                   std::string_view sensor,
                                                                   std::int64_t from_ms,
                                                                   std::int64_t to_ms,
                                                                   std::size_t max_points) const {
    auto& impl = *impl_;
    if (to_ms <= from_ms) {
        return Error::drop("invalid_query",
                           fmt::format("need from_ms < to_ms (got [{}, {}))", from_ms, to_ms));
    }
    const std::size_t limit =
        max_points != 0 ? max_points : static_cast<std::size_t>(impl.config.max_points);
    auto series = impl.lookupSensor(gateway, sensor);
    if (!series) return series.error();
    std::vector<shared::Aggregate> out;
    ScopedStatement use(impl.select_aggregates);
    sqlite3_bind_int64(*use, 1, series.value().first);
    sqlite3_bind_int(*use, 2, series.value().second);
    sqlite3_bind_int64(*use, 3, from_ms);
    sqlite3_bind_int64(*use, 4, to_ms);
    sqlite3_bind_int64(*use, 5,
                       static_cast<sqlite3_int64>(std::min<std::size_t>(
                           limit, std::numeric_limits<sqlite3_int64>::max() - 1)) +
                           1);
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
        if (out.size() == limit) {
            return Error::drop("too_many_points",
                               fmt::format("more than {} aggregates in the range; narrow "
                                           "[from_ms, to_ms)",
                                           limit));
        }
        shared::Aggregate a;
        a.sensor = static_cast<std::uint16_t>(sqlite3_column_int(*use, 0));
        a.start_ms = sqlite3_column_int64(*use, 1);
        a.window_ms = static_cast<std::uint32_t>(sqlite3_column_int64(*use, 2));
        a.count = static_cast<std::uint32_t>(sqlite3_column_int64(*use, 3));
        a.min = sqlite3_column_double(*use, 4);
        a.max = sqlite3_column_double(*use, 5);
        a.mean = sqlite3_column_double(*use, 6);
        a.last = sqlite3_column_double(*use, 7);
        a.quality = static_cast<shared::Quality>(sqlite3_column_int(*use, 8));
        out.push_back(a);
    }
    if (rc != SQLITE_DONE) return sqliteError(impl.db.get(), rc);
    return out;
}

Result<RetentionResult> TimeseriesStore::enforceRetention() {
    auto& impl = *impl_;
    const std::int64_t now_ms = impl.nowMs();
    const std::int64_t first_day = impl.firstKeptDay(now_ms);
    const std::int64_t minute_cutoff = now_ms - impl.config.minute_retention.count();
    const std::int64_t hour_cutoff = now_ms - impl.config.hour_retention.count();
    RetentionResult result;
    std::vector<std::int64_t> dropped;
    const auto deleteBefore = [&](const Statement& stmt, std::int64_t cutoff,
                                  std::uint64_t& count) {
        ScopedStatement use(stmt);
        sqlite3_bind_int64(*use, 1, cutoff);
        const int rc = sqlite3_step(*use);
        count = static_cast<std::uint64_t>(sqlite3_changes(impl.db.get()));
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    };
    auto done = impl.transaction([&] {
        for (auto& [day, statements] : impl.days) {
            if (day >= first_day) break;
            // A prepared statement on the table would keep DROP from succeeding; it is
            // prepared again if the transaction rolls back and the day is written to.
            statements = DayStatements{};
            impl.cached_day = std::numeric_limits<std::int64_t>::min();
            impl.cached_statements = nullptr;
            if (const int step = exec(impl.db.get(), "DROP TABLE " + dayTableName(day));
                step != SQLITE_OK) {
                return step;
            }
            dropped.push_back(day);
        }
        // A bucket goes once all of it is older than the cutoff.
        int step = deleteBefore(impl.delete_minute, minute_cutoff - kMinuteMs + 1,
                                result.minute_rows_deleted);
        if (step == SQLITE_OK) {
            step =
                deleteBefore(impl.delete_hour, hour_cutoff - kHourMs + 1, result.hour_rows_deleted);
        }
        if (step == SQLITE_OK) {
            step =
                deleteBefore(impl.delete_aggregates, first_day * kDayMs, result.aggregates_deleted);
        }
        if (step == SQLITE_OK) {
            step = deleteBefore(impl.delete_alerts, hour_cutoff, result.alerts_deleted);
        }
        if (step == SQLITE_OK) {
            ScopedStatement use(impl.delete_undecodable);
            const std::string first_kept = dayTableName(first_day);
            sqlite3_bind_text(*use, 1, first_kept.c_str(), -1, SQLITE_TRANSIENT);
            step = sqlite3_step(*use);
            result.undecodable_chunks_deleted =
                static_cast<std::uint64_t>(sqlite3_changes(impl.db.get()));
            step = step == SQLITE_DONE ? SQLITE_OK : step;
        }
        if (step != SQLITE_OK) return step;
        ScopedStatement use(impl.meta_set);
        sqlite3_bind_text(*use, 1, "raw_floor_day", -1, SQLITE_STATIC);
        sqlite3_bind_int64(*use, 2, first_day);
        step = sqlite3_step(*use);
        return step == SQLITE_DONE ? SQLITE_OK : step;
    });
    if (!done) return done.error();
    impl.raw_floor_day = first_day;
    for (const std::int64_t day : dropped) impl.days.erase(day);
    // Dropped days are before the floor and never written again; the kept days' entries stand.
    if (!dropped.empty()) {
        std::erase_if(impl.latest_stored, [&](const auto& entry) {
            return floorDiv(entry.first.bucket_ms, kDayMs) < first_day;
        });
    }
    result.tables_dropped = dropped.size();
    impl.tables_dropped->inc(result.tables_dropped);
    impl.rows_deleted[0]->inc(result.minute_rows_deleted);
    impl.rows_deleted[1]->inc(result.hour_rows_deleted);
    impl.rows_deleted[2]->inc(result.aggregates_deleted);
    impl.rows_deleted[3]->inc(result.alerts_deleted);
    impl.rows_deleted[4]->inc(result.undecodable_chunks_deleted);
    return result;
}

std::vector<std::int64_t> TimeseriesStore::rawDays() const {
    std::vector<std::int64_t> out;
    for (const auto& entry : impl_->days) out.push_back(entry.first);
    return out;
}

}  // namespace tern::ingest
