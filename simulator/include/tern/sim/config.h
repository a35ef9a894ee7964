#pragma once

#include "tern/shared/config.h"
#include "tern/shared/logging.h"

namespace tern::sim {

// The tern-sim configuration file; one table per component. Later components add their tables here.
struct SimConfig {
    shared::LogConfig log;
};

shared::ConfigTable<SimConfig> configSchema();

}  // namespace tern::sim
