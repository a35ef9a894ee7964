#include "tern/edge/assembly.h"

#include <algorithm>

#include "tern/edge/sources/line_protocol_source.h"
#include "tern/edge/sources/modbus_source.h"
#include "tern/edge/sources/simulated_source.h"
#include "tern/edge/sources/sysfs_source.h"

namespace tern::edge {
namespace {

shared::Result<std::vector<RuleSpec>> resolve(const EdgeConfig& config,
                                              const std::vector<std::string>& names) {
    return resolveRules(config.rules, [&](std::string_view name) -> std::optional<std::uint16_t> {
        const auto it = std::find(names.begin(), names.end(), name);
        if (it == names.end()) return std::nullopt;
        return static_cast<std::uint16_t>(it - names.begin());
    });
}

}  // namespace

shared::Result<std::unique_ptr<EdgeAssembly>> EdgeAssembly::build(const EdgeConfig& config,
                                                                  const shared::Clock& clock,
                                                                  shared::MetricsRegistry& metrics,
                                                                  BatchSink& batches,
                                                                  AlertSink& alerts) {
    std::unique_ptr<EdgeAssembly> assembly(new EdgeAssembly());
    for (const auto& sensor : config.sensors) assembly->sensor_names_.push_back(sensor.name);
    auto specs = resolve(config, assembly->sensor_names_);
    if (!specs) return std::move(specs).error();
    assembly->rules_ = std::make_unique<RuleEngine>(std::move(specs).value(), metrics);

    // Raw sensors get no downsampler, and so no anomaly-context buffer: all their readings go out.
    std::vector<std::unique_ptr<Downsampler>> downsamplers;
    for (std::size_t i = 0; i < config.sensors.size(); ++i) {
        const auto& downsample = config.sensors[i].downsample;
        downsamplers.push_back(parseDownsampleMode(downsample.mode) == DownsampleMode::Raw
                                   ? nullptr
                                   : makeDownsampler(downsample, static_cast<std::uint16_t>(i)));
    }
    assembly->pipeline_ = std::make_unique<Pipeline>(
        *assembly->rules_, std::move(downsamplers), config.anomaly_context.window(),
        config.batch.limits(), batches, alerts, metrics);

    if (auto sensors = sensorBindings(config, "sysfs", &SensorConfig::sysfs); !sensors.empty()) {
        assembly->sources_.push_back(
            std::make_unique<SysfsSource>(config.sysfs, std::move(sensors), clock, metrics));
    }
    if (auto sensors = sensorBindings(config, "line", &SensorConfig::line); !sensors.empty()) {
        assembly->sources_.push_back(std::make_unique<LineProtocolSource>(
            config.line_protocol, std::move(sensors), clock, metrics));
    }
    if (auto sensors = sensorBindings(config, "modbus", &SensorConfig::modbus); !sensors.empty()) {
        assembly->sources_.push_back(std::make_unique<ModbusSource>(
            config.modbus_devices, std::move(sensors), clock, metrics));
    }
    if (auto sensors = sensorBindings(config, "simulated", &SensorConfig::simulated);
        !sensors.empty()) {
        assembly->sources_.push_back(
            std::make_unique<SimulatedSource>(std::move(sensors), clock, metrics));
    }
    return assembly;
}

void EdgeAssembly::start(boost::asio::io_context& io) {
    for (auto& source : sources_) source->start(io, *pipeline_);
}

void EdgeAssembly::stop() {
    for (auto& source : sources_) source->stop();
}

shared::VoidResult EdgeAssembly::reloadRules(const EdgeConfig& config) {
    auto specs = resolve(config, sensor_names_);
    if (!specs) return std::move(specs).error();
    rules_->reload(std::move(specs).value(), pipeline_->callbacks());
    return shared::success();
}

}  // namespace tern::edge
