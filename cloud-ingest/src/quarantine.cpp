#include "tern/ingest/quarantine.h"

#include <algorithm>
#include <deque>
#include <utility>

namespace tern::ingest {

shared::ConfigTable<QuarantineConfig> quarantineTable() {
    return shared::ConfigTable<QuarantineConfig>(
               "quarantine",
               "Recent rejected messages with their reasons, in memory, for the operator to "
               "inspect; every rejection is counted whether or not it is still kept")
        .integer("max_entries", &QuarantineConfig::max_entries, 10'000, {1, 10'000'000}, "entries",
                 "Entries kept; beyond it the oldest are evicted")
        .byteSize("max_bytes", &QuarantineConfig::max_bytes, 64 * shared::kMiB,
                  {shared::kMiB, 16 * shared::kGiB},
                  "Bytes kept (payload prefixes, topics and details); beyond it the oldest "
                  "entries are evicted")
        .byteSize("max_payload_bytes_kept", &QuarantineConfig::max_payload_bytes_kept,
                  4 * shared::kKiB, {0, shared::kMiB},
                  "Leading bytes of each rejected payload that are kept; the rest is only "
                  "counted");
}

namespace {

std::uint64_t footprint(const QuarantineEntry& entry) {
    return entry.payload.size() + entry.topic.size() + entry.detail.size();
}

}  // namespace

struct Quarantine::State {
    std::deque<QuarantineEntry> entries;  // oldest first, so ids ascend
    std::uint64_t bytes = 0;
    std::uint64_t next_id = 1;
    std::uint64_t added = 0;
    std::uint64_t evicted = 0;

    struct ReasonCount {
        shared::Counter* counter = nullptr;
        std::uint64_t count = 0;
    };
    std::map<std::string, ReasonCount, std::less<>> reasons;

    shared::Counter* evicted_total = nullptr;
    shared::Gauge* entries_gauge = nullptr;
    shared::Gauge* bytes_gauge = nullptr;
};

Quarantine::Quarantine(QuarantineConfig config, shared::MetricsRegistry& metrics)
    : config_(config), metrics_(&metrics), state_(std::make_shared<State>()) {
    state_->evicted_total = &metrics.counter(
        "tern_ingest_quarantine_evicted_total",
        "Quarantine entries evicted, oldest first, to stay within max_entries and max_bytes");
    state_->entries_gauge =
        &metrics.gauge("tern_ingest_quarantine_entries", "Entries held in the quarantine");
    state_->bytes_gauge = &metrics.gauge("tern_ingest_quarantine_bytes",
                                         "Bytes held in the quarantine (payload prefixes, topics, "
                                         "details)");
}

std::uint64_t Quarantine::add(std::int64_t received_ms, std::string_view topic,
                              std::string_view gateway_id, std::string_view reason,
                              std::string_view detail, std::span<const std::uint8_t> payload) {
    QuarantineEntry entry;
    entry.received_ms = received_ms;
    entry.topic = std::string(topic);
    entry.gateway_id = std::string(gateway_id);
    entry.reason = std::string(reason);
    entry.detail = std::string(detail);
    entry.payload_bytes = payload.size();
    const std::size_t kept = static_cast<std::size_t>(
        std::min<std::uint64_t>(payload.size(), config_.max_payload_bytes_kept));
    entry.payload.assign(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(kept));
    const std::uint64_t size = footprint(entry);

    const std::lock_guard lock(mutex_);
    State& state = *state_;
    entry.id = state.next_id++;
    const std::uint64_t id = entry.id;
    state.added += 1;

    auto counted = state.reasons.find(reason);
    if (counted == state.reasons.end()) {
        // Reasons are stable codes from the verifier, the codec and the spool: a small set, so
        // one series each is fine.
        shared::Counter& counter = metrics_->counter(
            "tern_ingest_quarantined_total",
            "Messages quarantined, by reason (evicted ones included)", {{"reason", entry.reason}});
        counted = state.reasons.emplace(entry.reason, State::ReasonCount{&counter, 0}).first;
    }
    counted->second.count += 1;
    counted->second.counter->inc();

    state.entries.push_back(std::move(entry));
    state.bytes += size;
    // Oldest first. An entry larger than max_bytes on its own evicts itself too: the bound holds
    // and the counters still have it.
    const auto max_entries =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, config_.max_entries));
    while (!state.entries.empty() &&
           (state.entries.size() > max_entries || state.bytes > config_.max_bytes)) {
        state.bytes -= footprint(state.entries.front());
        state.entries.pop_front();
        state.evicted += 1;
        state.evicted_total->inc();
    }
    state.entries_gauge->set(static_cast<double>(state.entries.size()));
    state.bytes_gauge->set(static_cast<double>(state.bytes));
    return id;
}

std::vector<QuarantineEntry> Quarantine::list(const QuarantineQuery& query) const {
    std::vector<QuarantineEntry> out;
    const std::lock_guard lock(mutex_);
    const auto& entries = state_->entries;
    // Ids ascend from front to back, so the page starts at the first id >= before_id.
    auto end = entries.end();
    if (query.before_id != 0) {
        end = std::lower_bound(
            entries.begin(), entries.end(), query.before_id,
            [](const QuarantineEntry& entry, std::uint64_t id) { return entry.id < id; });
    }
    for (auto it = end; it != entries.begin() && out.size() < query.limit;) {
        --it;
        if (query.gateway_id && it->gateway_id != *query.gateway_id) continue;
        if (query.reason && it->reason != *query.reason) continue;
        out.push_back(*it);
    }
    return out;
}

std::map<std::string, std::uint64_t> Quarantine::countsByReason() const {
    std::map<std::string, std::uint64_t> out;
    const std::lock_guard lock(mutex_);
    for (const auto& [reason, counted] : state_->reasons) out.emplace(reason, counted.count);
    return out;
}

QuarantineStats Quarantine::stats() const {
    const std::lock_guard lock(mutex_);
    return QuarantineStats{state_->entries.size(), state_->bytes, state_->added, state_->evicted};
}

}  // namespace tern::ingest
