#include "tern/edge/pipeline/pipeline_config.h"

namespace tern::edge {

using namespace std::chrono_literals;

shared::ConfigTable<BatchConfig> batchTable() {
    return shared::ConfigTable<BatchConfig>(
               "batch", "When an open telemetry batch is sealed: whichever limit comes first")
        .integer(
            "max_readings", &BatchConfig::max_readings, 1000, {1, 1024}, "readings",
            "Readings in one batch (a decoder accepts at most 1024 series and 1024 aggregates)")
        .byteSize(
            "max_bytes", &BatchConfig::max_bytes, 64 * shared::kKiB,
            {4 * shared::kKiB, 256 * shared::kKiB},
            "Worst-case encoded size of one batch (24 bytes a reading); keep it under the broker's "
            "message_size_limit")
        .duration(
            "max_age", &BatchConfig::max_age, 10s, {100ms, 1h},
            "Time from a batch's first reading to its sealing: the most a reading waits in memory");
}

shared::ConfigTable<AnomalyContextConfig> anomalyContextTable() {
    return shared::ConfigTable<AnomalyContextConfig>(
               "anomaly_context",
               "Raw readings sent around a firing rule, for sensors that are otherwise downsampled")
        .duration("before", &AnomalyContextConfig::before, 60s, {0ms, 1h},
                  "Raw readings from this long before the rule fired")
        .duration("after", &AnomalyContextConfig::after, 60s, {0ms, 1h},
                  "Raw readings for this long after the rule fired")
        .integer("max_samples", &AnomalyContextConfig::max_samples, 600, {1, 100'000}, "readings",
                 "Raw readings kept per downsampled sensor for 'before'; the oldest go first");
}

}  // namespace tern::edge
