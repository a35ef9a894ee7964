#pragma once

// The ingest spool: a durable local log of every verified telemetry batch and alert, with the
// per-gateway deduplication state that decides what gets in. Once a message is committed here the
// ingest may send its gateway a Receipt, and the gateway deletes it; from then on this file is the
// only copy until every sink has delivered it.
//
// Invariants:
// - Durable when: append() returns an Admission::Stored only after the group's one transaction
//   has committed (WAL, synchronous=FULL). Receipts are built only from committed state, so a
//   receipt never covers a message that a crash could still lose.
// - Records and their dedupe entries move together: a record is inserted in the same transaction
//   that marks its (gateway, epoch, seq) admitted, so after any crash either both exist or neither
//   does. A failed transaction admits nothing (and changes nothing in memory either).
// - Exactly once in the log: a (gateway, epoch, seq) already admitted, by an earlier group or
//   earlier in the same group, is answered Duplicate and not stored again, even after its record
//   has been truncated. With several ingest processes on one shared subscription, "admitted"
//   includes what the others' receipts cover (admitElsewhere), so across the processes each
//   message is stored once as long as its receipt is seen before a retransmission arrives. Dedupe
//   state is kept per (gateway, epoch) as a floor (every seq <= floor is admitted) plus at most
//   max_ranges disjoint ranges above it; for the max_epochs newest epochs of each gateway. An epoch
//   older than all of them, when the gateway already has max_epochs, is Stale: it cannot be told
//   apart from a replay, so it is not stored.
// - Offsets: every record gets the next offset (1, 2, ...); offsets are never reused, even after
//   truncate() has deleted every record, and they have no holes: the records still held are
//   exactly (truncated through, newest]. The next offset is persisted with each group.
// - Deleted when: only truncate() deletes, and only records at or below the slowest sink cursor.
//   With no cursor at all nothing is deleted. Nothing is ever evicted: at max_bytes of payload,
//   appends answer Full and the gateway, which got no receipt, keeps its copy and retransmits.
// - Cursors are persisted; a new cursor starts at the beginning (before the oldest record still
//   held), so a sink added later, or configured before the first restart that truncates, sees
//   everything the spool still has; nothing is truncated that no sink has delivered.
//
// Threads: every member function may be called from any thread; calls are serialised by one
// mutex (SQLite work included), so a slow read() delays append(). Metrics may be scraped from any
// thread.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tern/shared/clock.h"
#include "tern/shared/codec.h"
#include "tern/shared/config.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::ingest {

// Receipts carry at most this many ranges (DecodeLimits::max_items), so dedupe keeps no more.
inline constexpr std::size_t kMaxReceiptRanges = 1024;

// [spool] in the ingest's config.
struct SpoolConfig {
    std::string path = "/var/lib/tern/spool.db";
    std::uint64_t max_bytes = 4 * shared::kGiB;
    double high_water = 0.8;
    std::uint64_t max_disk_bytes = 0;
};

shared::ConfigTable<SpoolConfig> spoolTable();

struct SpoolOptions {
    // Bound on the sum of spooled payload bytes (SQLite's own overhead comes on top).
    std::uint64_t max_bytes = 4 * shared::kGiB;
    // Fraction of max_bytes above which stats().above_high_water is set (and its gauge is 1), so
    // the daemon can slow intake before appends start to answer Full. In (0, 1].
    double high_water = 0.8;
    // Admitted ranges kept above the floor per (gateway, epoch); in [1, kMaxReceiptRanges].
    std::size_t max_ranges = kMaxReceiptRanges;
    // Epochs whose dedupe state is kept per gateway; the oldest is dropped beyond it. At least 1.
    std::size_t max_epochs = 4;
    // Hard cap on the database file (PRAGMA max_page_count); 0 leaves it to the file system.
    // Reaching it fails the group with "disk_full" (retry), admitting nothing.
    std::uint64_t max_disk_bytes = 0;
};

// Only sequenced messages are spooled: Status and CommandAck carry no (epoch, seq) to dedupe by.
enum class Kind : std::uint8_t { Telemetry = 0, Alert = 1 };

// A verified message, as the Verifier hands it over. payload is the bytes as received (still
// compressed if they came compressed); sinks decode them again.
struct Incoming {
    std::string gateway_id;
    shared::Sequence sequence;
    Kind kind = Kind::Telemetry;
    std::uint32_t readings = 0;
    std::int64_t received_ms = 0;
    shared::Bytes payload;
};

// What append() did with one message. Only Stored and Duplicate are covered by receipts.
enum class Admission : std::uint8_t {
    Stored,     // new, now durable
    Duplicate,  // already admitted (earlier, or earlier in the same group); not stored again
    Full,       // the spool holds max_bytes: not stored; the gateway keeps it and retransmits
    // Admitting it would need a new range above the floor and the (gateway, epoch) already has
    // max_ranges. Not stored and not covered by receipts, so the gateway keeps it and retransmits;
    // ask for gaps() (cmd/resend) so the floor can move up and ranges merge. Count it; there is no
    // need to quarantine it, since nothing is lost.
    TooManyGaps,
    // Its epoch is older than every epoch kept for the gateway (and max_epochs are kept): it may
    // have been admitted before, so it is not stored. Quarantine it.
    Stale,
    // Empty gateway id, seq 0, an unknown kind or a payload larger than max_bytes: the verifier
    // should have rejected it. Quarantine it.
    Invalid,
};

struct SpoolRecord {
    std::uint64_t offset = 0;
    std::string gateway_id;
    shared::Sequence sequence;
    Kind kind = Kind::Telemetry;
    std::uint32_t readings = 0;
    std::int64_t received_ms = 0;
    shared::Bytes payload;
};

struct CursorStats {
    std::string sink;
    std::uint64_t offset = 0;  // the last offset the sink has delivered
    std::uint64_t lag = 0;     // records after it, up to the newest
};

struct SpoolStats {
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;  // payload bytes held
    std::uint64_t max_bytes = 0;
    bool above_high_water = false;
    std::uint64_t last_offset = 0;     // newest offset ever appended; 0 before the first
    std::vector<CursorStats> cursors;  // by sink name
};

class Spool {
public:
    // Opens or creates the spool at path. Errors are Error::stop: bad options, a file that cannot
    // be opened or created, or one that fails PRAGMA quick_check (a corrupt spool is left alone
    // for the operator: moving it aside would lose records the gateways have already deleted).
    static shared::Result<std::unique_ptr<Spool>> open(const std::string& path,
                                                       SpoolOptions options,
                                                       const shared::Clock& clock,
                                                       shared::MetricsRegistry& metrics);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // Admits a group in one transaction (group commit): the result has one Admission per message,
    // in order. A group with nothing to store (all duplicates, say) commits nothing. Errors, after
    // which nothing of the group is admitted: "disk_full" (retry: max_disk_bytes or the file
    // system), "sqlite_error" (retry).
    shared::Result<std::vector<Admission>> append(std::span<const Incoming> group);

    // Another ingest process sharing the subscription has these receipts out: what they cover is
    // durable there, so it counts as admitted here too (a retransmission that lands here is a
    // Duplicate, and the floor moves up over seqs this process never saw, so the gaps that a
    // round-robin split leaves do not pile up into TooManyGaps). Receipts that add nothing (this
    // process's own, coming back) cost no transaction. Epochs follow append()'s rules (a stale
    // one is ignored). Above max_ranges the highest ranges are dropped, which can only let a
    // seq be stored twice, never lose one. Returns how many (gateway, epoch) states changed.
    // Errors: as append().
    shared::Result<std::size_t> admitElsewhere(std::span<const shared::Receipt> receipts);

    // What the gateway may delete: cumulative_seq = floor, ranges = admitted ranges above it
    // (ascending, disjoint, at most max_ranges), issued_at_ms from the clock. For a gateway or
    // epoch with no state: cumulative_seq 0 and no ranges.
    shared::Receipt receiptFor(const std::string& gateway, std::uint64_t epoch) const;

    // Up to max missing ranges between the floor and the highest admitted seq, ascending: what a
    // cmd/resend should ask for.
    std::vector<shared::SeqRange> gaps(const std::string& gateway, std::uint64_t epoch,
                                       std::size_t max) const;

    // Creates a persisted cursor for sink, at the beginning (see the invariants). A sink that
    // already has one keeps it, so the daemon calls this for every configured sink at startup.
    shared::VoidResult addCursor(const std::string& sink);
    // Deletes the sink's cursor, so that truncation no longer waits for it.
    shared::VoidResult removeCursor(const std::string& sink);
    // Up to max records after the sink's cursor, oldest first. Empty for an unknown sink or on a
    // read error (the worker tries again later).
    std::vector<SpoolRecord> read(const std::string& sink, std::size_t max) const;
    // The sink has delivered every record up to and including offset. Moving a cursor back is a
    // no-op (completions may arrive out of order). Errors: "unknown_cursor" (drop),
    // "offset_out_of_range" (drop: past the newest record), "sqlite_error" (retry).
    shared::VoidResult advance(const std::string& sink, std::uint64_t offset);
    // Deletes the records at or below the slowest cursor; returns how many. With no cursors it
    // deletes nothing. Errors: "sqlite_error" (retry).
    shared::Result<std::uint64_t> truncate();

    SpoolStats stats() const;

private:
    struct Impl;
    explicit Spool(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::ingest
