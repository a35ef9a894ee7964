#pragma once

// A tern-sim scenario: one TOML file (simulator/scenarios/, docs/simulator.md).
//
//   [log]                     the simulator's own diagnostics (stderr)
//   [fleet]                   how many gateways, their ids, the seed, how long, worker processes,
//                             where stores live
//   [broker]                  the MQTT broker, the PKI that gives every gateway its certificate,
//                             and the uplink settings every gateway uses
//   [gateway]                 what every virtual gateway runs: the edge agent's own [[sensor]]
//                             (source "simulated"), [[rule]], [batch] and [anomaly_context]
//                             tables, under [[gateway.sensor]], [[gateway.rule]], ...
//   [[fault]]                 the timeline: sensor faults, network outages, reboots, a broker
//                             outage, clock skew, a boot in 1970

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tern/edge/config.h"
#include "tern/shared/config.h"
#include "tern/shared/logging.h"

namespace tern::sim {

struct FleetConfig {
    std::int64_t gateways = 10;
    std::string id_prefix = "sim-gw-";
    std::int64_t seed = 1;
    std::chrono::milliseconds duration{0};  // 0: until SIGINT/SIGTERM
    std::chrono::milliseconds start_spread{std::chrono::seconds(5)};
    std::int64_t gateways_per_worker = 250;
    std::string store = "memory";  // memory | disk
    std::string state_dir = ".tern-sim";
    std::uint64_t store_max_bytes = 16 * shared::kMiB;
    std::chrono::milliseconds store_max_age{std::chrono::hours(24)};
    std::chrono::milliseconds drain_timeout{std::chrono::seconds(60)};
    double vary = 0.1;  // per-gateway spread of each sensor's base and amplitude (fraction)
    std::string gateway_log_level = "warn";
};

struct BrokerConfig {
    std::string url = "ssl://127.0.0.1:8883";
    std::string pki_dir = ".demo/pki";
    std::int64_t pid = 0;  // broker_outage stops and continues this process; 0: none
    std::chrono::milliseconds keepalive{std::chrono::seconds(30)};
    std::chrono::milliseconds reconnect_min{std::chrono::seconds(1)};
    std::chrono::milliseconds reconnect_max{std::chrono::seconds(30)};
    std::int64_t inflight_window = 16;
    std::chrono::milliseconds receipt_timeout{std::chrono::seconds(30)};
};

// [[fault]]: something that happens to part of the fleet at a time in the run.
struct FaultConfig {
    // Sensor faults (as the edge's simulated sensors have them): spike | drift | stuck | dropout.
    // Fleet faults: network_outage | reboot | broker_outage | clock_skew | boot_1970.
    std::string kind;
    std::chrono::milliseconds at{0};        // since the run started
    std::chrono::milliseconds duration{0};  // outage, downtime, fault length; boot_1970: until sync
    double fraction = 1.0;                  // of the fleet, picked from the seed
    std::int64_t count = 0;                 // exact number of gateways instead (0: use fraction)
    std::string sensor;                     // sensor faults: which sensor
    double magnitude = 0.0;                 // spike: added; drift: added per hour
    std::chrono::milliseconds skew{0};      // clock_skew: how far ahead the clock runs
    bool behind = false;                    // clock_skew: behind instead of ahead
};

struct SimConfig {
    shared::LogConfig log;
    FleetConfig fleet;
    BrokerConfig broker;
    edge::EdgeConfig gateway;
    std::vector<FaultConfig> faults;
};

shared::ConfigTable<SimConfig> configSchema();

// What the tables cannot check: simulated sources only, rules on known sensors, fault kinds and
// their sensors, a broker_outage needs [broker] pid, at most 100,000 gateways.
shared::ConfigErrors validateSimConfig(const SimConfig& config, const std::string& file);

bool isSensorFault(const std::string& kind);

// The seed schema's four sensors at 1 Hz (temperature, humidity, vibration, power_consumption):
// what a gateway runs when the scenario has no [[gateway.sensor]].
std::vector<edge::SensorConfig> seedSensors();

}  // namespace tern::sim
