#pragma once

// The tern-edge configuration file: one table per component.
//
//   [log] [sysfs] [line_protocol] [[modbus_device]]      program and source-wide settings
//   [[sensor]]  name, unit, kind, source, interval, with [sensor.<source>] and
//               [sensor.downsample] subtables
//   [[rule]]    local anomaly rules (docs/edge-rules.md)
//   [batch] [anomaly_context]                             the pipeline (docs/edge-pipeline.md)
//   [store] [uplink] [agent]                              store-and-forward, MQTT, the daemon

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tern/edge/downsample/downsample.h"
#include "tern/edge/pipeline/pipeline_config.h"
#include "tern/edge/rules/rule_config.h"
#include "tern/edge/sources/line_protocol_source.h"
#include "tern/edge/sources/modbus_source.h"
#include "tern/edge/sources/sensor_binding.h"
#include "tern/edge/sources/simulated_source.h"
#include "tern/edge/sources/sysfs_source.h"
#include "tern/edge/store/store.h"
#include "tern/edge/uplink/uplink.h"
#include "tern/shared/config.h"
#include "tern/shared/http_server.h"
#include "tern/shared/logging.h"

namespace tern::edge {

struct SensorConfig {
    std::string name;
    std::string unit;
    std::string kind = "other";
    std::string source;  // sysfs | line | modbus | simulated
    std::chrono::milliseconds interval{1000};
    SysfsSensorConfig sysfs;
    LineSensorConfig line;
    ModbusSensorConfig modbus;
    SimulatedSensorConfig simulated;
    DownsampleConfig downsample;
};

// [agent]: the daemon around the pipeline.
struct AgentConfig {
    std::string clock_sync = "adjtimex";           // adjtimex | always | never
    std::string status_listen = "127.0.0.1:9464";  // "" disables; port 0 picks a free one
    std::chrono::milliseconds shutdown_timeout{5000};
    std::chrono::milliseconds tick_interval{250};
};

shared::ConfigTable<AgentConfig> agentTable();

struct EdgeConfig {
    shared::LogConfig log;
    SysfsConfig sysfs;
    LineProtocolConfig line_protocol;
    std::vector<ModbusDeviceConfig> modbus_devices;
    std::vector<SensorConfig> sensors;
    std::vector<RuleConfig> rules;
    BatchConfig batch;
    AnomalyContextConfig anomaly_context;
    StoreConfig store;
    UplinkConfig uplink;
    AgentConfig agent;
};

shared::ConfigTable<SensorConfig> sensorTable();
shared::ConfigTable<EdgeConfig> configSchema();

// What the tables cannot check: unique sensor names, at most 65536 sensors, each sensor's
// source-specific and downsampling settings, rules naming known sensors. Every problem at once;
// keys are dotted paths such as sensor[2].downsample.error.
shared::ConfigErrors validateEdgeConfig(const EdgeConfig& config, const std::string& file);

shared::SensorKind sensorKindOf(const SensorConfig& sensor);

using shared::parseListenAddress;

// The sensors read by one source, with their indexes and source-specific settings.
template <class PerSensor>
std::vector<SensorBinding<PerSensor>> sensorBindings(const EdgeConfig& config,
                                                     std::string_view source,
                                                     PerSensor SensorConfig::*member) {
    std::vector<SensorBinding<PerSensor>> bindings;
    for (std::size_t i = 0; i < config.sensors.size(); ++i) {
        const auto& sensor = config.sensors[i];
        if (sensor.source == source) {
            bindings.push_back({static_cast<std::uint16_t>(i), sensor.*member, sensor.interval});
        }
    }
    return bindings;
}

}  // namespace tern::edge
