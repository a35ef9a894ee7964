#pragma once

// The supervisor: gives every gateway its certificate, starts the worker processes (at most
// gateways_per_worker gateways each, so each stays under Paho's select() limit) and watches them,
// applies broker outages, shows progress, writes the final report and runs --verify.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tern/sim/config.h"
#include "tern/sim/plan.h"

namespace tern::sim {

struct RunOptions {
    std::string config_path;
    std::string report_path;  // "" -> <state_dir>/report.json
    std::string verify_url;   // "" -> no verification
    std::string verify_token;
    // The command line's overrides, passed on to every worker.
    std::vector<std::string> worker_args;
};

int runSupervisor(const SimConfig& config, const FleetPlan& plan, const RunOptions& options,
                  const std::string& program);

}  // namespace tern::sim
