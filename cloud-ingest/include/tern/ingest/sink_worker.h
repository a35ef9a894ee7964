#pragma once

// Drives one Sink from its own cursor into the spool, on its own thread: reads the records after
// the cursor, hands them to the sink, and moves the cursor past what the sink has delivered or
// rejected. A sink that is down holds back only its own cursor; the others go on, and the spool
// keeps everything above the slowest cursor.
//
// - Retry: only the records the sink answered Retry are sent again, after a backoff that doubles
//   per consecutive failed attempt from backoff_min up to backoff_max, with full jitter. The
//   cursor never passes a record that is still Retry.
// - Breaker: after breaker_failures consecutive attempts that delivered nothing, the breaker
//   opens for breaker_cooldown (no calls to the sink, the gauge
//   tern_ingest_sink_breaker_open{sink} is 1); then one attempt is let through (half-open): if it
//   delivers anything, the breaker closes, otherwise it opens again.
// - Truncation: after moving its cursor the worker asks the spool to truncate (it deletes only
//   below the slowest cursor).
// - stop(): waits (bounded by drain_timeout) for the delivery in flight and for the records
//   already in the spool to be delivered, then returns; what remains stays in the spool for the
//   next start.
//
// Metrics, labelled {sink}: tern_ingest_sink_delivered_total, tern_ingest_sink_retried_total,
// tern_ingest_sink_failed_total (rejected), tern_ingest_sink_lag_records (gauge),
// tern_ingest_sink_breaker_open (gauge), tern_ingest_sink_delivery_seconds (histogram of one
// deliver() call), tern_ingest_sink_latency_seconds (histogram, received_ms to delivered: the
// end-to-end latency).

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "tern/ingest/sink.h"
#include "tern/ingest/spool.h"
#include "tern/shared/clock.h"
#include "tern/shared/metrics.h"

namespace tern::ingest {

struct SinkWorkerOptions {
    std::size_t batch_records = 512;
    std::chrono::milliseconds backoff_min{200};
    std::chrono::milliseconds backoff_max{30'000};
    unsigned breaker_failures = 5;
    std::chrono::milliseconds breaker_cooldown{30'000};
    // Longest sleep while idle without a notify(); also the tick() period.
    std::chrono::milliseconds poll_interval{1'000};
    // Bound on one deliver(): a sink that never calls done counts as Retry for every record
    // after this (a late done is then ignored).
    std::chrono::milliseconds delivery_timeout{60'000};
};

struct SinkWorkerStats {
    std::uint64_t delivered = 0;
    std::uint64_t retried = 0;
    std::uint64_t failed = 0;
    bool breaker_open = false;
    std::string last_error;
};

class SinkWorker {
public:
    // Creates the sink's spool cursor if it has none (Spool::addCursor). Error::stop if that fails.
    static shared::Result<std::unique_ptr<SinkWorker>> create(Spool& spool,
                                                              std::unique_ptr<Sink> sink,
                                                              SinkWorkerOptions options,
                                                              const shared::Clock& clock,
                                                              shared::MetricsRegistry& metrics);
    ~SinkWorker();  // stop() with a zero drain timeout, if not stopped
    SinkWorker(const SinkWorker&) = delete;
    SinkWorker& operator=(const SinkWorker&) = delete;

    void start();
    // New records are in the spool: wake up now instead of at the next poll.
    void notify();
    // See above. Idempotent.
    void stop(std::chrono::milliseconds drain_timeout);

    const std::string& name() const;
    Sink& sink();
    SinkWorkerStats stats() const;

private:
    struct Impl;
    explicit SinkWorker(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::ingest
