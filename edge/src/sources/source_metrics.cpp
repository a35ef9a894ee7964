#include "tern/edge/sources/source_metrics.h"

#include <string>

namespace tern::edge {

shared::Counter& sourceSamplesCounter(shared::MetricsRegistry& registry, std::string_view source) {
    return registry.counter(kSourceSamplesMetric, "Samples a source handed to the pipeline",
                            {{"source", std::string(source)}});
}

shared::Counter& sourceErrorsCounter(shared::MetricsRegistry& registry, std::string_view source,
                                     std::string_view reason) {
    return registry.counter(kSourceErrorsMetric, "Readings a source lost, by reason",
                            {{"source", std::string(source)}, {"reason", std::string(reason)}});
}

}  // namespace tern::edge
