#pragma once

#include "tern/shared/config.h"
#include "tern/shared/logging.h"

namespace tern::edge {

// The tern-edge configuration file; one table per component. Later components add their tables
// here.
struct EdgeConfig {
    shared::LogConfig log;
};

shared::ConfigTable<EdgeConfig> configSchema();

}  // namespace tern::edge
