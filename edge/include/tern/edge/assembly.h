#pragma once

// Builds the edge data path from a validated EdgeConfig: the sources, the rule engine and the
// pipeline they feed. The daemon owns one; the benchmark and end-to-end tests build one too.

#include <memory>
#include <vector>

#include "tern/edge/config.h"
#include "tern/edge/pipeline/pipeline.h"
#include "tern/edge/rules/rule_engine.h"
#include "tern/edge/source.h"
#include "tern/shared/clock.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

class EdgeAssembly {
public:
    // config must have passed validateEdgeConfig; rules naming unknown sensors are an error here.
    static shared::Result<std::unique_ptr<EdgeAssembly>> build(const EdgeConfig& config,
                                                               const shared::Clock& clock,
                                                               shared::MetricsRegistry& metrics,
                                                               BatchSink& batches,
                                                               AlertSink& alerts);

    Pipeline& pipeline() { return *pipeline_; }
    RuleEngine& rules() { return *rules_; }
    const std::vector<std::unique_ptr<Source>>& sources() const { return sources_; }

    // Starts every source on io; samples go to the pipeline.
    void start(boost::asio::io_context& io);
    void stop();

    // New rules from a reloaded config (SIGHUP): unchanged rules keep their state.
    shared::VoidResult reloadRules(const EdgeConfig& config);

private:
    EdgeAssembly() = default;

    std::vector<std::string> sensor_names_;
    std::unique_ptr<RuleEngine> rules_;
    std::unique_ptr<Pipeline> pipeline_;
    std::vector<std::unique_ptr<Source>> sources_;
};

}  // namespace tern::edge
