#pragma once

// One gateway's edge data path, from its sensors to the network: the sources, rules and
// downsampling (EdgeAssembly), the sink that commits sealed batches and alerts to the store, the
// uplink, and the periodic work (pipeline ticks, store limits, the clock-sync watch).
//
// tern-edge runs one inside its daemon (signals, status endpoint, systemd); tern-sim runs
// hundreds per worker process on one io_context, each with its own store, clock and MQTT client.
// The store and the clock belong to the caller because they outlive a gateway's run: a rebooted
// gateway starts again on the store it left.
//
// Threads: everything runs on the io_context's thread; the counters may be read from any thread.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>

#include "tern/edge/agent/clock_sync.h"
#include "tern/edge/assembly.h"
#include "tern/edge/config.h"
#include "tern/edge/store/store.h"
#include "tern/edge/uplink/uplink.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// What the gateway handed to its store since it was created.
struct GatewayCounts {
    std::uint64_t batches_stored = 0;
    std::uint64_t readings_stored = 0;
    // Readings of batches the store could not take; the store counts them as "store_failed" drops.
    std::uint64_t readings_failed = 0;
    std::uint64_t alerts_stored = 0;
};

class EdgeGateway {
public:
    // Creates the uplink first (Paho's select() limit: its socket should get a low descriptor),
    // then builds the data path. Raises a "store.recovered" alert if the store replaced a corrupt
    // file. Errors: the uplink's (certificates) and the assembly's (rules).
    static shared::Result<std::unique_ptr<EdgeGateway>> create(boost::asio::io_context& io,
                                                               const EdgeConfig& config,
                                                               Store& store, SyncAwareClock& clock,
                                                               const ClockSyncSource& sync,
                                                               shared::MetricsRegistry& metrics);
    ~EdgeGateway();
    EdgeGateway(const EdgeGateway&) = delete;
    EdgeGateway& operator=(const EdgeGateway&) = delete;

    // Connects and starts the sources and the periodic work.
    void start();
    // Stops the sources and seals the open batch into the store; the uplink goes on sending (a
    // simulator's run ends this way, then waits for the receipts).
    void stopSources();
    // Stops the sources, seals the open batch into the store, publishes the death status and
    // disconnects (waiting at most `timeout`), and stops the periodic work.
    void stop(std::chrono::milliseconds timeout);

    // SIGHUP: new rules take effect at once, unchanged rules keep their state.
    shared::VoidResult reloadRules(const EdgeConfig& config);

    Uplink& uplink();
    EdgeAssembly& assembly();
    GatewayCounts counts() const;

private:
    struct Impl;
    explicit EdgeGateway(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The Status a gateway reports: firmware, sensor table, clock state, backlog and drops.
shared::GatewayStatus gatewayStatus(const EdgeConfig& config, const Store& store,
                                    const SyncAwareClock& clock);

// StoreOptions for config.store and config.uplink (gateway id, payload limit), with this boot.
StoreOptions storeOptions(const EdgeConfig& config, std::uint64_t boot_id);

}  // namespace tern::edge
