#include "tern/edge/agent/clock_watch.h"

#include <spdlog/spdlog.h>

namespace tern::edge {

ClockSyncWatch::ClockSyncWatch(SyncAwareClock& clock, const ClockSyncSource& source, Store& store,
                               std::function<void()> seal_open_batch,
                               shared::MetricsRegistry& metrics)
    : clock_(clock),
      source_(source),
      store_(store),
      seal_open_batch_(std::move(seal_open_batch)),
      synced_(metrics.gauge("tern_edge_clock_synced",
                            "1 once the kernel reports the wall clock synchronised")),
      restamped_(metrics.counter(
          "tern_edge_clock_restamped_total",
          "Stored messages whose timestamps were corrected when the clock synchronised")) {
    synced_.set(clock_.synced() ? 1 : 0);
}

bool ClockSyncWatch::check() {
    if (clock_.synced() || !source_.synced()) return false;
    if (seal_open_batch_) seal_open_batch_();
    clock_.markSynced();
    synced_.set(1);
    auto restamped = store_.restamp();
    if (!restamped) {
        spdlog::error("clock synchronised, but re-stamping failed: {}",
                      restamped.error().message());
        return true;
    }
    restamped_.inc(restamped.value().restamped);
    spdlog::info(
        "clock synchronised: re-stamped {} stored messages; {} from an earlier boot stay flagged "
        "unsynchronised; {} could not be re-encoded",
        restamped.value().restamped, restamped.value().unrecoverable, restamped.value().failed);
    return true;
}

}  // namespace tern::edge
