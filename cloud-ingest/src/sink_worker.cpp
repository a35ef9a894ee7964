#include "tern/ingest/sink_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tern/shared/backoff.h"

namespace tern::ingest {

using shared::Error;
using shared::Result;

namespace {

using MonoTime = shared::Clock::MonoTime;
using RealTime = std::chrono::steady_clock::time_point;

std::string checkOptions(const SinkWorkerOptions& options) {
    if (options.batch_records == 0) return "batch_records must be positive";
    if (options.backoff_min.count() < 0) return "backoff_min must not be negative";
    if (options.backoff_max < options.backoff_min)
        return "backoff_max must not be below backoff_min";
    if (options.breaker_failures == 0) return "breaker_failures must be at least 1";
    if (options.breaker_cooldown.count() < 0) return "breaker_cooldown must not be negative";
    if (options.poll_interval.count() <= 0) return "poll_interval must be positive";
    if (options.delivery_timeout.count() <= 0) return "delivery_timeout must be positive";
    return {};
}

// Where a sink's completion meets the worker. Owned jointly by the worker and by every
// completion handed to the sink, so a done that arrives after the worker is gone (a sink that
// answers after delivery_timeout, or after stop()) still has something valid to write to.
struct Rendezvous {
    std::mutex mutex;
    std::condition_variable cv;
    // Bumped when a delivery starts and when the worker stops waiting for it: a completion
    // carrying an older generation is late and ignored.
    std::uint64_t generation = 0;
    std::optional<SinkResult> result;
    bool wake = false;  // notify(), stop() or a completion since the worker last looked
    bool stopping = false;
    RealTime drain_deadline{};
};

}  // namespace

struct SinkWorker::Impl {
    Impl(Spool& s, std::unique_ptr<Sink> k, SinkWorkerOptions o, const shared::Clock& c,
         shared::MetricsRegistry& metrics)
        : spool(s),
          sink(std::move(k)),
          options(o),
          clock(c),
          rendezvous(std::make_shared<Rendezvous>()),
          rng(std::random_device{}()) {
        const shared::Labels labels{{"sink", sink->name()}};
        delivered = &metrics.counter("tern_ingest_sink_delivered_total",
                                     "Spooled records a sink has delivered", labels);
        retried = &metrics.counter("tern_ingest_sink_retried_total",
                                   "Records a sink answered Retry (counted per attempt)", labels);
        failed = &metrics.counter("tern_ingest_sink_failed_total",
                                  "Records a sink rejected for good; the cursor moved past them",
                                  labels);
        lag = &metrics.gauge("tern_ingest_sink_lag_records",
                             "Spooled records after the sink's cursor", labels);
        breaker_gauge = &metrics.gauge("tern_ingest_sink_breaker_open",
                                       "1 while the sink's circuit breaker is open", labels);
        delivery_seconds =
            &metrics.histogram("tern_ingest_sink_delivery_seconds",
                               "Time from one deliver() call to its completion (or its timeout)",
                               shared::exponentialBuckets(0.001, 2.0, 18), labels);
        latency_seconds = &metrics.histogram(
            "tern_ingest_sink_latency_seconds",
            "Time from a record's arrival at the ingest to its delivery by the sink",
            shared::exponentialBuckets(0.001, 2.0, 20), labels);
    }

    const std::string& name() const { return sink->name(); }

    void run() {
        while (true) {
            // Before the drain deadline is looked at: a slice the sink has settled is recorded
            // even by a stop() that does not wait, so a restart does not send it again.
            const bool advanced = !advance_to || advanceCursor();
            if (drainDeadlinePassed()) return;
            callTick();
            // Each pass, so the lag grows while the sink is down and new records arrive.
            updateLag();
            if (!advanced) {
                sleepUntil(std::nullopt);
                continue;
            }
            if (slice.empty()) {
                slice = spool.read(name(), options.batch_records);
                pending.clear();
                for (std::size_t i = 0; i < slice.size(); ++i) pending.push_back(i);
                if (slice.empty()) {
                    if (stopRequested()) return;  // drained
                    sleepUntil(std::nullopt);
                    continue;
                }
            }
            const MonoTime now = clock.monoNow();
            if (now < next_attempt_at) {
                sleepUntil(next_attempt_at);
                continue;
            }
            if (!attempt()) return;  // gave up on a delivery in flight at the drain deadline
        }
    }

    // One deliver() of the pending records of the slice. false: the drain deadline passed while
    // the delivery was in flight; its records stay in the spool and its done will be ignored.
    bool attempt() {
        std::vector<SpoolRecord> records;
        records.reserve(pending.size());
        for (const std::size_t i : pending) records.push_back(slice[i]);
        const bool half_open = breaker_open;

        std::uint64_t generation = 0;
        {
            std::lock_guard lock(rendezvous->mutex);
            generation = ++rendezvous->generation;
            rendezvous->result.reset();
        }
        SinkCompletion done = [shared = rendezvous, generation](SinkResult result) {
            std::lock_guard lock(shared->mutex);
            if (shared->generation != generation || shared->result) return;
            shared->result = std::move(result);
            shared->wake = true;
            shared->cv.notify_all();
        };
        const MonoTime started = clock.monoNow();
        try {
            sink->deliver(std::move(records), std::move(done));
        } catch (const std::exception& e) {
            // Sinks must not throw; if one does, its records are not lost, only retried.
            complete(generation, SinkResult::all(pending.size(), RecordOutcome::Retry,
                                                 std::string("deliver() threw: ") + e.what()));
        }

        std::optional<SinkResult> result = awaitResult(started);
        if (!result) return false;
        delivery_seconds->observe(std::chrono::duration<double>(clock.monoNow() - started).count());
        if (result->outcomes.size() != pending.size()) {
            // A sink bug; nothing it said can be matched to a record, so nothing is skipped.
            spdlog::error("sink {}: done gave {} outcomes for {} records; retrying all of them",
                          name(), result->outcomes.size(), pending.size());
            result = SinkResult::all(pending.size(), RecordOutcome::Retry,
                                     "sink answered with the wrong number of outcomes");
        }
        settle(*result, half_open);
        return true;
    }

    void complete(std::uint64_t generation, SinkResult result) {
        std::lock_guard lock(rendezvous->mutex);
        if (rendezvous->generation != generation || rendezvous->result) return;
        rendezvous->result = std::move(result);
    }

    // The delivery's result; a timeout becomes Retry for every record. nullopt when the drain
    // deadline passed first.
    std::optional<SinkResult> awaitResult(MonoTime started) {
        const MonoTime timeout_at = started + options.delivery_timeout;
        std::unique_lock lock(rendezvous->mutex);
        while (true) {
            if (rendezvous->result) {
                SinkResult result = std::move(*rendezvous->result);
                rendezvous->result.reset();
                ++rendezvous->generation;
                return result;
            }
            const bool timed_out = clock.monoNow() >= timeout_at;
            const bool abandoned = rendezvous->stopping &&
                                   std::chrono::steady_clock::now() >= rendezvous->drain_deadline;
            if (timed_out || abandoned) {
                // From here on a late done from this delivery is ignored. The sink may still be
                // working on it when the worker sends the Retry records again: the timeout is
                // what keeps a hung destination from holding the cursor forever.
                ++rendezvous->generation;
                if (abandoned) return std::nullopt;
                lock.unlock();
                spdlog::warn("sink {}: no completion within {} ms; retrying {} records", name(),
                             options.delivery_timeout.count(), pending.size());
                return SinkResult::all(pending.size(), RecordOutcome::Retry, "delivery_timeout");
            }
            waitLocked(lock, timeout_at);
        }
    }

    // Applies one attempt's outcomes to the slice: Delivered and Rejected records are done,
    // Retry records stay pending for the next attempt.
    void settle(const SinkResult& result, bool half_open) {
        const std::int64_t now_ms = shared::toUnixMillis(clock.wallNow());
        std::vector<std::size_t> still_pending;
        std::uint64_t n_delivered = 0;
        std::uint64_t n_retry = 0;
        std::uint64_t n_rejected = 0;
        const SpoolRecord* first_rejected = nullptr;
        for (std::size_t k = 0; k < pending.size(); ++k) {
            const SpoolRecord& record = slice[pending[k]];
            switch (result.outcomes[k]) {
                case RecordOutcome::Delivered:
                    ++n_delivered;
                    // received_ms is our own wall clock, which an NTP step may have moved back.
                    latency_seconds->observe(static_cast<double>(std::max<std::int64_t>(
                                                 now_ms - record.received_ms, 0)) /
                                             1000.0);
                    break;
                case RecordOutcome::Retry:
                    ++n_retry;
                    still_pending.push_back(pending[k]);
                    break;
                case RecordOutcome::Rejected:
                    // Retrying would block every record behind it forever: count it and move on.
                    if (n_rejected++ == 0) first_rejected = &record;
                    break;
            }
        }
        if (first_rejected != nullptr) {
            // One line per attempt, not per record: a sink that rejects everything would
            // otherwise log every record it is given.
            spdlog::warn(
                "sink {}: rejected {} records, the first at offset {} (gateway {}, epoch {}, "
                "seq {}): {}",
                name(), n_rejected, first_rejected->offset, first_rejected->gateway_id,
                first_rejected->sequence.epoch, first_rejected->sequence.seq, result.error);
        }
        pending = std::move(still_pending);
        delivered->inc(n_delivered);
        retried->inc(n_retry);
        failed->inc(n_rejected);
        {
            std::lock_guard lock(stats_mutex);
            stats.delivered += n_delivered;
            stats.retried += n_retry;
            stats.failed += n_rejected;
            if (!result.error.empty()) stats.last_error = result.error;
        }

        // An attempt that delivered nothing and still has Retry records is a failure for the
        // backoff and the breaker. One that answered everything (even if only with Rejected)
        // shows a destination that is up and deciding, so it counts as progress.
        const bool progressed = n_delivered > 0 || n_retry == 0;
        const MonoTime now = clock.monoNow();
        if (progressed) {
            failures = 0;
            if (breaker_open) setBreaker(false, result.error);
        } else {
            ++failures;
            if (half_open || failures >= options.breaker_failures) {
                setBreaker(true, result.error);
                breaker_until = now + options.breaker_cooldown;
            }
        }
        if (!pending.empty()) {
            spdlog::debug("sink {}: {} of {} records to retry: {}", name(), pending.size(),
                          slice.size(), result.error);
            // The first retry waits up to backoff_min; each further failure doubles the bound.
            next_attempt_at =
                now + shared::backoffDelay(failures > 0 ? failures - 1 : 0, options.backoff_min,
                                           options.backoff_max, rng);
            // While the breaker is open nothing is sent; the attempt after the cooldown is the
            // half-open one.
            if (breaker_open) next_attempt_at = std::max(next_attempt_at, breaker_until);
        } else {
            next_attempt_at = now;
            advance_to = slice.back().offset;
            slice.clear();
        }
    }

    void setBreaker(bool open, const std::string& error) {
        if (open && !breaker_open) {
            spdlog::warn("sink {}: breaker open for {} ms after {} failed attempts: {}", name(),
                         options.breaker_cooldown.count(), failures, error);
        } else if (open) {
            spdlog::warn("sink {}: half-open attempt failed, breaker open again: {}", name(),
                         error);
        } else {
            spdlog::info("sink {}: delivering again, breaker closed", name());
        }
        breaker_open = open;
        breaker_gauge->set(open ? 1.0 : 0.0);
        std::lock_guard lock(stats_mutex);
        stats.breaker_open = open;
    }

    // Persists the cursor past the settled slice, then lets the spool delete what every sink has
    // passed. false: the cursor did not move and the advance is tried again later.
    bool advanceCursor() {
        if (auto moved = spool.advance(name(), *advance_to); !moved) {
            const Error& error = moved.error();
            spdlog::error("sink {}: cannot move the cursor to {}: {}", name(), *advance_to,
                          error.message());
            {
                std::lock_guard lock(stats_mutex);
                stats.last_error = error.message();
            }
            // unknown_cursor, offset_out_of_range: trying again would not change anything.
            if (error.action != shared::ErrorAction::Retry) advance_to.reset();
            return error.action != shared::ErrorAction::Retry;
        }
        advance_to.reset();
        if (auto truncated = spool.truncate(); !truncated) {
            // Harmless: the next advance truncates again.
            spdlog::warn("sink {}: spool truncate failed: {}", name(), truncated.error().message());
        }
        updateLag();
        return true;
    }

    void updateLag() {
        const SpoolStats s = spool.stats();
        for (const auto& cursor : s.cursors) {
            if (cursor.sink == name()) lag->set(static_cast<double>(cursor.lag));
        }
    }

    void callTick() {
        try {
            sink->tick();
        } catch (const std::exception& e) {
            spdlog::error("sink {}: tick() threw: {}", name(), e.what());
        }
    }

    bool stopRequested() {
        std::lock_guard lock(rendezvous->mutex);
        return rendezvous->stopping;
    }

    bool drainDeadlinePassed() {
        std::lock_guard lock(rendezvous->mutex);
        return rendezvous->stopping &&
               std::chrono::steady_clock::now() >= rendezvous->drain_deadline;
    }

    // Sleeps until woken, or until `until` on the injected clock, or one poll interval, or the
    // drain deadline, whichever comes first. The injected clock may be a manual one that only
    // moves when a test says so; the worker then looks at it again at the next wake.
    void sleepUntil(std::optional<MonoTime> until) {
        std::unique_lock lock(rendezvous->mutex);
        waitLocked(lock, until);
    }

    void waitLocked(std::unique_lock<std::mutex>& lock, std::optional<MonoTime> until) {
        if (!rendezvous->wake) {
            std::chrono::nanoseconds wait = options.poll_interval;
            if (until) wait = std::min<std::chrono::nanoseconds>(wait, *until - clock.monoNow());
            if (rendezvous->stopping) {
                wait = std::min<std::chrono::nanoseconds>(
                    wait, rendezvous->drain_deadline - std::chrono::steady_clock::now());
            }
            if (wait > std::chrono::nanoseconds::zero()) {
                rendezvous->cv.wait_for(lock, wait, [this] { return rendezvous->wake; });
            }
        }
        rendezvous->wake = false;
    }

    Spool& spool;
    std::unique_ptr<Sink> sink;
    const SinkWorkerOptions options;
    const shared::Clock& clock;
    std::shared_ptr<Rendezvous> rendezvous;
    std::thread thread;
    bool thread_started = false;  // start() and stop() run on the owner's thread
    bool stopped = false;

    // The worker thread's own state. The slice is what the last read() returned; pending holds
    // the indexes into it still to be sent. Records after the slice are read only once every
    // record of the slice is Delivered or Rejected and the cursor has moved past it, so the
    // cursor never passes a Retry record and nothing newer is read twice.
    std::vector<SpoolRecord> slice;
    std::vector<std::size_t> pending;
    std::optional<std::uint64_t> advance_to;
    MonoTime next_attempt_at{};
    unsigned failures = 0;  // consecutive attempts that made no progress
    bool breaker_open = false;
    MonoTime breaker_until{};
    std::mt19937_64 rng;

    mutable std::mutex stats_mutex;
    SinkWorkerStats stats;

    shared::Counter* delivered = nullptr;
    shared::Counter* retried = nullptr;
    shared::Counter* failed = nullptr;
    shared::Gauge* lag = nullptr;
    shared::Gauge* breaker_gauge = nullptr;
    shared::Histogram* delivery_seconds = nullptr;
    shared::Histogram* latency_seconds = nullptr;
};

Result<std::unique_ptr<SinkWorker>> SinkWorker::create(Spool& spool, std::unique_ptr<Sink> sink,
                                                       SinkWorkerOptions options,
                                                       const shared::Clock& clock,
                                                       shared::MetricsRegistry& metrics) {
    if (!sink) return Error::stop("invalid_sink_worker_options", "no sink");
    if (const std::string why = checkOptions(options); !why.empty()) {
        return Error::stop("invalid_sink_worker_options", sink->name() + ": " + why);
    }
    if (auto added = spool.addCursor(sink->name()); !added) {
        return Error::stop("sink_cursor_failed", sink->name() + ": " + added.error().message());
    }
    auto impl = std::make_unique<Impl>(spool, std::move(sink), options, clock, metrics);
    impl->updateLag();
    return std::unique_ptr<SinkWorker>(new SinkWorker(std::move(impl)));
}

SinkWorker::SinkWorker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SinkWorker::~SinkWorker() { stop(std::chrono::milliseconds::zero()); }

void SinkWorker::start() {
    auto& impl = *impl_;
    if (impl.thread_started || impl.stopped) return;
    impl.thread_started = true;
    impl.thread = std::thread([&impl] { impl.run(); });
}

void SinkWorker::notify() {
    auto& rendezvous = *impl_->rendezvous;
    std::lock_guard lock(rendezvous.mutex);
    rendezvous.wake = true;
    rendezvous.cv.notify_all();
}

void SinkWorker::stop(std::chrono::milliseconds drain_timeout) {
    auto& impl = *impl_;
    if (impl.stopped) return;
    impl.stopped = true;
    {
        // The drain bound is real time on purpose: it bounds how long the caller (the daemon's
        // shutdown, a service manager's stop timeout) is kept waiting, whatever clock is injected.
        std::lock_guard lock(impl.rendezvous->mutex);
        impl.rendezvous->stopping = true;
        impl.rendezvous->drain_deadline = std::chrono::steady_clock::now() + drain_timeout;
        impl.rendezvous->wake = true;
        impl.rendezvous->cv.notify_all();
    }
    if (impl.thread.joinable()) impl.thread.join();
}

const std::string& SinkWorker::name() const { return impl_->name(); }

Sink& SinkWorker::sink() { return *impl_->sink; }

SinkWorkerStats SinkWorker::stats() const {
    std::lock_guard lock(impl_->stats_mutex);
    return impl_->stats;
}

}  // namespace tern::ingest
