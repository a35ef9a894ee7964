#pragma once

// Switches the agent to the kernel clock once it is synchronised, and corrects what was stored
// before: seal the open batch (so no batch mixes the two time lines), switch, re-stamp.

#include <functional>

#include "tern/edge/agent/clock_sync.h"
#include "tern/edge/store/store.h"
#include "tern/shared/metrics.h"

namespace tern::edge {

class ClockSyncWatch {
public:
    ClockSyncWatch(SyncAwareClock& clock, const ClockSyncSource& source, Store& store,
                   std::function<void()> seal_open_batch, shared::MetricsRegistry& metrics);

    // Call periodically (the agent: every second). True when it switched on this call.
    bool check();

private:
    SyncAwareClock& clock_;
    const ClockSyncSource& source_;
    Store& store_;
    std::function<void()> seal_open_batch_;
    shared::Gauge& synced_;
    shared::Counter& restamped_;
};

}  // namespace tern::edge
