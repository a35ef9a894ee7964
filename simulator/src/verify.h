#pragma once

// --verify: reconciles a finished run with tern-ingest's HTTP API. For every gateway the readings
// stored (the raw series of each sensor) must equal what it produced minus what its store evicted,
// with no two readings of a sensor at one timestamp; its alerts stored must equal the alerts it
// raised; and every injected anomaly on a sensor with a rule must have a firing alert on that
// sensor. The ingest's sinks run behind its spool, so mismatches are retried until `timeout`.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tern/sim/plan.h"
#include "worker.h"

namespace tern::sim {

struct VerifyOptions {
    std::string url;    // http://host:port of the ingest API
    std::string token;  // bearer token, if the API needs one
    std::int64_t from_ms = 0;
    std::int64_t to_ms = 0;
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
};

struct GatewayVerdict {
    std::string id;
    std::uint64_t expected_readings = 0;
    std::uint64_t stored_readings = 0;
    std::uint64_t duplicate_readings = 0;
    std::uint64_t expected_alerts = 0;
    std::uint64_t stored_alerts = 0;
    std::uint64_t anomalies_expected = 0;
    std::uint64_t anomalies_alerted = 0;
    std::string problem;  // empty when it reconciles
};

struct VerifyResult {
    bool ok = false;
    std::string error;  // the API could not be asked (then ok is false and verdicts may be partial)
    std::vector<GatewayVerdict> verdicts;
};

VerifyResult verifyRun(const FleetPlan& plan, const std::vector<GatewayReport>& reports,
                       const VerifyOptions& options);

}  // namespace tern::sim
