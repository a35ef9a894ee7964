#pragma once

// The embedded time-series store as a Sink: decodes each spooled telemetry batch and alert
// again (the spool keeps payloads as received) and writes them to the TimeseriesStore in one
// transaction per deliver(), then syncs before answering Delivered (see the store's "Durable
// when": the spool may forget a record only once it is on disk here).
//
// Outcomes: a payload that no longer decodes is Rejected (the verifier decoded it once, so this
// means the spool or the codec changed under it); "sqlite_error" and "disk_full" make the whole
// call Retry. Readings the store refuses by value (expired, far future, non-finite) are still
// Delivered: the store counts them, and retrying would not change its mind.
//
// Sensor tables arrive with Status births, which the spool does not carry: setSensors() may be
// called from any thread and is applied on the worker's thread at the next deliver() or tick(),
// before any write, so a series query names sensors by the latest birth seen.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tern/ingest/sink.h"
#include "tern/ingest/timeseries_store.h"

namespace tern::ingest {

class TimeseriesSink final : public Sink {
public:
    // name: the cursor and metrics name, "tsdb" by default in the daemon.
    TimeseriesSink(std::string name, std::unique_ptr<TimeseriesStore> store);

    const std::string& name() const override { return name_; }
    void deliver(std::vector<SpoolRecord> records, SinkCompletion done) override;
    // Applies pending sensor tables; runs enforceRetention() at most once an hour.
    void tick() override;

    void setSensors(std::string gateway_id, std::vector<shared::SensorInfo> sensors);

    TimeseriesStore& store() { return *store_; }

private:
    void applyPendingSensors();

    std::string name_;
    std::unique_ptr<TimeseriesStore> store_;
    std::mutex pending_mutex_;
    std::vector<std::pair<std::string, std::vector<shared::SensorInfo>>> pending_sensors_;
    std::int64_t last_retention_ms_ = 0;
};

}  // namespace tern::ingest
