#pragma once

// The fleet a scenario describes, worked out in full before anything runs: every gateway's id,
// power-on time, sensors (seeded and varied per gateway) and its share of the fault timeline.
//
// Deterministic: the same scenario and seed give the same plan, and since each simulated sensor
// draws from its own seeded generator, the same readings. Each worker process plans the whole
// fleet and runs its slice; the supervisor plans it too, to apply broker outages and to verify.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tern/edge/config.h"
#include "tern/sim/config.h"

namespace tern::sim {

struct Interval {
    std::chrono::milliseconds at{0};  // since the run started
    std::chrono::milliseconds duration{0};
    std::chrono::milliseconds end() const { return at + duration; }
    friend bool operator==(const Interval&, const Interval&) = default;
};

// The gateway's clock is `offset` away from true time from `at` on (positive: ahead).
struct ClockStep {
    std::chrono::milliseconds at{0};
    std::chrono::milliseconds offset{0};
    friend bool operator==(const ClockStep&, const ClockStep&) = default;
};

// A sensor fault put into a gateway; a rule on that sensor should raise an alert for it.
struct InjectedAnomaly {
    std::string sensor;
    std::uint16_t sensor_index = 0;
    std::string kind;
    std::chrono::milliseconds at{0};
    // A spike on a sensor with a rule while the gateway runs: --verify expects an alert.
    bool expect_alert = false;
    friend bool operator==(const InjectedAnomaly&, const InjectedAnomaly&) = default;
};

struct GatewayPlan {
    std::size_t index = 0;
    std::string id;
    std::chrono::milliseconds power_on{0};
    // Sensors, rules, batching; sensor fault starts count from the run's start (bootConfig makes
    // them relative to a boot). Uplink, store and agent settings are the worker's to fill in.
    edge::EdgeConfig config;
    std::vector<Interval> network_outages;
    std::vector<Interval> reboots;  // the gateway is off for the interval
    std::vector<ClockStep> clock_steps;
    std::optional<std::chrono::milliseconds> clock_sync_at;  // boot_1970: reads 1970 until then
    std::vector<InjectedAnomaly> anomalies;
};

struct FleetPlan {
    std::size_t first = 0;  // gateways[i] is the gateway with index first + i
    std::vector<GatewayPlan> gateways;
    std::vector<Interval> broker_outages;
};

// The whole fleet, or only the gateways with index in [first, first + count) (a worker's slice;
// the fault timeline is still drawn over the whole fleet, so every slice agrees with the whole).
FleetPlan planFleet(const SimConfig& config, std::size_t first = 0,
                    std::size_t count = static_cast<std::size_t>(-1));

// "<prefix><index + 1, five digits>"
std::string gatewayId(const FleetConfig& fleet, std::size_t index);

// The edge config for a boot `since_start` into the run: sensor faults that are over are dropped,
// the others start relative to this boot; boot > 0 reseeds the sensors, so a rebooted gateway's
// readings go on rather than repeat.
edge::EdgeConfig bootConfig(const GatewayPlan& plan, std::chrono::milliseconds since_start,
                            unsigned boot);

// A well-mixed 64-bit hash of the values (SplitMix64 steps), for seeds and picks.
std::uint64_t mixSeed(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0);

}  // namespace tern::sim
