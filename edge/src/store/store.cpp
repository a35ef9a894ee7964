#include "tern/edge/store/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "tern/shared/sqlite.h"

namespace tern::edge {

using namespace std::chrono_literals;
using shared::Error;
using shared::Result;

shared::ConfigTable<StoreConfig> storeTable() {
    return shared::ConfigTable<StoreConfig>(
               "store", "Store-and-forward database of batches and alerts awaiting a receipt")
        .string("path", &StoreConfig::path, "/var/lib/tern/edge.db", "SQLite database file")
        .byteSize("max_bytes", &StoreConfig::max_bytes, 256 * shared::kMiB,
                  {shared::kMiB, 64 * shared::kGiB},
                  "Sum of stored payload bytes; beyond it the oldest telemetry is evicted")
        .duration("max_age", &StoreConfig::max_age, std::chrono::hours{24 * 7}, {1min, 8760h},
                  "Messages older than this (by the wall time they were stored) are evicted")
        .byteSize("max_disk_bytes", &StoreConfig::max_disk_bytes, 0, {0, 64 * shared::kGiB},
                  "Hard cap on the database file, SQLite's own overhead included; 0: the file "
                  "system's free space. Reaching either evicts as disk_full");
}

namespace {

using Db = shared::SqliteDb;
using Statement = shared::SqliteStatement;
using shared::ScopedStatement;

enum class Reason : std::size_t {
    StoreFull = 0,
    MaxAge = 1,
    DiskFull = 2,
    Oversize = 3,
    StoreFailed = 4
};
constexpr std::array<std::string_view, 5> kReasonNames = {"store_full", "max_age", "disk_full",
                                                          "oversize", "store_failed"};
// Reasons that evict stored messages (store_failed counts messages that never got in).
constexpr std::size_t kEvictionReasons = 4;
constexpr std::array<std::string_view, 2> kLaneNames = {"alert", "telemetry"};

bool isCorruption(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

// The disk (or max_page_count) is full, or the write failed underneath SQLite; both are answered
// by making room.
bool isOutOfSpace(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR;
}

std::string describe(sqlite3* db, int rc) {
    std::string text = sqlite3_errstr(rc);
    if (db != nullptr) text += std::string(" (") + sqlite3_errmsg(db) + ")";
    return text;
}

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages(
    seq INTEGER PRIMARY KEY,
    lane INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    -- Set while the timestamps inside payload came from an unsynchronised clock: the boot they
    -- were taken in and that boot's wall - monotonic offset then (see Store::restamp).
    unsynced_boot INTEGER,
    wall_offset_ms INTEGER);
CREATE INDEX IF NOT EXISTS messages_by_lane ON messages(lane, seq);
CREATE INDEX IF NOT EXISTS messages_by_created ON messages(created_ms);
)sql";

constexpr std::string_view kColumns = "lane, seq, epoch, readings, created_ms, payload";

StoredMessage readRow(sqlite3_stmt* stmt) {
    StoredMessage message;
    message.lane = sqlite3_column_int(stmt, 0) == 0 ? Lane::Alert : Lane::Telemetry;
    message.sequence.seq = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1));
    message.sequence.epoch = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 2));
    message.readings = static_cast<std::uint32_t>(sqlite3_column_int64(stmt, 3));
    message.created_ms = sqlite3_column_int64(stmt, 4);
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, 5));
    const int size = sqlite3_column_bytes(stmt, 5);
    if (data != nullptr && size > 0) message.payload.assign(data, data + size);
    return message;
}

// The outcome of opening a file: a usable connection, or whether the failure means corruption.
struct Opened {
    Db db;
    std::uint64_t epoch = 0;
    std::uint64_t last_seq = 0;
    int rc = SQLITE_OK;
    bool corrupt = false;
    std::optional<std::uint64_t> readable_epoch;  // what a corrupt file still told us
    std::string detail;
};

int exec(sqlite3* db, std::string_view sql) {
    return sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, nullptr);
}

std::optional<std::uint64_t> readMeta(sqlite3* db, const char* key, int* rc_out = nullptr) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &raw, nullptr);
    Statement stmt(raw);
    std::optional<std::uint64_t> value;
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(raw, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(raw);
        if (rc == SQLITE_ROW) {
            value = static_cast<std::uint64_t>(sqlite3_column_int64(raw, 0));
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (rc_out != nullptr) *rc_out = rc;
    return value;
}

// Opens (create: or creates) the file, checks it and brings the schema up; epoch is written only
// if the file has none yet.
Opened openDatabase(const std::string& path, bool create, std::uint64_t new_epoch,
                    std::uint64_t max_disk_bytes) {
    Opened out;
    sqlite3* raw = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    out.db.reset(raw);
    auto fail = [&](int code, std::string what) {
        out.rc = code;
        out.corrupt = out.corrupt || isCorruption(code);
        out.detail = what + ": " + describe(out.db.get(), code);
        if (out.corrupt && out.db) {
            int meta_rc = SQLITE_OK;
            auto epoch = readMeta(out.db.get(), "epoch", &meta_rc);
            if (meta_rc == SQLITE_OK) out.readable_epoch = epoch;
        }
        out.db.reset();
        return std::move(out);
    };
    if (rc != SQLITE_OK) return fail(rc, "open");
    sqlite3_extended_result_codes(raw, 1);

    if ((rc = exec(raw, "PRAGMA journal_mode=WAL")) != SQLITE_OK) return fail(rc, "journal_mode");
    if ((rc = exec(raw, "PRAGMA synchronous=FULL")) != SQLITE_OK) return fail(rc, "synchronous");
    if ((rc = exec(raw, "PRAGMA cache_size=-" + std::to_string(kStoreCacheKib))) != SQLITE_OK) {
        return fail(rc, "cache_size");
    }
    {
        sqlite3_stmt* check_raw = nullptr;
        rc = sqlite3_prepare_v2(raw, "PRAGMA quick_check", -1, &check_raw, nullptr);
        Statement check(check_raw);
        if (rc != SQLITE_OK) return fail(rc, "quick_check");
        rc = sqlite3_step(check_raw);
        if (rc != SQLITE_ROW) return fail(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "quick_check");
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(check_raw, 0));
        if (text == nullptr || std::string_view(text) != "ok") {
            out.corrupt = true;
            std::string first = text == nullptr ? "" : text;
            check.reset();
            return fail(SQLITE_CORRUPT, "quick_check: " + first);
        }
    }
    if (max_disk_bytes > 0) {
        sqlite3_stmt* size_raw = nullptr;
        sqlite3_prepare_v2(raw, "PRAGMA page_size", -1, &size_raw, nullptr);
        Statement size_stmt(size_raw);
        std::uint64_t page_size = 4096;
        if (size_raw != nullptr && sqlite3_step(size_raw) == SQLITE_ROW) {
            page_size = static_cast<std::uint64_t>(sqlite3_column_int64(size_raw, 0));
        }
        const std::uint64_t pages = std::max<std::uint64_t>(1, max_disk_bytes / page_size);
        rc = exec(raw, "PRAGMA max_page_count=" + std::to_string(pages));
        if (rc != SQLITE_OK) return fail(rc, "max_page_count");
    }
    rc = exec(raw, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) return fail(rc, "begin");
    rc = exec(raw, kSchema);
    if (rc == SQLITE_OK) {
        rc = exec(raw, "INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', " +
                           std::to_string(new_epoch) + "), ('last_seq', 0), ('session', 0)");
    }
    if (rc == SQLITE_OK) rc = exec(raw, "COMMIT");
    if (rc != SQLITE_OK) {
        exec(raw, "ROLLBACK");
        return fail(rc, "schema");
    }
    auto epoch = readMeta(raw, "epoch", &rc);
    if (rc != SQLITE_OK || !epoch) return fail(rc == SQLITE_OK ? SQLITE_CORRUPT : rc, "epoch");
    auto last_seq = readMeta(raw, "last_seq", &rc);
    if (rc != SQLITE_OK) return fail(rc, "last_seq");
    out.epoch = *epoch;
    out.last_seq = last_seq.value_or(0);
    // A meta row that somehow lags the rows must not make a seq repeat.
    sqlite3_stmt* max_raw = nullptr;
    rc = sqlite3_prepare_v2(raw, "SELECT coalesce(max(seq), 0) FROM messages", -1, &max_raw,
                            nullptr);
    Statement max_stmt(max_raw);
    if (rc != SQLITE_OK) return fail(rc, "max seq");
    rc = sqlite3_step(max_raw);
    if (rc != SQLITE_ROW) return fail(rc, "max seq");
    out.last_seq =
        std::max(out.last_seq, static_cast<std::uint64_t>(sqlite3_column_int64(max_raw, 0)));
    return out;
}

}  // namespace

struct Store::Impl {
    struct Eviction {
        Lane lane;
        std::uint32_t readings;
        std::uint64_t bytes;
        Reason reason;
    };

    Impl(StoreOptions opts, const shared::Clock& c, shared::MetricsRegistry& metrics)
        : options(std::move(opts)), clock(c) {
        for (std::size_t lane = 0; lane < kLaneNames.size(); ++lane) {
            stored[lane] =
                &metrics.counter("tern_edge_store_stored_total", "Messages committed to the store",
                                 {{"lane", std::string(kLaneNames[lane])}});
            for (std::size_t reason = 0; reason < kEvictionReasons; ++reason) {
                evicted[lane][reason] = &metrics.counter(
                    "tern_edge_store_evicted_total", "Stored messages evicted before a receipt",
                    {{"lane", std::string(kLaneNames[lane])},
                     {"reason", std::string(kReasonNames[reason])}});
            }
        }
        for (std::size_t reason = 0; reason < kEvictionReasons; ++reason) {
            evicted_readings[reason] = &metrics.counter(
                "tern_edge_store_evicted_readings_total", "Readings in evicted telemetry batches",
                {{"reason", std::string(kReasonNames[reason])}});
        }
        write_errors = &metrics.counter("tern_edge_store_write_errors_total",
                                        "Messages the store failed to commit");
        backlog_messages = &metrics.gauge("tern_edge_store_backlog_messages",
                                          "Messages stored and not yet acknowledged");
        backlog_bytes = &metrics.gauge("tern_edge_store_backlog_bytes",
                                       "Payload bytes stored and not yet acknowledged");
    }

    int prepare(Statement& stmt, std::string_view sql) {
        sqlite3_stmt* raw = nullptr;
        const int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
        stmt.reset(raw);
        return rc;
    }

    int prepareAll() {
        const std::string columns(kColumns);
        const std::pair<Statement*, std::string> all[] = {
            {&begin, "BEGIN IMMEDIATE"},
            {&commit, "COMMIT"},
            {&rollback, "ROLLBACK"},
            {&set_last_seq, "UPDATE meta SET value = ? WHERE key = 'last_seq'"},
            {&insert,
             "INSERT INTO messages(seq, lane, epoch, readings, bytes, created_ms, payload, "
             "unsynced_boot, wall_offset_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"},
            {&next_session,
             "UPDATE meta SET value = value + 1 WHERE key = 'session' RETURNING value"},
            {&discard_one, "DELETE FROM messages WHERE seq = ? RETURNING lane, readings, bytes"},
            {&select_unsynced,
             "SELECT seq, lane, wall_offset_ms, payload FROM messages WHERE unsynced_boot = ? "
             "ORDER BY seq"},
            {&update_restamped,
             "UPDATE messages SET payload = ?, bytes = ?, created_ms = created_ms + ?, "
             "unsynced_boot = NULL, wall_offset_ms = NULL WHERE seq = ?"},
            {&release_other_boots,
             "UPDATE messages SET created_ms = max(created_ms, ?), unsynced_boot = NULL, "
             "wall_offset_ms = NULL WHERE unsynced_boot IS NOT NULL AND unsynced_boot != ?"},
            {&evict_oldest,
             "DELETE FROM messages WHERE seq = (SELECT seq FROM messages WHERE lane = ? "
             "ORDER BY seq LIMIT 1) RETURNING readings, bytes"},
            {&evict_expired,
             "DELETE FROM messages WHERE created_ms < ? RETURNING lane, readings, bytes"},
            {&ack_cumulative, "DELETE FROM messages WHERE epoch = ? AND seq <= ? RETURNING bytes"},
            {&ack_range,
             "DELETE FROM messages WHERE epoch = ? AND seq BETWEEN ? AND ? RETURNING bytes"},
            {&select_lane,
             "SELECT " + columns +
                 " FROM messages WHERE lane = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"},
            {&select_one, "SELECT " + columns + " FROM messages WHERE seq = ?"},
            {&totals,
             "SELECT count(*), coalesce(sum(bytes), 0), coalesce(min(created_ms), 0) FROM "
             "messages"},
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
        pending_evictions.clear();
    }

    // Deletes the oldest message of the lane that eviction takes from: telemetry while there is
    // any, then alerts. Within the open transaction; counted only when it commits.
    // Returns the bytes freed, 0 when the store is empty, or nullopt with rc set on error.
    std::optional<std::uint64_t> evictOldest(Reason reason, int& rc) {
        for (Lane lane : {Lane::Telemetry, Lane::Alert}) {
            ScopedStatement use(evict_oldest);
            sqlite3_bind_int(*use, 1, static_cast<int>(lane));
            rc = sqlite3_step(*use);
            if (rc == SQLITE_ROW) {
                const auto readings = static_cast<std::uint32_t>(sqlite3_column_int64(*use, 0));
                const auto size = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 1));
                rc = sqlite3_step(*use);
                if (rc != SQLITE_DONE) return std::nullopt;
                rc = SQLITE_OK;
                pending_evictions.push_back({lane, readings, size, reason});
                return size;
            }
            if (rc != SQLITE_DONE) return std::nullopt;
            rc = SQLITE_OK;
        }
        return 0;
    }

    std::uint64_t pendingEvictedBytes() const {
        std::uint64_t total = 0;
        for (const auto& e : pending_evictions) total += e.bytes;
        return total;
    }

    // After a commit: the evictions it made become real.
    void applyEvictions() {
        for (const auto& e : pending_evictions) {
            const auto lane = static_cast<std::size_t>(e.lane);
            const auto reason = static_cast<std::size_t>(e.reason);
            evicted[lane][reason]->inc();
            evicted_readings[reason]->inc(e.readings);
            drops[reason].batches += 1;
            drops[reason].readings += e.readings;
            bytes -= std::min(bytes, e.bytes);
            messages -= std::min<std::uint64_t>(messages, 1);
        }
        pending_evictions.clear();
        updateGauges();
    }

    void updateGauges() {
        backlog_messages->set(static_cast<double>(messages));
        backlog_bytes->set(static_cast<double>(bytes));
    }

    int commitTx() {
        const int rc = run(commit);
        if (rc != SQLITE_OK) {
            rollbackIfOpen();
            return rc;
        }
        applyEvictions();
        return SQLITE_OK;
    }

    shared::VoidResult evictExpired() {
        const std::int64_t cutoff = shared::toUnixMillis(clock.wallNow()) - options.max_age.count();
        int rc = run(begin);
        if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(db.get(), rc));
        {
            ScopedStatement use(evict_expired);
            sqlite3_bind_int64(*use, 1, cutoff);
            while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
                pending_evictions.push_back(
                    {sqlite3_column_int(*use, 0) == 0 ? Lane::Alert : Lane::Telemetry,
                     static_cast<std::uint32_t>(sqlite3_column_int64(*use, 1)),
                     static_cast<std::uint64_t>(sqlite3_column_int64(*use, 2)), Reason::MaxAge});
            }
        }
        if (rc != SQLITE_DONE) {
            rollbackIfOpen();
            return Error::retry("sqlite_error", describe(db.get(), rc));
        }
        if (pending_evictions.empty()) {
            run(commit);
            return shared::success();
        }
        rc = commitTx();
        if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(db.get(), rc));
        return shared::success();
    }

    // One transaction: evict for max_bytes, advance last_seq, insert.
    int insertTx(Lane lane, const shared::Sequence& sequence, std::uint32_t readings,
                 bool clock_synced, const shared::Bytes& payload) {
        int rc = run(begin);
        if (rc != SQLITE_OK) return rc;
        const std::uint64_t size = payload.size();
        while (bytes - std::min(bytes, pendingEvictedBytes()) + size > options.max_bytes) {
            const auto freed = evictOldest(Reason::StoreFull, rc);
            if (!freed) {
                rollbackIfOpen();
                return rc;
            }
            if (*freed == 0) break;  // nothing older left: the message alone fits max_bytes
        }
        {
            ScopedStatement use(set_last_seq);
            sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(sequence.seq));
            rc = sqlite3_step(*use);
        }
        if (rc == SQLITE_DONE) {
            ScopedStatement use(insert);
            sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(sequence.seq));
            sqlite3_bind_int(*use, 2, static_cast<int>(lane));
            sqlite3_bind_int64(*use, 3, static_cast<sqlite3_int64>(sequence.epoch));
            sqlite3_bind_int64(*use, 4, readings);
            sqlite3_bind_int64(*use, 5, static_cast<sqlite3_int64>(size));
            sqlite3_bind_int64(*use, 6, shared::toUnixMillis(clock.wallNow()));
            sqlite3_bind_blob(*use, 7, payload.data(), static_cast<int>(size), SQLITE_STATIC);
            if (!clock_synced && options.boot_id != 0) {
                sqlite3_bind_int64(*use, 8, static_cast<sqlite3_int64>(options.boot_id));
                sqlite3_bind_int64(*use, 9, wallOffsetMs());
            }
            rc = sqlite3_step(*use);
        }
        if (rc != SQLITE_DONE) {
            rollbackIfOpen();
            return rc;
        }
        return commitTx();
    }

    // After SQLITE_FULL / IOERR: commit the eviction of at least `need` payload bytes (oldest
    // telemetry first) on its own, so the freed pages are there for the retry. Returns false when
    // there was nothing left to evict.
    bool evictForDisk(std::uint64_t need) {
        int rc = run(begin);
        if (rc != SQLITE_OK) return false;
        std::uint64_t freed = 0;
        while (freed < need) {
            const auto got = evictOldest(Reason::DiskFull, rc);
            if (!got) {
                rollbackIfOpen();
                return false;
            }
            if (*got == 0) break;
            freed += *got;
        }
        if (pending_evictions.empty()) {
            run(commit);
            return false;
        }
        return commitTx() == SQLITE_OK;
    }

    std::int64_t wallOffsetMs() const {
        const auto mono = std::chrono::duration_cast<std::chrono::milliseconds>(
            clock.monoNow().time_since_epoch());
        return shared::toUnixMillis(clock.wallNow()) - mono.count();
    }

    Result<shared::Sequence> store(
        Lane lane, std::uint32_t readings, bool clock_synced,
        const std::function<Result<shared::Bytes>(const std::string&, const shared::Sequence&)>&
            encode) {
        if (auto expired = evictExpired(); !expired) return expired.error();
        const shared::Sequence sequence{epoch, last_seq + 1};
        auto payload = encode(options.gateway_id, sequence);
        if (!payload) return payload.error();
        if (payload.value().size() > options.max_bytes) {
            return Error::drop("too_large", std::to_string(payload.value().size()) +
                                                " payload bytes exceed store max_bytes");
        }
        int rc = SQLITE_OK;
        // Room is made at most once per stored message; each round frees at least the payload's
        // size, so the loop ends when the message fits or nothing older is left to evict.
        while (true) {
            rc = insertTx(lane, sequence, readings, clock_synced, payload.value());
            if (rc == SQLITE_OK) {
                last_seq = sequence.seq;
                messages += 1;
                bytes += payload.value().size();
                stored[static_cast<std::size_t>(lane)]->inc();
                updateGauges();
                return sequence;
            }
            if (!isOutOfSpace(rc) || !evictForDisk(2 * payload.value().size())) break;
        }
        write_errors->inc();
        if (isOutOfSpace(rc)) {
            return Error::retry("disk_full",
                                "no room even after evicting: " + describe(db.get(), rc));
        }
        return Error::retry("sqlite_error", describe(db.get(), rc));
    }

    std::vector<StoredMessage> scan(Lane lane, std::uint64_t after, std::uint64_t through,
                                    std::size_t limit) const {
        std::vector<StoredMessage> out;
        if (limit == 0 || through <= after) return out;
        ScopedStatement use(select_lane);
        sqlite3_bind_int(*use, 1, static_cast<int>(lane));
        sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(after));
        sqlite3_bind_int64(*use, 3,
                           static_cast<sqlite3_int64>(std::min<std::uint64_t>(
                               through, std::numeric_limits<sqlite3_int64>::max())));
        sqlite3_bind_int64(*use, 4, static_cast<sqlite3_int64>(limit));
        while (sqlite3_step(*use) == SQLITE_ROW) out.push_back(readRow(*use));
        return out;
    }

    void recordFailure(std::uint32_t readings) {
        auto& drop = drops[static_cast<std::size_t>(Reason::StoreFailed)];
        drop.batches += 1;
        drop.readings += readings;
    }

    StoreOptions options;
    const shared::Clock& clock;
    Db db;
    std::uint64_t epoch = 0;
    std::uint64_t last_seq = 0;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    bool recovered = false;
    std::vector<Eviction> pending_evictions;
    std::array<shared::DropCounter, kReasonNames.size()> drops{};

    Statement begin, commit, rollback, set_last_seq, insert, evict_oldest, evict_expired,
        ack_cumulative, ack_range, select_lane, select_one, totals, next_session, discard_one,
        select_unsynced, update_restamped, release_other_boots;

    std::array<shared::Counter*, 2> stored{};
    std::array<std::array<shared::Counter*, kEvictionReasons>, 2> evicted{};
    std::array<shared::Counter*, kEvictionReasons> evicted_readings{};
    shared::Counter* write_errors = nullptr;
    shared::Gauge* backlog_messages = nullptr;
    shared::Gauge* backlog_bytes = nullptr;
};

Result<std::unique_ptr<Store>> Store::open(const std::string& path, StoreOptions options,
                                           const shared::Clock& clock,
                                           shared::MetricsRegistry& metrics) {
    namespace fs = std::filesystem;
    const std::uint64_t max_disk = options.max_disk_bytes;
    auto impl = std::make_unique<Impl>(std::move(options), clock, metrics);

    std::error_code ec;
    const bool exists = fs::exists(path, ec);
    // A new file's epoch is the wall clock's Unix seconds: a gateway whose store was wiped (a new
    // SD card, a deleted file, a simulator's memory store) must not reuse (epoch, seq) pairs the
    // cloud already holds, which it would drop as duplicates. An existing file keeps its epoch.
    const std::int64_t open_ms = shared::toUnixMillis(clock.wallNow());
    const std::uint64_t clock_epoch = open_ms > 0 ? static_cast<std::uint64_t>(open_ms / 1000) : 0;
    Opened opened = openDatabase(path, true, std::max<std::uint64_t>(clock_epoch, 1), max_disk);
    if (!opened.db && exists && opened.corrupt) {
        const std::int64_t now_ms = shared::toUnixMillis(clock.wallNow());
        const std::string aside = path + ".corrupt-" + std::to_string(now_ms);
        for (const char* suffix : {"", "-wal", "-shm"}) {
            const std::string from = path + suffix;
            if (!fs::exists(from, ec)) continue;
            fs::rename(from, aside + suffix, ec);
            if (ec) {
                return Error::stop("store_recovery_failed",
                                   "cannot move corrupt " + from + " aside: " + ec.message());
            }
        }
        // Larger than any epoch the old file used, so the cloud never mistakes new sequences for
        // old ones; the wall clock covers the case where the old epoch was unreadable.
        const std::uint64_t from_clock = now_ms > 0 ? static_cast<std::uint64_t>(now_ms / 1000) : 0;
        const std::uint64_t new_epoch =
            std::max<std::uint64_t>({opened.readable_epoch.value_or(0) + 1, from_clock, 1});
        opened = openDatabase(path, true, new_epoch, max_disk);
        if (!opened.db) {
            return Error::stop("store_open_failed",
                               path + " (after moving a corrupt file aside): " + opened.detail);
        }
        impl->recovered = true;
    } else if (!opened.db) {
        return Error::stop("store_open_failed", path + ": " + opened.detail);
    }

    impl->db = std::move(opened.db);
    impl->epoch = opened.epoch;
    impl->last_seq = opened.last_seq;
    if (const int rc = impl->prepareAll(); rc != SQLITE_OK) {
        return Error::stop("store_open_failed", path + ": " + describe(impl->db.get(), rc));
    }
    {
        ScopedStatement use(impl->totals);
        if (sqlite3_step(*use) == SQLITE_ROW) {
            impl->messages = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 0));
            impl->bytes = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 1));
        }
    }
    impl->updateGauges();
    for (std::size_t i = 0; i < kReasonNames.size(); ++i) {
        impl->drops[i].reason = std::string(kReasonNames[i]);
    }
    return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() = default;

Result<shared::Sequence> Store::storeBatch(const shared::TelemetryBatch& batch) {
    const auto readings = static_cast<std::uint32_t>(batch.readings.size());
    return impl_->store(Lane::Telemetry, readings, batch.clock_synced,
                        [&](const std::string& gateway, const shared::Sequence& sequence) {
                            shared::TelemetryBatch stamped = batch;
                            stamped.gateway_id = gateway;
                            stamped.sequence = sequence;
                            return shared::encodeBatch(stamped, impl_->options.encode);
                        });
}

Result<shared::Sequence> Store::storeAlert(const shared::Alert& alert) {
    return impl_->store(Lane::Alert, 0, alert.clock_synced,
                        [&](const std::string& gateway, const shared::Sequence& sequence) {
                            shared::Alert stamped = alert;
                            stamped.gateway_id = gateway;
                            stamped.sequence = sequence;
                            return shared::encodeAlert(stamped, impl_->options.encode);
                        });
}

void Store::onBatch(const shared::TelemetryBatch& batch) {
    if (!storeBatch(batch)) impl_->recordFailure(static_cast<std::uint32_t>(batch.readings.size()));
}

void Store::onAlert(const shared::Alert& alert) {
    if (!storeAlert(alert)) impl_->recordFailure(0);
}

void Store::countFailed(std::uint32_t readings) { impl_->recordFailure(readings); }

shared::VoidResult Store::enforceLimits() { return impl_->evictExpired(); }

std::vector<StoredMessage> Store::scan(Lane lane, std::uint64_t after_seq,
                                       std::uint64_t through_seq, std::size_t max) const {
    return impl_->scan(lane, after_seq, through_seq, max);
}

std::vector<StoredMessage> Store::pending(std::size_t limit) const {
    auto out = impl_->scan(Lane::Alert, 0, std::numeric_limits<std::uint64_t>::max(), limit);
    auto telemetry = impl_->scan(Lane::Telemetry, 0, std::numeric_limits<std::uint64_t>::max(),
                                 limit - out.size());
    out.insert(out.end(), std::make_move_iterator(telemetry.begin()),
               std::make_move_iterator(telemetry.end()));
    return out;
}

Result<bool> Store::discardOversize(std::uint64_t seq) {
    auto& impl = *impl_;
    int rc = impl.run(impl.begin);
    if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    bool found = false;
    {
        ScopedStatement use(impl.discard_one);
        sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(seq));
        rc = sqlite3_step(*use);
        if (rc == SQLITE_ROW) {
            found = true;
            impl.pending_evictions.push_back(
                {sqlite3_column_int(*use, 0) == 0 ? Lane::Alert : Lane::Telemetry,
                 static_cast<std::uint32_t>(sqlite3_column_int64(*use, 1)),
                 static_cast<std::uint64_t>(sqlite3_column_int64(*use, 2)), Reason::Oversize});
            rc = sqlite3_step(*use);
        }
    }
    if (rc != SQLITE_DONE) {
        impl.rollbackIfOpen();
        return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    }
    rc = impl.commitTx();
    if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    return found;
}

Result<std::uint64_t> Store::nextSession() {
    auto& impl = *impl_;
    ScopedStatement use(impl.next_session);
    const int rc = sqlite3_step(*use);
    if (rc != SQLITE_ROW) return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    const auto session = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 0));
    if (sqlite3_step(*use) != SQLITE_DONE) {
        return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    }
    return session;
}

namespace {

// Moves every timestamp of a message by delta_ms and marks its clock as synchronised.
Result<shared::Bytes> restampPayload(Lane lane, std::span<const std::uint8_t> payload,
                                     std::int64_t delta_ms, const shared::EncodeOptions& encode) {
    if (lane == Lane::Alert) {
        auto alert = shared::decodeAlert(payload);
        if (!alert) return alert.error();
        alert.value().time_ms += delta_ms;
        alert.value().clock_synced = true;
        return shared::encodeAlert(alert.value(), encode);
    }
    auto batch = shared::decodeBatch(payload);
    if (!batch) return batch.error();
    auto& b = batch.value();
    for (auto& reading : b.readings) reading.time_ms += delta_ms;
    for (auto& aggregate : b.aggregates) aggregate.start_ms += delta_ms;
    b.sent_at_ms += delta_ms;
    b.clock_synced = true;
    return shared::encodeBatch(b, encode);
}

}  // namespace

Result<RestampResult> Store::restamp() {
    auto& impl = *impl_;
    RestampResult result;
    if (impl.options.boot_id == 0) return result;
    const std::int64_t offset_now = impl.wallOffsetMs();
    int rc = impl.run(impl.begin);
    if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    struct Row {
        std::uint64_t seq;
        Lane lane;
        std::int64_t offset;
        shared::Bytes payload;
    };
    std::vector<Row> rows;
    {
        ScopedStatement use(impl.select_unsynced);
        sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(impl.options.boot_id));
        while ((rc = sqlite3_step(*use)) == SQLITE_ROW) {
            const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(*use, 3));
            const int size = sqlite3_column_bytes(*use, 3);
            Row row{static_cast<std::uint64_t>(sqlite3_column_int64(*use, 0)),
                    sqlite3_column_int(*use, 1) == 0 ? Lane::Alert : Lane::Telemetry,
                    sqlite3_column_int64(*use, 2),
                    {}};
            if (data != nullptr && size > 0) row.payload.assign(data, data + size);
            rows.push_back(std::move(row));
        }
    }
    if (rc != SQLITE_DONE) {
        impl.rollbackIfOpen();
        return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    }
    std::int64_t byte_change = 0;
    for (const auto& row : rows) {
        const std::int64_t delta = offset_now - row.offset;
        auto payload = restampPayload(row.lane, row.payload, delta, impl.options.encode);
        if (!payload) {
            // Left flagged as unsynchronised: the ingest still gets the readings, marked.
            result.failed += 1;
            continue;
        }
        ScopedStatement use(impl.update_restamped);
        const auto& bytes = payload.value();
        sqlite3_bind_blob(*use, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
        sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(bytes.size()));
        sqlite3_bind_int64(*use, 3, delta);
        sqlite3_bind_int64(*use, 4, static_cast<sqlite3_int64>(row.seq));
        rc = sqlite3_step(*use);
        if (rc != SQLITE_DONE) {
            impl.rollbackIfOpen();
            return Error::retry("sqlite_error", describe(impl.db.get(), rc));
        }
        byte_change +=
            static_cast<std::int64_t>(bytes.size()) - static_cast<std::int64_t>(row.payload.size());
        result.restamped += 1;
    }
    {
        // Another boot's offset is unknowable: those keep clock_synced false, and their age
        // restarts now rather than from a 1970 timestamp that max_age would evict at once.
        ScopedStatement use(impl.release_other_boots);
        sqlite3_bind_int64(*use, 1, shared::toUnixMillis(impl.clock.wallNow()));
        sqlite3_bind_int64(*use, 2, static_cast<sqlite3_int64>(impl.options.boot_id));
        rc = sqlite3_step(*use);
        result.unrecoverable = static_cast<std::uint64_t>(sqlite3_changes(impl.db.get()));
    }
    if (rc != SQLITE_DONE) {
        impl.rollbackIfOpen();
        return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    }
    rc = impl.commitTx();
    if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    impl.bytes = static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, static_cast<std::int64_t>(impl.bytes) + byte_change));
    impl.updateGauges();
    return result;
}

std::uint64_t Store::unsyncedMessages() const {
    auto& impl = *impl_;
    sqlite3_stmt* raw = nullptr;
    sqlite3_prepare_v2(impl.db.get(),
                       "SELECT count(*) FROM messages WHERE unsynced_boot IS NOT NULL", -1, &raw,
                       nullptr);
    Statement stmt(raw);
    if (raw == nullptr || sqlite3_step(raw) != SQLITE_ROW) return 0;
    return static_cast<std::uint64_t>(sqlite3_column_int64(raw, 0));
}

Result<std::uint64_t> Store::acknowledge(const shared::Receipt& receipt) {
    auto& impl = *impl_;
    if (receipt.epoch != impl.epoch) return std::uint64_t{0};
    if (!receipt.gateway_id.empty() && receipt.gateway_id != impl.options.gateway_id) {
        return std::uint64_t{0};
    }
    int rc = impl.run(impl.begin);
    if (rc != SQLITE_OK) return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    std::uint64_t deleted = 0;
    std::uint64_t freed = 0;
    auto drain = [&](const Statement& stmt) {
        ScopedStatement use(stmt);
        int step_rc = SQLITE_OK;
        while ((step_rc = sqlite3_step(*use)) == SQLITE_ROW) {
            deleted += 1;
            freed += static_cast<std::uint64_t>(sqlite3_column_int64(*use, 0));
        }
        return step_rc == SQLITE_DONE ? SQLITE_OK : step_rc;
    };
    {
        sqlite3_bind_int64(impl.ack_cumulative.get(), 1, static_cast<sqlite3_int64>(impl.epoch));
        sqlite3_bind_int64(impl.ack_cumulative.get(), 2,
                           static_cast<sqlite3_int64>(receipt.cumulative_seq));
        rc = drain(impl.ack_cumulative);
    }
    for (const auto& range : receipt.ranges) {
        if (rc != SQLITE_OK) break;
        if (range.last < range.first) continue;
        sqlite3_bind_int64(impl.ack_range.get(), 1, static_cast<sqlite3_int64>(impl.epoch));
        sqlite3_bind_int64(impl.ack_range.get(), 2, static_cast<sqlite3_int64>(range.first));
        sqlite3_bind_int64(impl.ack_range.get(), 3, static_cast<sqlite3_int64>(range.last));
        rc = drain(impl.ack_range);
    }
    if (rc == SQLITE_OK) rc = impl.run(impl.commit);
    if (rc != SQLITE_OK) {
        impl.rollbackIfOpen();
        return Error::retry("sqlite_error", describe(impl.db.get(), rc));
    }
    impl.messages -= std::min(impl.messages, deleted);
    impl.bytes -= std::min(impl.bytes, freed);
    impl.updateGauges();
    return deleted;
}

std::optional<StoredMessage> Store::get(std::uint64_t seq) const {
    ScopedStatement use(impl_->select_one);
    sqlite3_bind_int64(*use, 1, static_cast<sqlite3_int64>(seq));
    if (sqlite3_step(*use) != SQLITE_ROW) return std::nullopt;
    return readRow(*use);
}

Backlog Store::backlog() const {
    Backlog out;
    ScopedStatement use(impl_->totals);
    if (sqlite3_step(*use) == SQLITE_ROW) {
        out.messages = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 0));
        out.bytes = static_cast<std::uint64_t>(sqlite3_column_int64(*use, 1));
        out.oldest_created_ms = sqlite3_column_int64(*use, 2);
    }
    return out;
}

std::uint64_t Store::epoch() const { return impl_->epoch; }
std::uint64_t Store::lastSeq() const { return impl_->last_seq; }
bool Store::recovered() const { return impl_->recovered; }

std::vector<shared::DropCounter> Store::dropCounters() const {
    return {impl_->drops.begin(), impl_->drops.end()};
}

}  // namespace tern::edge
