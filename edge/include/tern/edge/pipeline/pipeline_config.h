#pragma once

// Configuration of the batcher ([batch]) and of anomaly context ([anomaly_context]).

#include <chrono>
#include <cstdint>

#include "tern/edge/pipeline/batcher.h"
#include "tern/edge/pipeline/pipeline.h"
#include "tern/shared/config.h"

namespace tern::edge {

struct BatchConfig {
    std::int64_t max_readings = 1000;
    std::uint64_t max_bytes = 64 * shared::kKiB;
    std::chrono::milliseconds max_age{10'000};

    BatchLimits limits() const {
        return BatchLimits{static_cast<std::size_t>(max_readings),
                           static_cast<std::size_t>(max_bytes), max_age};
    }
};

struct AnomalyContextConfig {
    std::chrono::milliseconds before{60'000};
    std::chrono::milliseconds after{60'000};
    std::int64_t max_samples = 600;

    ContextWindow window() const {
        return ContextWindow{before, after, static_cast<std::size_t>(max_samples)};
    }
};

shared::ConfigTable<BatchConfig> batchTable();
shared::ConfigTable<AnomalyContextConfig> anomalyContextTable();

}  // namespace tern::edge
