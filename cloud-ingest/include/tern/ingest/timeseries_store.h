#pragma once

// The embedded time-series store: the ingest's default sink, SQLite in one file, so that Tern keeps
// and serves telemetry with nothing else installed. It keeps raw readings, the gateways' own window
// aggregates, 1-minute and 1-hour rollups of the raw readings, alerts and each gateway's sensor
// table, and answers series queries for the HTTP API.
//
// Invariants:
// - One call, one transaction: write()/writeMany(), writeAlert(), setSensors() and
//   enforceRetention() either commit everything they were given or, on error, nothing (the
//   in-memory caches of gateway ids and day tables are rolled back with them).
// - Durable when: WAL with synchronous=NORMAL. A committed call survives a crash of the process;
//   a power loss or kernel crash may undo the last committed transactions (always whole ones,
//   never half of one). That is acceptable because the spool upstream is the durable copy and
//   replays what this sink has not confirmed. The sink worker must therefore not let the spool
//   forget a slice before the store is on disk: it calls sync() (one fsync of the WAL) before it
//   persists its cursor past what it wrote. Between syncs only the spool holds the data safely.
// - Idempotent: writing the same batch again stores nothing twice, so a replay after a crash is
//   harmless. A raw reading's identity is (gateway, sensor, time_ms): the first value written for
//   it wins, and a later one (in the same call or any later call) is counted as a duplicate and
//   dropped before anything is written. Rollups are fed only with the readings actually written,
//   in the same transaction, so they never count a reading twice (unless its chunk stopped
//   decoding: see undecodable chunks below). Aggregates are keyed by
//   (gateway, sensor, start_ms, window_ms), alerts by (gateway, epoch, seq) (alerts with seq 0
//   carry no identity and are stored every time).
// - Raw readings are packed: one row (a chunk) holds up to kMaxChunkReadings readings of one
//   series (gateway, sensor) within one UTC hour, ascending by time with distinct times, written
//   by one call and never changed afterwards. Chunks of a series may overlap in time (late data
//   gets chunks of its own) but never share a reading. A row per reading capped the store near
//   half a million readings/s; a chunk costs two B-tree inserts (the table and its primary key's
//   index) for up to kMaxChunkReadings.
// - Duplicates are found without reading the database in the common case: the store remembers,
//   per series and hour, the latest time it has stored (loaded from the chunks the first time a
//   series-hour is written in this process; forgotten when a transaction rolls back, when
//   retention drops its day, and past 2^20 series-hours), and only a reading at or before that
//   time makes it read the hour's chunks.
// - Raw chunks live in one table per UTC day (raw_YYYYMMDD), created on first write for that day.
//   Rollups are kept for 1-minute and 1-hour buckets (count, sum, min, max, first and last by
//   time) and updated as data arrives, late data included: a reading for an old minute updates
//   that minute and its hour. Readings of quality Bad are kept raw but left out of every rollup.
// - Schema version 2. A version 1 file (a row per reading) is converted to chunks when opened,
//   in one transaction.
// - A stored chunk that no longer decodes (a damaged page) is set aside by the first write that
//   reads it for duplicates: moved byte for byte into the undecodable_chunks table, in that
//   write's transaction, and reported in its WriteResult and a metric. Its readings are gone
//   from raw queries, and a later copy of one of them is stored again and counted again by the
//   rollups, which already counted the original. More than kMaxUndecodableChunksPerWrite in one
//   write fail it instead. Until a write meets it, raw queries over it fail and name it.
// - Deleted when: by enforceRetention() and, for undecodable chunks, by the write that sets
//   them aside (see above); retention runs against the injected clock's wall time. A raw day
//   table is dropped whole once the day has ended more than raw_retention ago; rollup buckets,
//   aggregates (with the raw tier) and alerts (with the 1-hour tier) once they ended more than
//   their tier's retention ago; set-aside chunks with their day. Retention requires
//   raw <= 1 minute <= 1 hour, so a reading that is still accepted always finds its rollup
//   buckets.
// - Not accepted (counted, the rest of the batch is stored): non-finite values; readings older
//   than the oldest raw day kept (their duplicates could no longer be recognised, so a replay
//   would count them twice in the rollups); readings more than max_future ahead of the clock
//   (they would create far-future day tables). The oldest day kept is persisted and never moves
//   back, even if the wall clock does.
// - Sensors are stored by index; queries name them through the gateway's latest birth
//   (setSensors), so a gateway that re-indexes its sensors renames its old data as well.
//
// Threads: a TimeseriesStore is used from one thread (its sink worker's strand); it is not
// thread-safe and assumes it is the file's only writer. Queries read the schema afresh, so a
// second TimeseriesStore opened on the same file can serve queries from another thread (WAL:
// readers do not block the writer). Metrics may be scraped from any thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tern/shared/clock.h"
#include "tern/shared/config.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::ingest {

// [tsdb] in the ingest's config.
struct TimeseriesStoreConfig {
    std::string path = "/var/lib/tern/tsdb.db";
    std::chrono::milliseconds raw_retention{std::chrono::hours{24 * 90}};
    std::chrono::milliseconds minute_retention{std::chrono::hours{24 * 365}};
    std::chrono::milliseconds hour_retention{std::chrono::hours{24 * 365 * 5}};
    std::chrono::milliseconds max_future{std::chrono::hours{24}};
    std::uint64_t cache_bytes = 64 * shared::kMiB;
    std::int64_t max_points = 11'000;
};

shared::ConfigTable<TimeseriesStoreConfig> timeseriesStoreTable();

// Which stored series a query read.
enum class Tier : std::uint8_t { Raw = 0, Minute = 1, Hour = 2 };

inline constexpr std::int64_t kMinuteMs = 60'000;
inline constexpr std::int64_t kHourMs = 3'600'000;

// One point of a series. A raw point (step 0) is one reading: count 1, and value, min, max, first
// and last all equal to it. Otherwise a point covers [time_ms, time_ms + step) and summarises the
// readings in it that are not of quality Bad; quality is then Good.
struct SeriesPoint {
    std::int64_t time_ms = 0;
    double value = 0.0;  // raw: the reading; otherwise the mean
    double min = 0.0;
    double max = 0.0;
    double first = 0.0;  // by time
    double last = 0.0;
    std::uint64_t count = 0;
    shared::Quality quality = shared::Quality::Good;
    friend bool operator==(const SeriesPoint&, const SeriesPoint&) = default;
};

struct SeriesResult {
    Tier tier = Tier::Raw;
    // The step actually used: 0 for raw points, else step_ms rounded up to a whole number of the
    // tier's buckets (a 90 s step over 1-minute rollups becomes 120 s). Points start at multiples
    // of it in Unix time.
    std::int64_t step_ms = 0;
    std::vector<SeriesPoint> points;  // ascending time, empty buckets left out
};

// What one write()/writeMany() did; every reading given is counted exactly once.
struct WriteResult {
    std::uint64_t readings_written = 0;
    std::uint64_t readings_duplicate = 0;  // already stored: left as they were
    std::uint64_t readings_non_finite = 0;
    std::uint64_t readings_expired = 0;  // older than the oldest raw day kept
    std::uint64_t readings_future = 0;   // more than max_future ahead of the clock
    std::uint64_t aggregates_written = 0;
    std::uint64_t aggregates_duplicate = 0;
    std::uint64_t aggregates_rejected = 0;  // non-finite, expired or future, as readings
    // Stored chunks that no longer decoded when this write read them for duplicates (those of
    // its series-hours that overlap its readings in time), set aside in the undecodable_chunks
    // table so that writes go on: "raw_YYYYMMDD gateway id G sensor S start_ms T" each.
    std::vector<std::string> undecodable_chunks;
};

// One batch of a group commit and the gateway it is stored under: the identity the ingest
// verified (the topic's), not the batch's own gateway_id field.
struct GatewayBatch {
    std::string_view gateway;
    const shared::TelemetryBatch* batch = nullptr;  // not null
};

struct RetentionResult {
    std::uint64_t tables_dropped = 0;
    std::uint64_t minute_rows_deleted = 0;
    std::uint64_t hour_rows_deleted = 0;
    std::uint64_t aggregates_deleted = 0;
    std::uint64_t alerts_deleted = 0;
    std::uint64_t undecodable_chunks_deleted = 0;  // set-aside chunks of the days dropped
};

struct AlertQuery {
    std::optional<std::string> gateway;  // all gateways when empty
    std::int64_t from_ms = 0;            // time_ms in [from_ms, to_ms)
    std::int64_t to_ms = std::numeric_limits<std::int64_t>::max();
    std::size_t limit = 100;
};

class TimeseriesStore {
public:
    // Opens or creates the database. A file that cannot be opened, is not a database or has a newer
    // schema is Error::stop and is left alone: unlike the edge, the ingest's store holds data that
    // exists nowhere else once the spool has moved on, so an operator decides what to do with it.
    // Retention out of order (raw <= minute <= hour) is Error::stop too.
    static shared::Result<std::unique_ptr<TimeseriesStore>> open(
        const TimeseriesStoreConfig& config, const shared::Clock& clock,
        shared::MetricsRegistry& metrics);
    ~TimeseriesStore();
    TimeseriesStore(const TimeseriesStore&) = delete;
    TimeseriesStore& operator=(const TimeseriesStore&) = delete;

    // Stores raw readings and aggregates and updates the rollups, in one transaction. Readings
    // are aggregated in memory per (gateway, sensor, bucket) over the whole call, so each rollup
    // row is written once per call. Errors: "sqlite_error", "disk_full" (both retry; nothing was
    // stored).
    shared::Result<WriteResult> write(std::string_view gateway,
                                      const shared::TelemetryBatch& batch);
    // Many batches in one transaction: the sink worker's group commit.
    shared::Result<WriteResult> writeMany(std::span<const GatewayBatch> batches);

    // Makes everything committed so far survive a power loss (see Durable when).
    shared::VoidResult sync();

    // Replaces the gateway's sensor table with the one its birth carries. Errors: "invalid_sensors"
    // (drop: an empty name, or an index or name given twice), "sqlite_error" (retry).
    shared::VoidResult setSensors(std::string_view gateway,
                                  const std::vector<shared::SensorInfo>& sensors);
    // The gateway's sensors by ascending index; empty for a gateway without a birth.
    shared::Result<std::vector<shared::SensorInfo>> sensors(std::string_view gateway) const;

    // true: stored; false: already stored (same gateway, epoch and seq).
    shared::Result<bool> writeAlert(std::string_view gateway, const shared::Alert& alert);
    // Newest first; gateway_id is the gateway they were stored under.
    shared::Result<std::vector<shared::Alert>> alerts(const AlertQuery& query) const;

    // The sensor's readings in [from_ms, to_ms). step_ms picks the tier: raw below a minute
    // (0: every reading as stored, quality included), the 1-minute rollups from a minute, the
    // 1-hour rollups from an hour. With a step, points cover whole steps, so the range widens to
    // [floor(from_ms / step) * step, ceil(to_ms / step) * step). Errors (all drop):
    // "unknown_sensor" (no such gateway, or no such name in its latest birth), "invalid_query"
    // (to_ms <= from_ms, a negative step), "too_many_points" (more than max_points would come back;
    // 0: the configured max_points), and "sqlite_error" (retry).
    shared::Result<SeriesResult> query(std::string_view gateway, std::string_view sensor,
                                       std::int64_t from_ms, std::int64_t to_ms,
                                       std::int64_t step_ms, std::size_t max_points = 0) const;

    // The gateway's own window summaries for the sensor with start_ms in [from_ms, to_ms),
    // ascending; the same errors as query(). They are stored as sent and are not part of the
    // rollups: a gateway may send a sensor both raw and aggregated.
    shared::Result<std::vector<shared::Aggregate>> aggregates(std::string_view gateway,
                                                              std::string_view sensor,
                                                              std::int64_t from_ms,
                                                              std::int64_t to_ms,
                                                              std::size_t max_points = 0) const;

    // Drops raw day tables and deletes rollups, aggregates and alerts past their retention, in one
    // transaction. Call it periodically (hourly is plenty: tables go by whole days).
    shared::Result<RetentionResult> enforceRetention();

    // UTC days (days since the Unix epoch) that have a raw table, ascending.
    std::vector<std::int64_t> rawDays() const;

private:
    struct Impl;
    explicit TimeseriesStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// "raw_20260528" for the UTC day holding time_ms.
std::string rawTableName(std::int64_t time_ms);

// The packed raw tier, exposed so that the benchmarks can write the store's own rows in a bare
// loop. A chunk is encoded relative to its first reading: per reading, the time since the one
// before as a LEB128 varint (the first: 0), the value as 8 bytes (IEEE 754, little-endian) and
// the quality as one byte.
inline constexpr std::size_t kMaxChunkReadings = 256;
// More undecodable chunks than this in one write fail it ("undecodable_chunks", retried) instead
// of being set aside: that many at once points at a decoder bug, not a damaged page.
inline constexpr std::size_t kMaxUndecodableChunksPerWrite = 16;
// The columns of a raw day table; PRIMARY KEY(gateway, sensor, start_ms).
std::string createRawTableSql(const std::string& table);
// INSERT of one chunk: (gateway, sensor, start_ms, end_ms, count, readings).
std::string insertRawChunkSql(const std::string& table);
// The pragmas open() sets after journal_mode=WAL, for a page cache of cache_bytes.
std::string storePragmasSql(std::uint64_t cache_bytes);
// Appends the chunk of `ascending` (times strictly increasing, at most kMaxChunkReadings; sensor
// is not stored) to `out`.
void encodeRawChunk(std::span<const shared::Reading> ascending, std::vector<std::uint8_t>& out);
// Cuts one series' readings (ascending, distinct times) into the chunks the store writes: a new
// chunk at each UTC hour and after every kMaxChunkReadings readings. Appends them to `out`.
void cutRawChunks(std::span<const shared::Reading> ascending,
                  std::vector<std::span<const shared::Reading>>& out);
// Appends the `count` readings of a chunk that starts at start_ms to `out`, with `sensor` set;
// false if the bytes are not such a chunk (out then holds what was decoded before the fault).
bool decodeRawChunk(std::span<const std::uint8_t> chunk, std::int64_t start_ms, std::size_t count,
                    std::uint16_t sensor, std::vector<shared::Reading>& out);

}  // namespace tern::ingest
