#pragma once

// The tern-edge daemon: sources -> rules -> downsampling -> batcher -> store -> uplink, on one
// Boost.Asio io_context (SQLite commits run on it; nothing on it waits for the network).
//
//   SIGTERM / SIGINT  stop the sources, seal the open batch into the store, publish the death
//                     status, disconnect; exit 0.
//   SIGHUP            reload the config file: rules and log level take effect at once; other
//                     changes are reported as needing a restart.
//   systemd           READY=1 once running, WATCHDOG=1 while the loop turns, STOPPING=1.
//
// Every message committed to the store is logged at debug level as
// "stored <lane> epoch=<e> seq=<s> readings=<n>", which the crash tests reconcile against.

#include <string>

#include "tern/edge/config.h"

namespace tern::edge {

// Runs until SIGTERM/SIGINT; returns the process exit status.
int runAgent(const EdgeConfig& config, const std::string& config_path);

}  // namespace tern::edge
