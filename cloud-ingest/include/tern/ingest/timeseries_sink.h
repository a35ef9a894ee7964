#pragma once

// The embedded time-series store as a Sink: decodes each spooled telemetry batch and alert
// again (the spool keeps payloads as received) and writes them to the TimeseriesStore: every
// batch of one deliver() in one transaction (writeMany), then each alert in one of its own, then
// one sync() before answering Delivered (see the store's "Durable when": the spool may forget a
// record only once it is on disk here). deliver() answers before it returns.
//
// Outcomes: a payload that no longer decodes is Rejected (the verifier decoded it once, so this
// means the spool or the codec changed under it); "sqlite_error" and "disk_full" make every
// record not Rejected Retry (what was committed before the error is stored again harmlessly:
// the store is idempotent). Readings the store refuses by value (expired, far future, non-finite)
// are still Delivered: the store counts them, and retrying would not change its mind.
//
// Sensor tables arrive with Status births, which the spool does not carry: setSensors() may be
// called from any thread and is applied on the worker's thread at the next deliver() or tick(),
// before any write, so a series query names sensors by the latest birth seen.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tern/ingest/sink.h"
#include "tern/ingest/timeseries_store.h"
#include "tern/shared/clock.h"

namespace tern::ingest {

class TimeseriesSink final : public Sink {
public:
    // name: the cursor and metrics name, "tsdb" by default in the daemon. clock: the store's, so
    // that retention runs on the same idea of time (it must outlive the sink).
    TimeseriesSink(std::string name, std::unique_ptr<TimeseriesStore> store,
                   const shared::Clock& clock);

    const std::string& name() const override { return name_; }
    void deliver(std::vector<SpoolRecord> records, SinkCompletion done) override;
    // Applies pending sensor tables; runs enforceRetention() at most once an hour.
    void tick() override;

    void setSensors(std::string gateway_id, std::vector<shared::SensorInfo> sensors);
    // An alert that does not come through the spool (the ingest's own, such as its spool above
    // the high-water mark). Any thread; stored on the worker's thread at the next tick(), kept
    // and retried while the store answers Retry.
    void addAlert(std::string gateway_id, shared::Alert alert);

    TimeseriesStore& store() { return *store_; }

private:
    void applyPendingSensors();
    void applyPendingAlerts();

    std::string name_;
    std::unique_ptr<TimeseriesStore> store_;
    const shared::Clock& clock_;
    std::mutex pending_mutex_;
    // At most one entry per gateway: a newer birth replaces one not applied yet.
    std::vector<std::pair<std::string, std::vector<shared::SensorInfo>>> pending_sensors_;
    std::vector<std::pair<std::string, shared::Alert>> pending_alerts_;
    // Monotonic, so a wall clock step neither skips retention nor runs it in a loop.
    std::optional<shared::Clock::MonoTime> last_retention_;
};

}  // namespace tern::ingest
