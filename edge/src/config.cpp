#include "tern/edge/config.h"

#include <fmt/format.h>

#include <array>
#include <boost/asio/ip/address_v4.hpp>
#include <map>
#include <utility>

namespace tern::edge {
namespace {

using namespace std::chrono_literals;

constexpr std::array<std::pair<std::string_view, shared::SensorKind>, 11> kSensorKinds{{
    {"other", shared::SensorKind::Other},
    {"temperature", shared::SensorKind::Temperature},
    {"humidity", shared::SensorKind::Humidity},
    {"pressure", shared::SensorKind::Pressure},
    {"voltage", shared::SensorKind::Voltage},
    {"current", shared::SensorKind::Current},
    {"power", shared::SensorKind::Power},
    {"vibration", shared::SensorKind::Vibration},
    {"fan", shared::SensorKind::Fan},
    {"level", shared::SensorKind::Level},
    {"flow", shared::SensorKind::Flow},
}};

std::vector<std::string> sensorKindNames() {
    std::vector<std::string> names;
    for (const auto& [name, kind] : kSensorKinds) names.emplace_back(name);
    return names;
}

// A source's validate() reports all of its problems in one Error; each line becomes an error.
void appendSourceErrors(const shared::VoidResult& result, const std::string& file,
                        shared::ConfigErrors& errors) {
    if (result) return;
    std::string_view detail = result.error().detail;
    while (!detail.empty()) {
        const auto end = detail.find('\n');
        const auto line = detail.substr(0, end);
        if (!line.empty()) errors.push_back({file, 0, 0, "sensor", std::string(line)});
        detail = end == std::string_view::npos ? std::string_view{} : detail.substr(end + 1);
    }
}

}  // namespace

shared::ConfigTable<SensorConfig> sensorTable() {
    return shared::ConfigTable<SensorConfig>(
               "sensor", "One sensor: where its readings come from and how they are reduced")
        .string("name", &SensorConfig::name, "",
                "Unique name; rules and the cloud refer to the sensor by it",
                {.check = [](const std::string& name) -> std::string {
                    return name.empty() || name.size() > 64 ? "must be 1 to 64 characters" : "";
                }})
        .required()
        .string("unit", &SensorConfig::unit, "",
                "Unit of the values, UCUM style (\"Cel\", \"%\", \"W\")")
        .string("kind", &SensorConfig::kind, "other", "What the sensor measures",
                {.one_of = sensorKindNames()})
        .string("source", &SensorConfig::source, "", "Where readings come from",
                {.one_of = {"sysfs", "line", "modbus", "simulated"}})
        .required()
        .duration("interval", &SensorConfig::interval, 1s, {10ms, 24h},
                  "How often a polled source reads the sensor (line protocol sensors push instead)")
        .table(&SensorConfig::sysfs, sysfsSensorTable())
        .table(&SensorConfig::line, lineSensorTable())
        .table(&SensorConfig::modbus, modbusSensorTable())
        .table(&SensorConfig::simulated, simulatedSensorTable())
        .table(&SensorConfig::downsample, downsampleTable());
}

shared::ConfigTable<EdgeConfig> configSchema() {
    return shared::ConfigTable<EdgeConfig>("", "tern-edge configuration")
        .table(&EdgeConfig::log, shared::logTable())
        .table(&EdgeConfig::sysfs, sysfsTable())
        .table(&EdgeConfig::line_protocol, lineProtocolTable())
        .tables(&EdgeConfig::modbus_devices, modbusDeviceTable())
        .tables(&EdgeConfig::sensors, sensorTable())
        .tables(&EdgeConfig::rules, ruleTable())
        .table(&EdgeConfig::batch, batchTable())
        .table(&EdgeConfig::anomaly_context, anomalyContextTable())
        .table(&EdgeConfig::store, storeTable())
        .table(&EdgeConfig::uplink, uplinkTable())
        .table(&EdgeConfig::agent, agentTable());
}

shared::ConfigTable<AgentConfig> agentTable() {
    using namespace std::chrono_literals;
    return shared::ConfigTable<AgentConfig>("agent", "The tern-edge daemon around the pipeline")
        .string("clock_sync", &AgentConfig::clock_sync, "adjtimex",
                "How the agent learns that the wall clock is right: the kernel's NTP state "
                "(adjtimex), or a fixed answer for boards with a trusted RTC (always) or tests "
                "(never)",
                {.one_of = {"adjtimex", "always", "never"}})
        .string("status_listen", &AgentConfig::status_listen, "127.0.0.1:9464",
                "address:port of the local /healthz and /metrics endpoint; empty disables it, "
                "port 0 picks a free one (logged)")
        .duration("shutdown_timeout", &AgentConfig::shutdown_timeout, 5s, {100ms, 5min},
                  "On SIGTERM: time allowed to publish the death status and disconnect")
        .duration("tick_interval", &AgentConfig::tick_interval, 250ms, {10ms, 10s},
                  "How often batches are checked for max_age and sources for missing data");
}

shared::ConfigErrors validateEdgeConfig(const EdgeConfig& config, const std::string& file) {
    shared::ConfigErrors errors;
    if (config.sensors.size() > 65536) {
        errors.push_back({file, 0, 0, "sensor", "more than 65536 sensors"});
        return errors;
    }
    std::map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < config.sensors.size(); ++i) {
        const auto& sensor = config.sensors[i];
        const auto path = fmt::format("sensor[{}]", i);
        if (auto [it, inserted] = seen.emplace(sensor.name, i); !inserted) {
            errors.push_back(
                {file, 0, 0, path + ".name",
                 fmt::format("\"{}\" is also the name of sensor[{}]", sensor.name, it->second)});
        }
        auto downsample_errors = validateDownsampleConfig(sensor.downsample, path + ".downsample");
        for (auto& error : downsample_errors) {
            error.file = file;
            errors.push_back(std::move(error));
        }
    }
    appendSourceErrors(
        SysfsSource::validate(config.sysfs, sensorBindings(config, "sysfs", &SensorConfig::sysfs)),
        file, errors);
    appendSourceErrors(
        LineProtocolSource::validate(config.line_protocol,
                                     sensorBindings(config, "line", &SensorConfig::line)),
        file, errors);
    appendSourceErrors(
        ModbusSource::validate(config.modbus_devices,
                               sensorBindings(config, "modbus", &SensorConfig::modbus)),
        file, errors);
    appendSourceErrors(
        SimulatedSource::validate(sensorBindings(config, "simulated", &SensorConfig::simulated)),
        file, errors);
    for (auto& error : validateUplinkConfig(config.uplink, file))
        errors.push_back(std::move(error));
    if (!config.agent.status_listen.empty() && !parseListenAddress(config.agent.status_listen)) {
        errors.push_back({file, 0, 0, "agent.status_listen",
                          "\"" + config.agent.status_listen +
                              "\" is not address:port (an IPv4 address and a port 0-65535)"});
    }
    for (const auto& message : validateRules(config.rules))
        errors.push_back({file, 0, 0, "rule", message});
    for (std::size_t i = 0; i < config.rules.size(); ++i) {
        if (seen.find(config.rules[i].sensor) == seen.end()) {
            errors.push_back({file, 0, 0, fmt::format("rule[{}].sensor", i),
                              fmt::format("rule \"{}\": unknown sensor \"{}\"", config.rules[i].id,
                                          config.rules[i].sensor)});
        }
    }
    return errors;
}

shared::SensorKind sensorKindOf(const SensorConfig& sensor) {
    for (const auto& [name, kind] : kSensorKinds) {
        if (name == sensor.kind) return kind;
    }
    return shared::SensorKind::Other;
}

}  // namespace tern::edge
