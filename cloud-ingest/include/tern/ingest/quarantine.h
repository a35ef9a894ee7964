#pragma once

// Where rejected input goes: every message the verifier or the spool refuses is kept here with
// its reason, so an operator can see what a gateway sent and why it was refused, and nothing
// rejected ever reaches a sink.
//
// Invariants:
// - Bounded by entry count and by bytes (the kept payload prefixes plus topic and detail); adding
//   past either bound evicts the oldest entries first, each eviction counted in
//   tern_ingest_quarantine_evicted_total. A payload is kept up to max_payload_bytes_kept (the
//   rest is counted in payload_bytes, not kept).
// - Every add() is counted in tern_ingest_quarantined_total{reason} whether or not it is later
//   evicted, so the counter is the complete record and the entries are a recent sample.
// - Ids grow by one per add() from 1 and are never reused in a process; they let the API page.
// - In memory: a restart empties it (the counters restart too; Prometheus handles resets).
//
// Threads: every member may be called from any thread (one mutex).

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tern/shared/codec.h"
#include "tern/shared/config.h"
#include "tern/shared/metrics.h"

namespace tern::ingest {

// [quarantine] in the ingest's config.
struct QuarantineConfig {
    std::int64_t max_entries = 10'000;  // a config integer, as every table's
    std::uint64_t max_bytes = 64 * shared::kMiB;
    std::uint64_t max_payload_bytes_kept = 4 * shared::kKiB;
};

shared::ConfigTable<QuarantineConfig> quarantineTable();

struct QuarantineEntry {
    std::uint64_t id = 0;
    std::int64_t received_ms = 0;
    std::string topic;
    std::string gateway_id;  // from the topic; empty if it did not parse
    std::string reason;
    std::string detail;
    std::uint64_t payload_bytes = 0;  // the whole payload's size
    shared::Bytes payload;            // its first max_payload_bytes_kept bytes
};

struct QuarantineQuery {
    std::optional<std::string> gateway_id;
    std::optional<std::string> reason;
    std::uint64_t before_id = 0;  // 0: from the newest; else only ids below it (paging)
    std::size_t limit = 100;
};

struct QuarantineStats {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
    std::uint64_t added = 0;
    std::uint64_t evicted = 0;
};

class Quarantine {
public:
    Quarantine(QuarantineConfig config, shared::MetricsRegistry& metrics);

    // Returns the new entry's id.
    std::uint64_t add(std::int64_t received_ms, std::string_view topic, std::string_view gateway_id,
                      std::string_view reason, std::string_view detail,
                      std::span<const std::uint8_t> payload);

    // Newest first, filtered, at most query.limit.
    std::vector<QuarantineEntry> list(const QuarantineQuery& query) const;
    // Counts by reason since the process started (evicted entries included).
    std::map<std::string, std::uint64_t> countsByReason() const;
    QuarantineStats stats() const;

private:
    // Implementation's choice; a deque of entries and per-reason counter pointers are enough.
    struct State;
    QuarantineConfig config_;
    shared::MetricsRegistry* metrics_;
    mutable std::mutex mutex_;
    std::shared_ptr<State> state_;
};

}  // namespace tern::ingest
