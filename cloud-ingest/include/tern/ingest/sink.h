#pragma once

// What a sink is to the ingest: something that takes spooled records and, later, says what became
// of each one. Every sink (the embedded time-series store, Kafka, Kinesis, alerting) implements
// this one asynchronous interface, and one SinkWorker drives each sink from its own cursor into
// the spool.
//
// Contract:
// - deliver() takes ownership of the records and returns without waiting for the destination.
//   It calls `done` exactly once, from any thread (also from inside deliver(), for a synchronous
//   sink), with one outcome per record, in the order given.
// - Delivered: the destination has the record durably (as durable as that destination gets: the
//   worker moves the spool's cursor past it, and the spool may then delete it).
// - Retry: not delivered, may succeed later (destination down, throttled, a timeout). The worker
//   sends it again after a backoff; a record is never skipped while it is Retry.
// - Rejected: the destination will never take it (a payload it cannot decode, a record too large
//   for it). The worker counts it as failed, logs it, and moves on: retrying would block every
//   record behind it forever.
// - A worker never calls deliver() again before the previous `done` has run, so a sink sees at
//   most one call at a time and needs no locking of its own for deliver(). The one exception is
//   a call that outlives SinkWorkerOptions::delivery_timeout: the worker then counts its records
//   as Retry, sends them again and ignores the late `done`, so a sink whose calls can hang past
//   the timeout must cope with a second call while the first is still running.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/ingest/spool.h"

namespace tern::ingest {

enum class RecordOutcome : std::uint8_t { Delivered, Retry, Rejected };

struct SinkResult {
    // One per record given to deliver(), in the same order.
    std::vector<RecordOutcome> outcomes;
    // Why some record was Retry or Rejected (for logs and the API); empty when all Delivered.
    // Never contains secrets or payload bytes.
    std::string error;

    static SinkResult all(std::size_t count, RecordOutcome outcome, std::string error = {}) {
        return SinkResult{std::vector<RecordOutcome>(count, outcome), std::move(error)};
    }
};

using SinkCompletion = std::function<void(SinkResult)>;

class Sink {
public:
    virtual ~Sink() = default;
    // Stable, [a-z0-9_-]: the spool cursor's name and the `sink` label of its metrics.
    virtual const std::string& name() const = 0;
    // See the contract above. `records` is never empty.
    virtual void deliver(std::vector<SpoolRecord> records, SinkCompletion done) = 0;
    // Called by the worker on its own thread between deliveries, at least every poll interval
    // while idle: for housekeeping that must run on the sink's thread (retention, flushing).
    virtual void tick() {}
};

}  // namespace tern::ingest
