#pragma once

#include "tern/shared/config.h"
#include "tern/shared/logging.h"

namespace tern::ingest {

// The tern-ingest configuration file; one table per component. Later components add their tables
// here.
struct IngestConfig {
    shared::LogConfig log;
};

shared::ConfigTable<IngestConfig> configSchema();

}  // namespace tern::ingest
