#pragma once

// The baseline both store benchmarks (timeseries_bench, ingest_bench) compare the embedded
// time-series store with: the store's pragmas and one raw day table, one prepared INSERT per
// reading, one transaction per `batches_per_transaction` batches, and nothing else (no rollups,
// no gateway table, no caches). Header-only: the two are separate programs.

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>

#include "tern/ingest/timeseries_store.h"
#include "tern/shared/messages.h"

namespace tern::bench {

struct BareBatch {
    std::int64_t gateway = 0;  // the integer the store would give the gateway
    const shared::TelemetryBatch* batch = nullptr;
};

// Inserts every reading of `batches` into a new database at `path` (removed before and after).
// `timed` is called with the inserts: pass a function that runs its argument and measures it.
// Throws std::runtime_error naming the failing SQLite step.
template <class Timed>
void bareRawInserts(const std::filesystem::path& path, std::span<const BareBatch> batches,
                    std::int64_t day_ms, std::size_t batches_per_transaction,
                    std::uint64_t cache_bytes, Timed&& timed) {
    const auto remove = [&] {
        for (const char* suffix : {"", "-wal", "-shm"}) {
            std::filesystem::remove(path.string() + suffix);
        }
    };
    remove();
    sqlite3* db = nullptr;
    const auto check = [&](int rc, const char* what) {
        if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
            throw std::runtime_error(std::string("bare loop, ") + what + ": " + sqlite3_errmsg(db));
        }
    };
    check(sqlite3_open(path.c_str(), &db), "open");
    // As TimeseriesStore::open sets them.
    const std::string pragmas =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-" +
        std::to_string(cache_bytes / 1024) +
        "; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=16384; "
        "PRAGMA journal_size_limit=" +
        std::to_string(16384 * 4096) + ";";
    check(sqlite3_exec(db, pragmas.c_str(), nullptr, nullptr, nullptr), "pragmas");
    const std::string table = ingest::rawTableName(day_ms);
    check(sqlite3_exec(db,
                       ("CREATE TABLE " + table +
                        "(gateway INTEGER NOT NULL, sensor INTEGER NOT NULL, time_ms INTEGER NOT "
                        "NULL, value REAL NOT NULL, quality INTEGER NOT NULL, PRIMARY KEY(gateway, "
                        "sensor, time_ms)) WITHOUT ROWID")
                           .c_str(),
                       nullptr, nullptr, nullptr),
          "create");
    sqlite3_stmt* insert = nullptr;
    check(sqlite3_prepare_v2(db,
                             ("INSERT INTO " + table +
                              "(gateway, sensor, time_ms, value, quality) VALUES (?, ?, ?, ?, ?) "
                              "ON CONFLICT DO NOTHING")
                                 .c_str(),
                             -1, &insert, nullptr),
          "prepare");
    timed([&] {
        for (std::size_t first = 0; first < batches.size(); first += batches_per_transaction) {
            check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), "begin");
            const std::size_t end = std::min(batches.size(), first + batches_per_transaction);
            for (std::size_t b = first; b < end; ++b) {
                for (const auto& r : batches[b].batch->readings) {
                    sqlite3_bind_int64(insert, 1, batches[b].gateway);
                    sqlite3_bind_int(insert, 2, r.sensor);
                    sqlite3_bind_int64(insert, 3, r.time_ms);
                    sqlite3_bind_double(insert, 4, r.value);
                    sqlite3_bind_int(insert, 5, static_cast<int>(r.quality));
                    check(sqlite3_step(insert), "insert");
                    sqlite3_reset(insert);
                }
            }
            check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), "commit");
        }
    });
    sqlite3_finalize(insert);
    sqlite3_close(db);
    remove();
}

}  // namespace tern::bench
