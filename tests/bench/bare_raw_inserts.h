#pragma once

// The baselines both store benchmarks (timeseries_bench, ingest_bench) compare the embedded
// time-series store with, each with the store's pragmas, one raw day table, one transaction per
// `batches_per_transaction` batches, and nothing else (no rollups, no gateway table, no caches):
// - bareRawInserts: one prepared INSERT per reading, a row each (the store's layout before
//   schema version 2, and what a store that keeps readings as rows can do at best);
// - bareChunkInserts: the store's own rows, chunks built before the clock starts, one INSERT each.
// Header-only: the two are separate programs.

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tern/ingest/timeseries_store.h"
#include "tern/shared/messages.h"

namespace tern::bench {

struct BareBatch {
    std::int64_t gateway = 0;  // the integer the store would give the gateway
    const shared::TelemetryBatch* batch = nullptr;
};

// A new database at `path` with the store's pragmas (as TimeseriesStore::open sets them), removed
// again when done. Its methods throw std::runtime_error naming the failing SQLite step.
class BareDb {
public:
    BareDb(std::filesystem::path path, std::uint64_t cache_bytes) : path_(std::move(path)) {
        remove();
        const int rc = sqlite3_open(path_.c_str(), &db_);
        if (rc != SQLITE_OK) {
            const std::string error = sqlite3_errmsg(db_);
            sqlite3_close(db_);
            throw std::runtime_error("bare loop, open: " + error);
        }
        exec("PRAGMA journal_mode=WAL; " + ingest::storePragmasSql(cache_bytes), "pragmas");
    }
    ~BareDb() {
        sqlite3_finalize(insert_);
        sqlite3_close(db_);
        remove();
    }
    BareDb(const BareDb&) = delete;
    BareDb& operator=(const BareDb&) = delete;

    void exec(const std::string& sql, const char* what) {
        check(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), what);
    }
    // The one INSERT the loop runs.
    sqlite3_stmt* prepareInsert(const std::string& sql) {
        check(sqlite3_prepare_v2(db_, sql.c_str(), -1, &insert_, nullptr), "prepare");
        return insert_;
    }
    void check(int rc, const char* what) {
        if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
            throw std::runtime_error(std::string("bare loop, ") + what + ": " +
                                     sqlite3_errmsg(db_));
        }
    }

private:
    void remove() {
        for (const char* suffix : {"", "-wal", "-shm"}) {
            std::filesystem::remove(path_.string() + suffix);
        }
    }
    std::filesystem::path path_;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* insert_ = nullptr;
};

// Inserts every reading of `batches`, a row each, into a new database at `path`. `timed` is
// called with the inserts: pass a function that runs its argument and measures it.
template <class Timed>
void bareRawInserts(const std::filesystem::path& path, std::span<const BareBatch> batches,
                    std::int64_t day_ms, std::size_t batches_per_transaction,
                    std::uint64_t cache_bytes, Timed&& timed) {
    BareDb db(path, cache_bytes);
    const std::string table = ingest::rawTableName(day_ms);
    db.exec("CREATE TABLE " + table +
                "(gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, time_ms INTEGER NOT NULL, "
                "value REAL NOT NULL, quality INTEGER NOT NULL, PRIMARY KEY(gateway, sensor, "
                "time_ms)) WITHOUT ROWID",
            "create");
    sqlite3_stmt* insert =
        db.prepareInsert("INSERT INTO " + table +
                         "(gateway, sensor, time_ms, value, quality) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT DO NOTHING");
    timed([&] {
        for (std::size_t first = 0; first < batches.size(); first += batches_per_transaction) {
            db.exec("BEGIN IMMEDIATE", "begin");
            const std::size_t end = std::min(batches.size(), first + batches_per_transaction);
            for (std::size_t b = first; b < end; ++b) {
                for (const auto& r : batches[b].batch->readings) {
                    sqlite3_bind_int64(insert, 1, batches[b].gateway);
                    sqlite3_bind_int(insert, 2, r.sensor);
                    sqlite3_bind_int64(insert, 3, r.time_ms);
                    sqlite3_bind_double(insert, 4, r.value);
                    sqlite3_bind_int(insert, 5, static_cast<int>(r.quality));
                    db.check(sqlite3_step(insert), "insert");
                    sqlite3_reset(insert);
                }
            }
            db.exec("COMMIT", "commit");
        }
    });
}

// The store's rows for `batches`: per transaction, each series' readings sorted by time and cut
// as TimeseriesStore cuts them (ingest::cutRawChunks; the workloads have no duplicates to leave
// out).
struct ChunkRow {
    std::int64_t gateway = 0;
    int sensor = 0;
    std::int64_t start_ms = 0;
    std::int64_t end_ms = 0;
    std::int64_t count = 0;
    std::vector<std::uint8_t> bytes;
};

inline std::vector<std::vector<ChunkRow>> storeChunkRows(std::span<const BareBatch> batches,
                                                         std::size_t batches_per_transaction) {
    std::vector<std::vector<ChunkRow>> transactions;
    for (std::size_t first = 0; first < batches.size(); first += batches_per_transaction) {
        std::vector<std::pair<std::int64_t, shared::Reading>> readings;
        const std::size_t end = std::min(batches.size(), first + batches_per_transaction);
        for (std::size_t b = first; b < end; ++b) {
            for (const auto& r : batches[b].batch->readings) {
                readings.emplace_back(batches[b].gateway, r);
            }
        }
        std::stable_sort(readings.begin(), readings.end(), [](const auto& a, const auto& b) {
            return std::tuple(a.first, a.second.sensor, a.second.time_ms) <
                   std::tuple(b.first, b.second.sensor, b.second.time_ms);
        });
        std::vector<ChunkRow> rows;
        std::vector<shared::Reading> series;
        std::vector<std::span<const shared::Reading>> chunks;
        for (std::size_t i = 0; i < readings.size(); ++i) {
            series.push_back(readings[i].second);
            const bool last_of_series = i + 1 == readings.size() ||
                                        readings[i + 1].first != readings[i].first ||
                                        readings[i + 1].second.sensor != readings[i].second.sensor;
            if (!last_of_series) continue;
            chunks.clear();
            ingest::cutRawChunks(series, chunks);
            for (const auto& chunk : chunks) {
                ChunkRow row{readings[i].first,
                             chunk.front().sensor,
                             chunk.front().time_ms,
                             chunk.back().time_ms,
                             static_cast<std::int64_t>(chunk.size()),
                             {}};
                ingest::encodeRawChunk(chunk, row.bytes);
                rows.push_back(std::move(row));
            }
            series.clear();
        }
        transactions.push_back(std::move(rows));
    }
    return transactions;
}

// The store's own rows (storeChunkRows, built before `timed` runs) inserted one by one into a new
// database at `path`.
template <class Timed>
void bareChunkInserts(const std::filesystem::path& path, std::span<const BareBatch> batches,
                      std::int64_t day_ms, std::size_t batches_per_transaction,
                      std::uint64_t cache_bytes, Timed&& timed) {
    const auto transactions = storeChunkRows(batches, batches_per_transaction);
    BareDb db(path, cache_bytes);
    const std::string table = ingest::rawTableName(day_ms);
    db.exec(ingest::createRawTableSql(table), "create");
    sqlite3_stmt* insert = db.prepareInsert(ingest::insertRawChunkSql(table));
    timed([&] {
        for (const auto& rows : transactions) {
            db.exec("BEGIN IMMEDIATE", "begin");
            for (const auto& row : rows) {
                sqlite3_bind_int64(insert, 1, row.gateway);
                sqlite3_bind_int(insert, 2, row.sensor);
                sqlite3_bind_int64(insert, 3, row.start_ms);
                sqlite3_bind_int64(insert, 4, row.end_ms);
                sqlite3_bind_int64(insert, 5, row.count);
                sqlite3_bind_blob(insert, 6, row.bytes.data(), static_cast<int>(row.bytes.size()),
                                  SQLITE_STATIC);
                db.check(sqlite3_step(insert), "insert");
                sqlite3_reset(insert);
            }
            db.exec("COMMIT", "commit");
        }
    });
}

}  // namespace tern::bench
