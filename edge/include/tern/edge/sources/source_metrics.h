#pragma once

// The counters every source reports, declared in one place so that their names and help texts
// agree (the registry rejects a family registered twice with different help):
//   tern_edge_source_samples_total{source}         samples handed to the sink
//   tern_edge_source_errors_total{source, reason}  readings lost, and why
// A source registers each (source, reason) series it can produce in its constructor, so the
// series exist at zero from startup and the hot path only increments a kept reference.

#include <string_view>

#include "tern/shared/metrics.h"

namespace tern::edge {

inline constexpr std::string_view kSourceSamplesMetric = "tern_edge_source_samples_total";
inline constexpr std::string_view kSourceErrorsMetric = "tern_edge_source_errors_total";

shared::Counter& sourceSamplesCounter(shared::MetricsRegistry& registry, std::string_view source);
shared::Counter& sourceErrorsCounter(shared::MetricsRegistry& registry, std::string_view source,
                                     std::string_view reason);

}  // namespace tern::edge
