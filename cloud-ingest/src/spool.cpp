#include "tern/ingest/spool.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tern/shared/sqlite.h"

namespace tern::ingest {

using shared::Error;
using shared::Result;
using shared::SeqRange;

shared::ConfigTable<SpoolConfig> spoolTable() {
    return shared::ConfigTable<SpoolConfig>(
               "spool",
               "Durable local log of admitted messages, read by every sink through its "
               "own cursor")
        .string("path", &SpoolConfig::path, "/var/lib/tern/spool.db", "SQLite database file")
        .byteSize("max_bytes", &SpoolConfig::max_bytes, 4 * shared::kGiB,
                  {64 * shared::kKiB, 4096 * shared::kGiB},
                  "Sum of spooled payload bytes; beyond it appends are refused (gateways keep "
                  "their data and retransmit), nothing is evicted")
        .number("high_water", &SpoolConfig::high_water, 0.8, {0.01, 1.0}, "fraction of max_bytes",
                "Above it the spool reports above_high_water so intake can slow down")
        .byteSize("max_disk_bytes", &SpoolConfig::max_disk_bytes, 0, {0, 8192 * shared::kGiB},
                  "Hard cap on the database file, SQLite's own overhead included; 0: the file "
                  "system's free space. Reaching it fails the group as disk_full (retry)");
}

namespace {

using Db = shared::SqliteDb;
using Statement = shared::SqliteStatement;
using shared::ScopedStatement;

std::string describe(sqlite3* db, int rc) {
    std::string text = sqlite3_errstr(rc);
    if (db != nullptr) text += std::string(" (") + sqlite3_errmsg(db) + ")";
    return text;
}

Error writeError(sqlite3* db, int rc) {
    const int primary = rc & 0xff;
    if (primary == SQLITE_FULL) return Error::retry("disk_full", describe(db, rc));
    return Error::retry("sqlite_error", describe(db, rc));
}

int exec(sqlite3* db, std::string_view sql) {
    return sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, nullptr);
}

// offset grows by one per record and is never reused: the next one is kept in meta, written in
// each group's transaction. dedupe.ranges holds (first, last) pairs as little-endian uint64s.
constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records(
    offset INTEGER PRIMARY KEY,
    gateway TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dedupe(
    gateway TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    floor INTEGER NOT NULL,
    ranges BLOB NOT NULL,
    PRIMARY KEY (gateway, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors(sink TEXT PRIMARY KEY, offset INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(key, value) VALUES ('next_offset', 1);
)sql";

constexpr std::array<std::string_view, 2> kKindNames = {"telemetry", "alert"};

enum class Refusal : std::size_t { TooManyGaps = 0, Stale = 1, Invalid = 2 };
constexpr std::array<std::string_view, 3> kRefusalNames = {"too_many_gaps", "stale_epoch",
                                                           "invalid"};

// What one (gateway, epoch) has admitted: every seq <= floor, plus ranges, which are ascending,
// disjoint, never adjacent to each other and start above floor + 1 (else they would be merged).
struct EpochState {
    std::uint64_t floor = 0;
    std::vector<SeqRange> ranges;

    // The first range that starts above seq.
    std::vector<SeqRange>::iterator above(std::uint64_t seq) {
        return std::upper_bound(ranges.begin(), ranges.end(), seq,
                                [](std::uint64_t s, const SeqRange& r) { return s < r.first; });
    }

    bool contains(std::uint64_t seq) const {
        if (seq <= floor) return true;
        const auto it =
            std::upper_bound(ranges.begin(), ranges.end(), seq,
                             [](std::uint64_t s, const SeqRange& r) { return s < r.first; });
        return it != ranges.begin() && std::prev(it)->last >= seq;
    }

    // Admits seq, which must not be contained yet. Returns false, changing nothing, when it would
    // need a range of its own and max_ranges are already held.
    bool admit(std::uint64_t seq, std::size_t max_ranges) {
        const auto right = above(seq);
        const bool joins_left =
            right == ranges.begin() ? seq == floor + 1 : std::prev(right)->last + 1 == seq;
        const bool joins_right = right != ranges.end() && right->first - 1 == seq;
        if (!joins_left && !joins_right) {
            if (ranges.size() >= max_ranges) return false;
            ranges.insert(right, SeqRange{seq, seq});
        } else if (joins_left && right == ranges.begin()) {
            floor = seq;
            if (joins_right) {
                floor = right->last;
                ranges.erase(right);
            }
        } else if (joins_left) {
            const auto left = std::prev(right);
            left->last = joins_right ? right->last : seq;
            if (joins_right) ranges.erase(right);
        } else {
            right->first = seq;
        }
        return true;
    }

    // Adds everything `floor_other` and `other` (ascending ranges) cover. Beyond max_ranges the
    // highest ranges are forgotten: that can only let a seq in again (stored twice, never lost).
    // Returns whether anything changed.
    bool merge(std::uint64_t floor_other, const std::vector<SeqRange>& other,
               std::size_t max_ranges) {
        std::vector<SeqRange> all = ranges;
        all.insert(all.end(), other.begin(), other.end());
        std::sort(all.begin(), all.end(),
                  [](const SeqRange& a, const SeqRange& b) { return a.first < b.first; });
        std::uint64_t merged_floor = std::max(floor, floor_other);
        std::vector<SeqRange> merged;
        for (const auto& range : all) {
            if (range.first == 0 || range.last < range.first || range.last <= merged_floor) {
                continue;
            }
            if (merged.empty() && range.first <= merged_floor + 1) {
                merged_floor = range.last;
            } else if (!merged.empty() && range.first <= merged.back().last + 1) {
                merged.back().last = std::max(merged.back().last, range.last);
            } else {
                merged.push_back(range);
            }
        }
        if (merged.size() > max_ranges) merged.resize(max_ranges);
        if (merged_floor == floor && merged == ranges) return false;
        floor = merged_floor;
        ranges = std::move(merged);
        return true;
    }

    std::vector<SeqRange> gaps(std::size_t max) const {
        std::vector<SeqRange> out;
        std::uint64_t previous = floor;
        for (const auto& range : ranges) {
            if (out.size() >= max) break;
            out.push_back({previous + 1, range.first - 1});
            previous = range.last;
        }
        return out;
    }
};

using EpochMap = std::map<std::uint64_t, EpochState>;
using GatewayMap = std::map<std::string, EpochMap, std::less<>>;

shared::Bytes encodeRanges(const std::vector<SeqRange>& ranges) {
    shared::Bytes out;
    out.reserve(ranges.size() * 16);
    auto put = [&out](std::uint64_t v) {
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    };
    for (const auto& range : ranges) {
        put(range.first);
        put(range.last);
    }
    return out;
}

// nullopt unless the blob holds whole pairs that keep EpochState's invariants.
std::optional<std::vector<SeqRange>> decodeRanges(const std::uint8_t* data, std::size_t size,
                                                  std::uint64_t floor, std::size_t max_ranges) {
    if (size % 16 != 0 || size / 16 > max_ranges) return std::nullopt;
    auto get = [data](std::size_t at) {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= std::uint64_t{data[at + i]} << (8 * i);
        return v;
    };
    std::vector<SeqRange> out;
    std::uint64_t previous = floor;
    for (std::size_t at = 0; at < size; at += 16) {
        const SeqRange range{get(at), get(at + 8)};
        if (range.first <= previous + 1 || range.last < range.first) return std::nullopt;
        out.push_back(range);
        previous = range.last;
    }
    return out;
}

SpoolRecord readRecord(sqlite3_stmt* stmt) {
    SpoolRecord record;
    record.offset = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
    const auto* gateway = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
    if (gateway != nullptr) record.gateway_id = gateway;
    record.sequence.epoch = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 2));
    record.sequence.seq = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 3));
    record.kind = sqlite3_column_int(stmt, 4) == 1 ? Kind::Alert : Kind::Telemetry;
    record.readings = static_cast<std::uint32_t>(sqlite3_column_int64(stmt, 5));
    record.received_ms = sqlite3_column_int64(stmt, 6);
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, 7));
    const int size = sqlite3_column_bytes(stmt, 7);
    if (data != nullptr && size > 0) record.payload.assign(data, data + size);
    return record;
}

std::string checkOptions(const SpoolOptions& options) {
    if (options.max_bytes == 0) return "max_bytes must be positive";
    if (!(options.high_water > 0.0 && options.high_water <= 1.0)) {
        return "high_water must be in (0, 1]";
    }
    if (options.max_ranges == 0 || options.max_ranges > kMaxReceiptRanges) {
        return "max_ranges must be in [1, " + std::to_string(kMaxReceiptRanges) + "]";
    }
    if (options.max_epochs == 0) return "max_epochs must be at least 1";
    return {};
}

}  // namespace

struct Spool::Impl {
    Impl(SpoolOptions opts, const shared::Clock& c, shared::MetricsRegistry& m)
        : options(std::move(opts)), clock(c), metrics(m) {
        for (std::size_t kind = 0; kind < kKindNames.size(); ++kind) {
            appended[kind] = &metrics.counter("tern_ingest_spool_appended_total",
                                              "Messages committed to the spool",
                                              {{"kind", std::string(kKindNames[kind])}});
        }
        appended_bytes = &metrics.counter("tern_ingest_spool_appended_bytes_total",
                                          "Payload bytes committed to the spool");
        duplicates = &metrics.counter(
            "tern_ingest_spool_duplicates_total",
            "Messages not stored because their (gateway, epoch, seq) was already admitted");
        full_rejections = &metrics.counter(
            "tern_ingest_spool_full_rejections_total",
            "Messages refused because the spool held max_bytes; their gateways retransmit");
        for (std::size_t reason = 0; reason < kRefusalNames.size(); ++reason) {
            refused[reason] =
                &metrics.counter("tern_ingest_spool_refused_total",
                                 "Messages not stored for a reason other than duplicate or full",
                                 {{"reason", std::string(kRefusalNames[reason])}});
        }
        group_commits = &metrics.counter("tern_ingest_spool_group_commits_total",
                                         "Append transactions committed (one per group)");
        commit_failures = &metrics.counter("tern_ingest_spool_commit_failures_total",
                                           "Append transactions that failed; nothing admitted");
        truncated = &metrics.counter("tern_ingest_spool_truncated_total",
                                     "Records deleted after every sink cursor passed them");
        commit_seconds = &metrics.histogram("tern_ingest_spool_commit_seconds",
                                            "Time to write and commit one group",
                                            shared::exponentialBuckets(0.0005, 2.0, 14));
        records_gauge = &metrics.gauge("tern_ingest_spool_records", "Records held in the spool");
        bytes_gauge = &metrics.gauge("tern_ingest_spool_bytes", "Payload bytes held in the spool");
        max_bytes_gauge =
            &metrics.gauge("tern_ingest_spool_max_bytes", "Payload bytes the spool may hold");
        high_water_gauge = &metrics.gauge("tern_ingest_spool_above_high_water",
                                          "1 while the spool holds more than its high water mark");
    }

    shared::Gauge& lagGauge(const std::string& sink) {
        return metrics.gauge("tern_ingest_spool_cursor_lag_records",
                             "Records a sink's cursor is behind the newest", {{"sink", sink}});
    }

    int prepare(Statement& stmt, std::string_view sql) {
        sqlite3_stmt* raw = nullptr;
        const int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
        stmt.reset(raw);
        return rc;
    }

    int prepareAll() {
        const std::pair<Statement*, std::string_view> all[] = {
            {&begin, "BEGIN IMMEDIATE"},
            {&commit, "COMMIT"},
            {&rollback, "ROLLBACK"},
            {&set_next_offset, "UPDATE meta SET value = ? WHERE key = 'next_offset'"},
            {&insert_record,
             "INSERT INTO records(offset, gateway, epoch, seq, kind, readings, received_ms, "
             "bytes, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"},
            {&upsert_dedupe,
             "INSERT INTO dedupe(gateway, epoch, floor, ranges) VALUES (?, ?, ?, ?) "
             "ON CONFLICT(gateway, epoch) DO UPDATE SET floor = excluded.floor, "
             "ranges = excluded.ranges"},
            {&delete_dedupe, "DELETE FROM dedupe WHERE gateway = ? AND epoch = ?"},
            {&select_after,
             "SELECT offset, gateway, epoch, seq, kind, readings, received_ms, payload "
             "FROM records WHERE offset > ? ORDER BY offset LIMIT ?"},
            {&insert_cursor, "INSERT INTO cursors(sink, offset) VALUES (?, ?)"},
            {&update_cursor, "UPDATE cursors SET offset = ? WHERE sink = ?"},
            {&delete_cursor, "DELETE FROM cursors WHERE sink = ?"},
            {&delete_through, "DELETE FROM records WHERE offset <= ? RETURNING bytes"},
        };
        for (const auto& [stmt, sql] : all) {
            if (const int rc = prepare(*stmt, sql); rc != SQLITE_OK) return rc;
        }
        return SQLITE_OK;
    }

    int run(const Statement& stmt) {
        ScopedStatement use(stmt);
        const int rc = sqlite3_step(*use);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    void rollbackIfOpen() {
        if (sqlite3_get_autocommit(db.get()) == 0) run(rollback);
    }

    // Records are exactly the offsets (truncatedThrough(), lastOffset()]: offsets have no holes
    // and only truncate() deletes, always a prefix.
    std::uint64_t lastOffset() const { return next_offset - 1; }
    std::uint64_t truncatedThrough() const { return lastOffset() - records; }

    bool aboveHighWater() const {
        return static_cast<double>(bytes) >
               options.high_water * static_cast<double>(options.max_bytes);
    }

    void updateGauges() {
        records_gauge->set(static_cast<double>(records));
        bytes_gauge->set(static_cast<double>(bytes));
        high_water_gauge->set(aboveHighWater() ? 1.0 : 0.0);
        for (const auto& [sink, offset] : cursors) {
            lag_gauges.at(sink)->set(static_cast<double>(lastOffset() - offset));
        }
    }

    // The open (or created) file, checked and with its schema; every error is a reason to stop.
    shared::VoidResult openDatabase(const std::string& path) {
        sqlite3* raw = nullptr;
        int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                 nullptr);
        db.reset(raw);
        auto fail = [&](std::string_view code, std::string_view what, int error) {
            return Error::stop(std::string(code),
                               path + ": " + std::string(what) + ": " + describe(db.get(), error));
        };
        if (rc != SQLITE_OK) return fail("spool_open_failed", "open", rc);
        sqlite3_extended_result_codes(raw, 1);
        if ((rc = exec(raw, "PRAGMA journal_mode=WAL")) != SQLITE_OK) {
            const int primary = rc & 0xff;
            return fail(primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT ? "spool_corrupt"
                                                                              : "spool_open_failed",
                        "journal_mode", rc);
        }
        if ((rc = exec(raw, "PRAGMA synchronous=FULL")) != SQLITE_OK) {
            return fail("spool_open_failed", "synchronous", rc);
        }
        {
            sqlite3_stmt* check_raw = nullptr;
            rc = sqlite3_prepare_v2(raw, "PRAGMA quick_check", -1, &check_raw, nullptr);
            Statement check(check_raw);
            if (rc == SQLITE_OK) rc = sqlite3_step(check_raw);
            const auto* text =
                rc == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(check_raw, 0))
                                 : nullptr;
            if (text == nullptr || std::string_view(text) != "ok") {
                return Error::stop("spool_corrupt",
                                   path + ": quick_check: " +
                                       (text != nullptr ? std::string(text) : describe(raw, rc)));
            }
        }
        if (options.max_disk_bytes > 0) {
            sqlite3_stmt* size_raw = nullptr;
            sqlite3_prepare_v2(raw, "PRAGMA page_size", -1, &size_raw, nullptr);
            Statement size_stmt(size_raw);
            std::uint64_t page_size = 4096;
            if (size_raw != nullptr && sqlite3_step(size_raw) == SQLITE_ROW) {
                page_size = static_cast<std::uint64_t>(sqlite3_column_int64(size_raw, 0));
            }
            const std::uint64_t pages =
                std::max<std::uint64_t>(1, options.max_disk_bytes / page_size);
            rc = exec(raw, "PRAGMA max_page_count=" + std::to_string(pages));
            if (rc != SQLITE_OK) return fail("spool_open_failed", "max_page_count", rc);
        }
        rc = exec(raw, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK) rc = exec(raw, kSchema);
        if (rc == SQLITE_OK) rc = exec(raw, "COMMIT");
        if (rc != SQLITE_OK) {
            exec(raw, "ROLLBACK");
            return fail("spool_open_failed", "schema", rc);
        }
        return shared::success();
    }

    // Reads everything kept in memory: the next offset, totals, cursors and dedupe state.
    shared::VoidResult load(const std::string& path) {
        auto query = [&](std::string_view sql, auto&& row) -> int {
            Statement stmt;
            int rc = prepare(stmt, sql);
            if (rc != SQLITE_OK) return rc;
            while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
                if (!row(stmt.get())) return SQLITE_CORRUPT;
            }
            return rc == SQLITE_DONE ? SQLITE_OK : rc;
        };
        std::uint64_t max_offset = 0;
        int rc = query(
            "SELECT (SELECT value FROM meta WHERE key = 'next_offset'), count(*), "
            "coalesce(sum(bytes), 0), coalesce(max(offset), 0) FROM records",
            [&](sqlite3_stmt* s) {
                next_offset = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
                records = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
                bytes = static_cast<std::uint64_t>(sqlite3_column_int64(s, 2));
                max_offset = static_cast<std::uint64_t>(sqlite3_column_int64(s, 3));
                return true;
            });
        if (rc == SQLITE_OK) {
            rc = query("SELECT sink, offset FROM cursors", [&](sqlite3_stmt* s) {
                const auto* sink = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
                if (sink == nullptr) return false;
                cursors[sink] = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
                return true;
            });
        }
        if (rc == SQLITE_OK) {
            rc = query("SELECT gateway, epoch, floor, ranges FROM dedupe", [&](sqlite3_stmt* s) {
                const auto* gateway = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
                const auto epoch = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
                EpochState state;
                state.floor = static_cast<std::uint64_t>(sqlite3_column_int64(s, 2));
                const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(s, 3));
                const auto size = static_cast<std::size_t>(sqlite3_column_bytes(s, 3));
                auto ranges = decodeRanges(data, size, state.floor, kMaxReceiptRanges);
                if (gateway == nullptr || !ranges) return false;
                state.ranges = std::move(*ranges);
                dedupe[gateway][epoch] = std::move(state);
                return true;
            });
        }
        if (rc != SQLITE_OK) {
            return Error::stop(
                (rc & 0xff) == SQLITE_CORRUPT ? "spool_corrupt" : "spool_open_failed",
                path + ": load: " + describe(db.get(), rc));
        }
        // The offsets must still describe the rows: a meta row behind them would reuse offsets.
        if (next_offset <= max_offset || records > lastOffset()) {
            return Error::stop("spool_corrupt", path + ": next_offset " +
                                                    std::to_string(next_offset) +
                                                    " does not fit the records held");
        }
        for (const auto& [sink, offset] : cursors) lag_gauges[sink] = &lagGauge(sink);
        max_bytes_gauge->set(static_cast<double>(options.max_bytes));
        updateGauges();
        return shared::success();
    }

    // The records of one group, its dedupe rows and the next offset, in one transaction.
    int commitGroup(std::span<const Incoming> group, const std::vector<std::size_t>& to_store,
                    const GatewayMap& work,
                    const std::set<std::pair<std::string, std::uint64_t>>& dirty,
                    const std::vector<std::pair<std::string, std::uint64_t>>& retired) {
        int rc = run(begin);
        if (rc != SQLITE_OK) return rc;
        std::uint64_t offset = next_offset;
        for (const std::size_t index : to_store) {
            const Incoming& m = group[index];
            ScopedStatement use(insert_record);
            sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(offset++));
            sqlite3_bind_text(*use, 2, m.gateway_id.data(), static_cast<int>(m.gateway_id.size()),
                              SQLITE_STATIC);
            sqlite3_bind_int64(*use, 3, static_cast<sqlite3_int64>(m.sequence.epoch));
            sqlite3_bind_int64(*use, 4, static_cast<sqlite3_int64>(m.sequence.seq));
            sqlite3_bind_int(*use, 5, static_cast<int>(m.kind));
            sqlite3_bind_int64(*use, 6, m.readings);
            sqlite3_bind_int64(*use, 7, m.received_ms);
            sqlite3_bind_int64(*use, 8, static_cast<sqlite3_int64>(m.payload.size()));
            // A null pointer would bind NULL, which the NOT NULL column refuses.
            if (m.payload.empty()) {
                sqlite3_bind_zeroblob(*use, 9, 0);
            } else {
                sqlite3_bind_blob(*use, 9, m.payload.data(), static_cast<int>(m.payload.size()),
                                  SQLITE_STATIC);
            }
            rc = sqlite3_step(*use);
            if (rc != SQLITE_DONE) break;
        }
        for (auto it = dirty.begin(); rc == SQLITE_DONE && it != dirty.end(); ++it) {
            const auto& [gateway, epoch] = *it;
            const EpochState& state = work.find(gateway)->second.at(epoch);
            const shared::Bytes blob = encodeRanges(state.ranges);
            ScopedStatement use(upsert_dedupe);
            sqlite3_bind_text(*use, 1, gateway.data(), static_cast<int>(gateway.size()),
                              SQLITE_STATIC);
            sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(epoch));
            sqlite3_bind_int64(*use, 3, static_cast<sqlite3_int64>(state.floor));
            sqlite3_bind_blob(*use, 4, blob.empty() ? "" : static_cast<const void*>(blob.data()),
                              static_cast<int>(blob.size()), SQLITE_TRANSIENT);
            rc = sqlite3_step(*use);
        }
        for (auto it = retired.begin(); rc == SQLITE_DONE && it != retired.end(); ++it) {
            ScopedStatement use(delete_dedupe);
            sqlite3_bind_text(*use, 1, it->first.data(), static_cast<int>(it->first.size()),
                              SQLITE_STATIC);
            sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(it->second));
            rc = sqlite3_step(*use);
        }
        if (rc == SQLITE_DONE) {
            ScopedStatement use(set_next_offset);
            sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(offset));
            rc = sqlite3_step(*use);
        }
        if (rc == SQLITE_DONE) {
            const int committed = run(commit);
            if (committed != SQLITE_OK) rc = committed;
        }
        if (rc != SQLITE_DONE) {
            rollbackIfOpen();
            return rc;
        }
        return SQLITE_OK;
    }

    Result<std::vector<Admission>> append(std::span<const Incoming> group) {
        std::vector<Admission> out(group.size(), Admission::Invalid);
        // Working copies of the gateways this group touches. They replace the committed state
        // only after the transaction commits, so a failed group leaves memory as it was.
        GatewayMap work;
        std::set<std::pair<std::string, std::uint64_t>> dirty;
        std::vector<std::pair<std::string, std::uint64_t>> retired;
        std::vector<std::size_t> to_store;
        std::uint64_t group_bytes = 0;
        bool full = false;
        for (std::size_t i = 0; i < group.size(); ++i) {
            const Incoming& m = group[i];
            const std::uint64_t epoch = m.sequence.epoch;
            const std::uint64_t seq = m.sequence.seq;
            if (m.gateway_id.empty() || seq == 0 || m.payload.size() > options.max_bytes ||
                static_cast<std::size_t>(m.kind) >= kKindNames.size()) {
                out[i] = Admission::Invalid;
                continue;
            }
            auto touched = work.find(m.gateway_id);
            if (touched == work.end()) {
                const auto committed = dedupe.find(m.gateway_id);
                touched = work.emplace(m.gateway_id,
                                       committed == dedupe.end() ? EpochMap{} : committed->second)
                              .first;
            }
            EpochMap& epochs = touched->second;
            const auto known = epochs.find(epoch);
            if (known == epochs.end() && epochs.size() >= options.max_epochs &&
                epoch < epochs.begin()->first) {
                out[i] = Admission::Stale;
                continue;
            }
            if (known != epochs.end() && known->second.contains(seq)) {
                out[i] = Admission::Duplicate;
                continue;
            }
            // Once one message does not fit, none after it in the group is stored either, so a
            // gateway's later seqs never overtake an earlier one that was refused.
            if (full || bytes + group_bytes + m.payload.size() > options.max_bytes) {
                full = true;
                out[i] = Admission::Full;
                continue;
            }
            EpochState fresh;
            EpochState& state = known != epochs.end() ? known->second : fresh;
            if (!state.admit(seq, options.max_ranges)) {
                out[i] = Admission::TooManyGaps;
                continue;
            }
            if (known == epochs.end()) {
                epochs.emplace(epoch, std::move(fresh));
                // A loop, not an if: a file written with a larger max_epochs may hold more.
                while (epochs.size() > options.max_epochs) {
                    const std::uint64_t oldest = epochs.begin()->first;
                    dirty.erase({m.gateway_id, oldest});
                    retired.emplace_back(m.gateway_id, oldest);
                    epochs.erase(epochs.begin());
                }
            }
            dirty.emplace(m.gateway_id, epoch);
            group_bytes += m.payload.size();
            to_store.push_back(i);
            out[i] = Admission::Stored;
        }

        if (!to_store.empty()) {
            const auto started = clock.monoNow();
            if (const int rc = commitGroup(group, to_store, work, dirty, retired);
                rc != SQLITE_OK) {
                commit_failures->inc();
                return writeError(db.get(), rc);
            }
            commit_seconds->observe(
                std::chrono::duration<double>(clock.monoNow() - started).count());
            group_commits->inc();
            next_offset += to_store.size();
            records += to_store.size();
            bytes += group_bytes;
            for (auto& [gateway, epochs] : work) dedupe[gateway] = std::move(epochs);
            updateGauges();
        }
        for (std::size_t i = 0; i < group.size(); ++i) {
            switch (out[i]) {
                case Admission::Stored:
                    appended[static_cast<std::size_t>(group[i].kind)]->inc();
                    appended_bytes->inc(group[i].payload.size());
                    break;
                case Admission::Duplicate:
                    duplicates->inc();
                    break;
                case Admission::Full:
                    full_rejections->inc();
                    break;
                case Admission::TooManyGaps:
                    refused[static_cast<std::size_t>(Refusal::TooManyGaps)]->inc();
                    break;
                case Admission::Stale:
                    refused[static_cast<std::size_t>(Refusal::Stale)]->inc();
                    break;
                case Admission::Invalid:
                    refused[static_cast<std::size_t>(Refusal::Invalid)]->inc();
                    break;
            }
        }
        return out;
    }

    Result<std::size_t> admitElsewhere(std::span<const shared::Receipt> receipts) {
        GatewayMap work;
        std::set<std::pair<std::string, std::uint64_t>> dirty;
        std::vector<std::pair<std::string, std::uint64_t>> retired;
        for (const auto& receipt : receipts) {
            if (receipt.gateway_id.empty() || receipt.epoch == 0 ||
                (receipt.cumulative_seq == 0 && receipt.ranges.empty())) {
                continue;
            }
            auto touched = work.find(receipt.gateway_id);
            if (touched == work.end()) {
                const auto committed = dedupe.find(receipt.gateway_id);
                touched = work.emplace(receipt.gateway_id,
                                       committed == dedupe.end() ? EpochMap{} : committed->second)
                              .first;
            }
            EpochMap& epochs = touched->second;
            auto known = epochs.find(receipt.epoch);
            if (known == epochs.end()) {
                if (epochs.size() >= options.max_epochs && receipt.epoch < epochs.begin()->first) {
                    continue;
                }
                known = epochs.emplace(receipt.epoch, EpochState{}).first;
                while (epochs.size() > options.max_epochs) {
                    const std::uint64_t oldest = epochs.begin()->first;
                    dirty.erase({receipt.gateway_id, oldest});
                    retired.emplace_back(receipt.gateway_id, oldest);
                    epochs.erase(epochs.begin());
                }
                if (!epochs.contains(receipt.epoch)) continue;
            }
            if (known->second.merge(receipt.cumulative_seq, receipt.ranges, options.max_ranges)) {
                dirty.emplace(receipt.gateway_id, receipt.epoch);
            }
        }
        if (dirty.empty() && retired.empty()) return std::size_t{0};
        if (const int rc = commitGroup({}, {}, work, dirty, retired); rc != SQLITE_OK) {
            commit_failures->inc();
            return writeError(db.get(), rc);
        }
        for (auto& [gateway, epochs] : work) dedupe[gateway] = std::move(epochs);
        return dirty.size();
    }

    const EpochState* find(const std::string& gateway, std::uint64_t epoch) const {
        const auto g = dedupe.find(gateway);
        if (g == dedupe.end()) return nullptr;
        const auto e = g->second.find(epoch);
        return e == g->second.end() ? nullptr : &e->second;
    }

    SpoolOptions options;
    const shared::Clock& clock;
    shared::MetricsRegistry& metrics;
    Db db;
    // Serialises every call: the statements, the transaction and the state below.
    mutable std::mutex mutex;

    // Committed state, mirrored from the database.
    GatewayMap dedupe;
    std::map<std::string, std::uint64_t, std::less<>> cursors;
    std::uint64_t next_offset = 1;
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;

    Statement begin, commit, rollback, set_next_offset, insert_record, upsert_dedupe, delete_dedupe,
        select_after, insert_cursor, update_cursor, delete_cursor, delete_through;

    std::array<shared::Counter*, kKindNames.size()> appended{};
    std::array<shared::Counter*, kRefusalNames.size()> refused{};
    shared::Counter* appended_bytes = nullptr;
    shared::Counter* duplicates = nullptr;
    shared::Counter* full_rejections = nullptr;
    shared::Counter* group_commits = nullptr;
    shared::Counter* commit_failures = nullptr;
    shared::Counter* truncated = nullptr;
    shared::Histogram* commit_seconds = nullptr;
    shared::Gauge* records_gauge = nullptr;
    shared::Gauge* bytes_gauge = nullptr;
    shared::Gauge* max_bytes_gauge = nullptr;
    shared::Gauge* high_water_gauge = nullptr;
    std::map<std::string, shared::Gauge*, std::less<>> lag_gauges;
};

Result<std::unique_ptr<Spool>> Spool::open(const std::string& path, SpoolOptions options,
                                           const shared::Clock& clock,
                                           shared::MetricsRegistry& metrics) {
    if (const std::string why = checkOptions(options); !why.empty()) {
        return Error::stop("invalid_spool_options", why);
    }
    auto impl = std::make_unique<Impl>(std::move(options), clock, metrics);
    if (auto opened = impl->openDatabase(path); !opened) return opened.error();
    if (const int rc = impl->prepareAll(); rc != SQLITE_OK) {
        return Error::stop("spool_open_failed", path + ": " + describe(impl->db.get(), rc));
    }
    if (auto loaded = impl->load(path); !loaded) return loaded.error();
    return std::unique_ptr<Spool>(new Spool(std::move(impl)));
}

Spool::Spool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Spool::~Spool() = default;

Result<std::vector<Admission>> Spool::append(std::span<const Incoming> group) {
    std::lock_guard lock(impl_->mutex);
    return impl_->append(group);
}

Result<std::size_t> Spool::admitElsewhere(std::span<const shared::Receipt> receipts) {
    std::lock_guard lock(impl_->mutex);
    return impl_->admitElsewhere(receipts);
}

shared::Receipt Spool::receiptFor(const std::string& gateway, std::uint64_t epoch) const {
    std::lock_guard lock(impl_->mutex);
    shared::Receipt receipt;
    receipt.gateway_id = gateway;
    receipt.epoch = epoch;
    receipt.issued_at_ms = shared::toUnixMillis(impl_->clock.wallNow());
    if (const EpochState* state = impl_->find(gateway, epoch)) {
        receipt.cumulative_seq = state->floor;
        receipt.ranges = state->ranges;
    }
    return receipt;
}

std::vector<SeqRange> Spool::gaps(const std::string& gateway, std::uint64_t epoch,
                                  std::size_t max) const {
    std::lock_guard lock(impl_->mutex);
    const EpochState* state = impl_->find(gateway, epoch);
    return state == nullptr ? std::vector<SeqRange>{} : state->gaps(max);
}

shared::VoidResult Spool::addCursor(const std::string& sink) {
    auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    if (impl.cursors.contains(sink)) return shared::success();
    // At the beginning: just before the oldest record still held.
    const std::uint64_t start = impl.truncatedThrough();
    {
        ScopedStatement use(impl.insert_cursor);
        sqlite3_bind_text(*use, 1, sink.data(), static_cast<int>(sink.size()), SQLITE_STATIC);
        sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(start));
        if (const int rc = sqlite3_step(*use); rc != SQLITE_DONE) {
            return writeError(impl.db.get(), rc);
        }
    }
    impl.cursors[sink] = start;
    impl.lag_gauges[sink] = &impl.lagGauge(sink);
    impl.updateGauges();
    return shared::success();
}

shared::VoidResult Spool::removeCursor(const std::string& sink) {
    auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    const auto cursor = impl.cursors.find(sink);
    if (cursor == impl.cursors.end()) return shared::success();
    {
        ScopedStatement use(impl.delete_cursor);
        sqlite3_bind_text(*use, 1, sink.data(), static_cast<int>(sink.size()), SQLITE_STATIC);
        if (const int rc = sqlite3_step(*use); rc != SQLITE_DONE) {
            return writeError(impl.db.get(), rc);
        }
    }
    impl.cursors.erase(cursor);
    // The registry cannot forget a series; a removed sink reports no lag.
    if (const auto gauge = impl.lag_gauges.find(sink); gauge != impl.lag_gauges.end()) {
        gauge->second->set(0.0);
        impl.lag_gauges.erase(gauge);
    }
    return shared::success();
}

std::vector<SpoolRecord> Spool::read(const std::string& sink, std::size_t max) const {
    auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    std::vector<SpoolRecord> out;
    const auto cursor = impl.cursors.find(sink);
    if (cursor == impl.cursors.end() || max == 0) return out;
    ScopedStatement use(impl.select_after);
    sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(cursor->second));
    sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(std::min<std::size_t>(max, 1u << 30)));
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(*use)) == SQLITE_ROW) out.push_back(readRecord(*use));
    if (rc != SQLITE_DONE) out.clear();
    return out;
}

shared::VoidResult Spool::advance(const std::string& sink, std::uint64_t offset) {
    auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    const auto cursor = impl.cursors.find(sink);
    if (cursor == impl.cursors.end()) return Error::drop("unknown_cursor", sink);
    if (offset <= cursor->second) return shared::success();
    if (offset > impl.lastOffset()) {
        return Error::drop("offset_out_of_range", sink + ": " + std::to_string(offset) +
                                                      " is past the newest offset " +
                                                      std::to_string(impl.lastOffset()));
    }
    {
        ScopedStatement use(impl.update_cursor);
        sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(offset));
        sqlite3_bind_text(*use, 2, sink.data(), static_cast<int>(sink.size()), SQLITE_STATIC);
        if (const int rc = sqlite3_step(*use); rc != SQLITE_DONE) {
            return writeError(impl.db.get(), rc);
        }
    }
    cursor->second = offset;
    impl.updateGauges();
    return shared::success();
}

Result<std::uint64_t> Spool::truncate() {
    auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    if (impl.cursors.empty()) return std::uint64_t{0};
    std::uint64_t slowest = impl.cursors.begin()->second;
    for (const auto& [sink, offset] : impl.cursors) slowest = std::min(slowest, offset);
    if (slowest <= impl.truncatedThrough()) return std::uint64_t{0};
    int rc = impl.run(impl.begin);
    if (rc != SQLITE_OK) return writeError(impl.db.get(), rc);
    std::uint64_t deleted = 0;
    std::uint64_t freed = 0;
    {
        ScopedStatement use(impl.delete_through);
        sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(slowest));
        while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
            deleted += 1;
            freed += static_cast<std::uint64_t>(sqlite3_column_int64(*use, 0));
        }
    }
    if (rc == SQLITE_DONE) rc = impl.run(impl.commit);
    if (rc != SQLITE_OK) {
        impl.rollbackIfOpen();
        return writeError(impl.db.get(), rc);
    }
    impl.records -= std::min(impl.records, deleted);
    impl.bytes -= std::min(impl.bytes, freed);
    impl.truncated->inc(deleted);
    impl.updateGauges();
    return deleted;
}

SpoolStats Spool::stats() const {
    const auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    SpoolStats out;
    out.records = impl.records;
    out.bytes = impl.bytes;
    out.max_bytes = impl.options.max_bytes;
    out.above_high_water = impl.aboveHighWater();
    out.last_offset = impl.lastOffset();
    for (const auto& [sink, offset] : impl.cursors) {
        out.cursors.push_back({sink, offset, impl.lastOffset() - offset});
    }
    return out;
}

}  // namespace tern::ingest
