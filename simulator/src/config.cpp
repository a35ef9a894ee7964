#include "tern/sim/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <set>

#include "tern/edge/pipeline/pipeline_config.h"
#include "tern/edge/rules/rule_config.h"

namespace tern::sim {

using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kMaxGateways = 100'000;
constexpr std::array kSensorFaults = {"spike", "drift", "stuck", "dropout"};

shared::ConfigTable<FleetConfig> fleetTable() {
    return shared::ConfigTable<FleetConfig>("fleet", "The virtual gateways and the run")
        .integer("gateways", &FleetConfig::gateways, 10, {1, kMaxGateways}, "gateways",
                 "How many virtual gateways run")
        .string("id_prefix", &FleetConfig::id_prefix, "sim-gw-",
                "Gateway ids are this prefix and a five-digit number from 00001")
        .integer("seed", &FleetConfig::seed, 1, {0, std::numeric_limits<std::int64_t>::max()}, "",
                 "Everything random (sensor noise, which gateways a fault hits) follows from it; "
                 "--seed overrides it")
        .duration("duration", &FleetConfig::duration, 0ms, {0ms, 24h * 365},
                  "How long the fleet produces readings; 0 runs until SIGINT/SIGTERM. --duration "
                  "overrides it")
        .duration("start_spread", &FleetConfig::start_spread, 5s, {0ms, 1h},
                  "Gateways power on at times spread evenly over this span, as a real fleet does")
        .integer("gateways_per_worker", &FleetConfig::gateways_per_worker, 250, {1, 900},
                 "gateways",
                 "Gateways per worker process. Paho's client uses select(), so one process holds "
                 "fewer than 1024 sockets; disk stores take three descriptors each on top")
        .string("store", &FleetConfig::store, "memory",
                "Where each gateway's SQLite store lives: in memory, or files under state_dir "
                "(synchronous=FULL, as on a board)",
                {.one_of = {"memory", "disk"}})
        .string("state_dir", &FleetConfig::state_dir, ".tern-sim",
                "Disk stores and the default report file")
        .byteSize("store_max_bytes", &FleetConfig::store_max_bytes, 16 * shared::kMiB,
                  {64 * shared::kKiB, 64 * shared::kGiB}, "Each gateway's store bound")
        .duration("store_max_age", &FleetConfig::store_max_age, 24h, {1min, 24h * 365},
                  "Each gateway's store evicts messages older than this")
        .duration("drain_timeout", &FleetConfig::drain_timeout, 60s, {0ms, 1h},
                  "At the end, how long the gateways may take to have everything receipted")
        .number("vary", &FleetConfig::vary, 0.1, {0.0, 1.0}, "fraction",
                "Per-gateway spread of every sensor's base and amplitude, so the fleet is not "
                "one series repeated")
        .string("gateway_log_level", &FleetConfig::gateway_log_level, "warn",
                "Log level inside worker processes (hundreds of gateways each)",
                {.one_of = {"trace", "debug", "info", "warn", "error", "critical", "off"}});
}

shared::ConfigTable<BrokerConfig> brokerTable() {
    return shared::ConfigTable<BrokerConfig>("broker",
                                             "The MQTT broker, the PKI and the gateways' uplink")
        .string("url", &BrokerConfig::url, "ssl://127.0.0.1:8883",
                "Broker URL for every gateway; ssl:// only")
        .string("pki_dir", &BrokerConfig::pki_dir, ".demo/pki",
                "A scripts/pki directory: ca.crt, ca.key; each gateway's certificate is made "
                "into clients/<id>.crt and .key when missing (CN = gateway id)")
        .integer("pid", &BrokerConfig::pid, 0, {0, std::numeric_limits<std::int32_t>::max()}, "",
                 "The broker's process id, for broker_outage faults (SIGSTOP, then SIGCONT); "
                 "--broker-pid overrides it")
        .duration("keepalive", &BrokerConfig::keepalive, 30s, {5s, 30min},
                  "Each gateway's MQTT keep-alive")
        .duration("reconnect_min", &BrokerConfig::reconnect_min, 1s, {100ms, 10min},
                  "Each gateway's first reconnect delay bound (full jitter)")
        .duration("reconnect_max", &BrokerConfig::reconnect_max, 30s, {1s, 1h},
                  "Each gateway's largest reconnect delay bound")
        .integer("inflight_window", &BrokerConfig::inflight_window, 16, {1, 1000}, "messages",
                 "Each gateway's unreceipted messages in flight")
        .duration("receipt_timeout", &BrokerConfig::receipt_timeout, 30s, {1s, 1h},
                  "Each gateway resends what was not receipted within this");
}

shared::ConfigTable<edge::EdgeConfig> gatewayTable() {
    return shared::ConfigTable<edge::EdgeConfig>(
               "gateway",
               "What every virtual gateway runs: the edge agent's [[sensor]] (source "
               "\"simulated\"), [[rule]], [batch] and [anomaly_context] tables")
        .tables(&edge::EdgeConfig::sensors, edge::sensorTable())
        .tables(&edge::EdgeConfig::rules, edge::ruleTable())
        .table(&edge::EdgeConfig::batch, edge::batchTable())
        .table(&edge::EdgeConfig::anomaly_context, edge::anomalyContextTable());
}

shared::ConfigTable<FaultConfig> faultTable() {
    return shared::ConfigTable<FaultConfig>("fault", "One event on the run's timeline")
        .string("kind", &FaultConfig::kind, "",
                "spike, drift, stuck, dropout (a sensor's); network_outage, reboot (the store "
                "survives), broker_outage, clock_skew, boot_1970 (the clock reads 1970 until it "
                "syncs)",
                {.one_of = {"spike", "drift", "stuck", "dropout", "network_outage", "reboot",
                            "broker_outage", "clock_skew", "boot_1970"}})
        .required()
        .duration("at", &FaultConfig::at, 0ms, {0ms, 24h * 365}, "When, since the run started")
        .duration("duration", &FaultConfig::duration, 0ms, {0ms, 24h * 365},
                  "How long: an outage, a reboot's downtime, a sensor fault (0: a spike's one "
                  "reading, otherwise to the end); boot_1970: until the clock syncs")
        .number("fraction", &FaultConfig::fraction, 1.0, {0.0, 1.0}, "fraction",
                "Share of the fleet it hits, picked from the seed")
        .integer("count", &FaultConfig::count, 0, {0, kMaxGateways}, "gateways",
                 "Exact number of gateways it hits instead of fraction; 0 uses fraction")
        .string("sensor", &FaultConfig::sensor, "", "Sensor faults: the sensor's name")
        .number("magnitude", &FaultConfig::magnitude, 0.0, {-1e12, 1e12}, "",
                "spike: added to the reading; drift: added per hour")
        .duration("skew", &FaultConfig::skew, 0ms, {0ms, 24h * 365},
                  "clock_skew: how far the gateway's clock is off from `at` on")
        .boolean("behind", &FaultConfig::behind, false,
                 "clock_skew: the clock is behind rather than ahead");
}

}  // namespace

std::vector<edge::SensorConfig> seedSensors() {
    auto sensor = [](std::string name, std::string unit, std::string kind, std::string model,
                     double base, double amplitude, double noise, double step, double resolution) {
        edge::SensorConfig s;
        s.name = std::move(name);
        s.unit = std::move(unit);
        s.kind = std::move(kind);
        s.source = "simulated";
        s.interval = 1s;
        s.simulated.model = std::move(model);
        s.simulated.base = base;
        s.simulated.amplitude = amplitude;
        s.simulated.period = 10min;
        s.simulated.noise = noise;
        s.simulated.step = step;
        s.simulated.resolution = resolution;
        return s;
    };
    return {sensor("temperature", "Cel", "temperature", "sine", 21.0, 1.5, 0.05, 0.0, 0.01),
            sensor("humidity", "%", "humidity", "random_walk", 45.0, 10.0, 0.0, 0.05, 0.1),
            sensor("vibration", "g", "vibration", "constant", 0.003, 0.0, 0.001, 0.0, 0.001),
            sensor("power_consumption", "W", "power", "sine", 120.0, 15.0, 1.5, 0.0, 0.1)};
}

bool isSensorFault(const std::string& kind) {
    return std::find(kSensorFaults.begin(), kSensorFaults.end(), kind) != kSensorFaults.end();
}

shared::ConfigTable<SimConfig> configSchema() {
    return shared::ConfigTable<SimConfig>("", "tern-sim scenario")
        .table(&SimConfig::log, shared::logTable())
        .table(&SimConfig::fleet, fleetTable())
        .table(&SimConfig::broker, brokerTable())
        .table(&SimConfig::gateway, gatewayTable())
        .tables(&SimConfig::faults, faultTable());
}

shared::ConfigErrors validateSimConfig(const SimConfig& config, const std::string& file) {
    shared::ConfigErrors errors;
    auto add = [&](std::string key, std::string message) {
        errors.push_back(shared::ConfigError{file, 0, 0, std::move(key), std::move(message)});
    };
    // The template must pass the edge agent's own checks, as each gateway will run it.
    edge::EdgeConfig probe = config.gateway;
    if (probe.sensors.empty()) probe.sensors = seedSensors();
    probe.uplink.gateway_id = config.fleet.id_prefix + "00001";
    probe.uplink.broker = config.broker.url;
    probe.agent.status_listen.clear();
    for (auto& error : edge::validateEdgeConfig(probe, file)) {
        if (error.key.starts_with("uplink.gateway_id")) {
            add("fleet.id_prefix", "gateway ids made from it are not valid: " + error.message);
        } else if (error.key.starts_with("uplink.broker")) {
            add("broker.url", error.message);
        } else {
            error.key = "gateway." + error.key;
            errors.push_back(std::move(error));
        }
    }
    std::set<std::string> sensors;
    for (std::size_t i = 0; i < probe.sensors.size(); ++i) {
        const auto& sensor = probe.sensors[i];
        sensors.insert(sensor.name);
        if (sensor.source != "simulated") {
            add(fmt::format("gateway.sensor[{}].source", i),
                "a virtual gateway's sensors are simulated; got \"" + sensor.source + "\"");
        }
    }
    for (std::size_t i = 0; i < config.faults.size(); ++i) {
        const auto& fault = config.faults[i];
        const auto path = fmt::format("fault[{}]", i);
        if (isSensorFault(fault.kind)) {
            if (!sensors.contains(fault.sensor)) {
                add(path + ".sensor", "\"" + fault.sensor + "\" is not a [[gateway.sensor]]");
            }
        } else if (!fault.sensor.empty()) {
            add(path + ".sensor", "only sensor faults name a sensor");
        }
        if ((fault.kind == "network_outage" || fault.kind == "reboot" ||
             fault.kind == "broker_outage" || fault.kind == "boot_1970") &&
            fault.duration <= 0ms) {
            add(path + ".duration", fault.kind + " needs a duration above 0");
        }
        if (fault.kind == "boot_1970" && fault.at != 0ms) {
            add(path + ".at", "boot_1970 happens at power-on: at must be 0");
        }
        if (fault.kind == "clock_skew" && fault.skew <= 0ms) {
            add(path + ".skew", "clock_skew needs a skew above 0");
        }
    }
    return errors;
}

}  // namespace tern::sim
