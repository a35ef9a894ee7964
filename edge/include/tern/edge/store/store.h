#pragma once

// The edge store: every sealed telemetry batch and every alert is committed to SQLite before it is
// offered to the uplink, and stays there until the cloud's Receipt covers it.
//
// Invariants:
// - Durable when: storeBatch()/storeAlert() return a Sequence only after their transaction has
//   committed (WAL, synchronous=FULL), so a message whose sequence was returned survives a process
//   crash or power loss. A failed call leaves nothing behind and consumes no sequence number.
// - Deleted when: a row is deleted only (a) by acknowledge(), when a Receipt of the same epoch
//   covers its seq (seq <= cumulative_seq or inside one of its ranges), or (b) by eviction, which
//   is counted by reason. Reading for sending (scan, get) never deletes.
// - Eviction order: oldest telemetry first; alerts only when no telemetry is left, oldest first.
//   Reasons: store_full (payload bytes would exceed max_bytes), max_age (created wall time older
//   than max_age), disk_full (SQLite reported SQLITE_FULL / SQLITE_IOERR on an insert), oversize
//   (the uplink cannot ever publish it: discardOversize).
// - Sequences: (epoch, seq). seq grows by one per stored message, shared by both lanes, and is
//   persisted in the meta table in the same transaction as the row, so it never repeats within
//   an epoch, even after every row has been deleted. A new file's epoch is the wall clock's Unix
//   seconds (1 if the clock reads before 1970-01-01T00:00:01), so a wiped store does not reuse
//   pairs the cloud holds; it grows each time a corrupt file is replaced (see Store::open).
// - Payloads are stored encoded (shared::encodeBatch / encodeAlert, gateway_id and sequence
//   filled in), so resending is a read, never a re-encode. The one rewrite is restamp(): a
//   message whose timestamps came from an unsynchronised clock (clock_synced false) remembers
//   its boot and that boot's wall - monotonic offset; once the clock is synchronised, restamp()
//   shifts its timestamps by the offset's change and marks it synchronised. Messages from an
//   earlier boot cannot be corrected and keep clock_synced false, which the ingest flags.
//
// Threads: a Store is used from one thread (the agent's store thread); it is not thread-safe.
// Metrics may be scraped from any thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tern/edge/pipeline/batcher.h"
#include "tern/edge/pipeline/pipeline.h"
#include "tern/shared/clock.h"
#include "tern/shared/codec.h"
#include "tern/shared/config.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// [store] in the agent's config.
struct StoreConfig {
    std::string path = "/var/lib/tern/edge.db";
    std::uint64_t max_bytes = 256 * shared::kMiB;
    std::chrono::milliseconds max_age{std::chrono::hours{24 * 7}};
    std::uint64_t max_disk_bytes = 0;
};

shared::ConfigTable<StoreConfig> storeTable();

// SQLite's page cache, capped: the default grows to 2 MiB as a backlog grows. The agent appends
// at the tail and reads and deletes at the head, so it needs little beyond the B-tree's interior
// pages (about 64 for a 100 MB backlog).
inline constexpr int kStoreCacheKib = 512;

struct StoreOptions {
    // Bound on the sum of stored payload bytes (SQLite's own overhead comes on top).
    std::uint64_t max_bytes = 256 * shared::kMiB;
    // Messages whose created wall time is older than this are evicted.
    std::chrono::milliseconds max_age{std::chrono::hours{24 * 7}};
    // Written into every stored message; must be a valid gateway id for the codec.
    std::string gateway_id;
    // Hard cap on the database file (PRAGMA max_page_count); 0 leaves it to the file system. Either
    // way a full disk takes the disk_full eviction path.
    std::uint64_t max_disk_bytes = 0;
    // Identifies the current boot (a hash of /proc/sys/kernel/random/boot_id); 0: unknown, and
    // messages stamped by an unsynchronised clock can then never be re-stamped.
    std::uint64_t boot_id = 0;
    shared::EncodeOptions encode{};
};

struct RestampResult {
    std::uint64_t restamped = 0;
    std::uint64_t failed = 0;         // could not be decoded again; left as they were
    std::uint64_t unrecoverable = 0;  // stamped in another boot: stay flagged unsynchronised
};

enum class Lane : std::uint8_t { Alert = 0, Telemetry = 1 };

struct StoredMessage {
    Lane lane = Lane::Telemetry;
    shared::Sequence sequence;
    std::uint32_t readings = 0;
    std::int64_t created_ms = 0;
    shared::Bytes payload;
};

struct Backlog {
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::int64_t oldest_created_ms = 0;  // 0 when empty
};

// Store is also the pipeline's BatchSink and AlertSink: those calls store the message and, since
// they cannot return an error, count a failure as a drop ("store_failed" in dropCounters()).
class Store final : public BatchSink, public AlertSink {
public:
    // Opens or creates the database at path. A file that is not a database, fails to open as one
    // or fails PRAGMA quick_check is renamed to <path>.corrupt-<unix-ms> (with its -wal and -shm)
    // and a new one is created with epoch = max(previous epoch + 1 if it could still be read,
    // wall-clock Unix seconds, 1), so sequences of the new file never collide with the old one's
    // as long as the wall clock is set or the old epoch was readable; recovered() then reports it.
    // Errors other than corruption (permissions, missing directory) are Error::stop and leave the
    // file alone.
    static shared::Result<std::unique_ptr<Store>> open(const std::string& path,
                                                       StoreOptions options,
                                                       const shared::Clock& clock,
                                                       shared::MetricsRegistry& metrics);
    ~Store() override;
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // Assign gateway_id and the next (epoch, seq), encode, evict as needed, commit. Errors: the
    // codec's (drop), "too_large" (drop: the payload alone exceeds max_bytes), "disk_full" (retry:
    // it did not fit even after evicting every older message), "sqlite_error" (retry).
    shared::Result<shared::Sequence> storeBatch(const shared::TelemetryBatch& batch);
    shared::Result<shared::Sequence> storeAlert(const shared::Alert& alert);

    void onBatch(const shared::TelemetryBatch& batch) override;
    void onAlert(const shared::Alert& alert) override;
    // A message the caller gave up storing (after storeBatch/storeAlert failed): counted as
    // "store_failed" in dropCounters(), like the sink adapters do.
    void countFailed(std::uint32_t readings);

    // Evicts messages older than max_age; call it periodically (storing does it too).
    shared::VoidResult enforceLimits();

    // Up to max messages of one lane with after_seq < seq <= through_seq, oldest first: the
    // uplink keeps its own cursors (live, backlog, in flight) and reads through this.
    std::vector<StoredMessage> scan(Lane lane, std::uint64_t after_seq, std::uint64_t through_seq,
                                    std::size_t max) const;
    // Alerts, then telemetry, each oldest first.
    std::vector<StoredMessage> pending(std::size_t limit) const;

    // Evicts one message that can never be published (larger than the broker accepts), counted
    // as "oversize". Returns whether it was still stored.
    shared::Result<bool> discardOversize(std::uint64_t seq);

    // The next MQTT session number (persisted, grows by one per call): Status birth and death
    // carry it so the cloud can tell a stale will from a newer birth.
    shared::Result<std::uint64_t> nextSession();

    // The clock is now synchronised: moves the timestamps (and stored time) of this boot's
    // unsynchronised messages by (wall - monotonic now) - (wall - monotonic when stored), in one
    // transaction. The store's clock must be the one that stamped them (SyncAwareClock).
    shared::Result<RestampResult> restamp();
    std::uint64_t unsyncedMessages() const;

    // Deletes every row the receipt covers; returns how many. A receipt for another epoch or
    // another gateway deletes nothing.
    shared::Result<std::uint64_t> acknowledge(const shared::Receipt& receipt);

    // The message with this seq (current epoch), if it is still stored: for resend requests.
    std::optional<StoredMessage> get(std::uint64_t seq) const;

    Backlog backlog() const;
    std::uint64_t epoch() const;
    std::uint64_t lastSeq() const;  // 0 before the first message of a new file
    bool recovered() const;         // open() replaced a corrupt file
    // Evicted and failed messages by reason since open, for the Status message.
    std::vector<shared::DropCounter> dropCounters() const;

private:
    struct Impl;
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::edge
