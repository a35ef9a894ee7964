#pragma once

// A worker process: runs a slice of the fleet's virtual gateways on one io_context and reports to
// the supervisor on stdout, one JSON object per line:
//   {"type":"progress","gateways":n,"connected":n,"produced":n,"backlog":n,"alerts":n}  each second
//   {"type":"gateway", ...GatewayReport...}                                     one per gateway
//   {"type":"done"}                                                             last
// Logs go to stderr. SIGTERM (or the end of the run) stops the sensors, waits up to drain_timeout
// for every store to be receipted empty, then disconnects and reports.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tern/sim/config.h"
#include "tern/sim/plan.h"

namespace tern::sim {

// What one virtual gateway did, over all its boots.
struct GatewayReport {
    std::string id;
    std::uint64_t produced = 0;   // readings its pipeline handed to the store
    std::uint64_t evicted = 0;    // readings the store dropped (evicted or failed), by any reason
    std::uint64_t sent = 0;       // messages published
    std::uint64_t receipted = 0;  // messages deleted on a receipt
    std::uint64_t backlog = 0;    // messages still in the store at the end
    std::uint64_t alerts = 0;     // alerts stored (rules and the agent's own)
    std::uint64_t connects = 0;
    std::uint64_t boots = 0;
    std::string error;  // why it could not run, if it could not
};

struct WorkerSlice {
    std::size_t first = 0;  // gateway index
    std::size_t count = 0;
    std::int64_t run_start_unix_ms = 0;  // the shared timeline's zero
};

// The identity files of a gateway in the PKI directory (scripts/pki's layout).
std::string gatewayCertFile(const SimConfig& config, const std::string& id);
std::string gatewayKeyFile(const SimConfig& config, const std::string& id);

int runWorker(const SimConfig& config, const FleetPlan& plan, const WorkerSlice& slice);

}  // namespace tern::sim
