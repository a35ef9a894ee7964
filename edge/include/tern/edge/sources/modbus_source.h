#pragma once

// Readings polled from Modbus TCP devices with libmodbus.
//
// Threads: libmodbus calls block (connect, and every request up to the device's timeout), so they
// never run on the loop thread. Each [[modbus_device]] has a worker thread of its own that
// connects, polls its sensors at their intervals and post()s each poll's samples to the
// io_context. The hand-off is bounded: when more than kMaxPendingSamples samples wait for the loop,
// new ones are dropped and counted (queue_full). Samples are stamped on the worker, right after
// the registers were read.
//
// Failures: a device that cannot be reached is retried with exponential backoff and jitter
// between its reconnect_min and reconnect_max; a request that times out or breaks the connection
// closes it and reconnects; an exception reply from the device (illegal address, busy) loses
// only that request's readings. Every failed connect and every reading a failed request loses is
// counted by reason; while a device is unreachable its readings are not attempted. A connection,
// or a request, logs once when it starts failing and once when it recovers.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tern/edge/source.h"
#include "tern/edge/sources/modbus_decode.h"
#include "tern/edge/sources/sensor_binding.h"
#include "tern/shared/clock.h"
#include "tern/shared/config.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// One element of the top-level [[modbus_device]] array.
struct ModbusDeviceConfig {
    std::string name;  // what [sensor.modbus] device refers to
    std::string host;  // address or host name
    std::int64_t port = 502;
    std::int64_t unit_id = 1;                 // 0..247, or 255
    std::chrono::milliseconds timeout{1000};  // per connect and per request
    std::chrono::milliseconds reconnect_min{500};
    std::chrono::milliseconds reconnect_max{30000};
};

// [sensor.modbus]
struct ModbusSensorConfig {
    std::string device;
    std::int64_t address = -1;       // the `register` key; -1 = not given
    std::string table = "holding";   // "holding" | "input"
    std::string type = "uint16";     // see parseModbusType
    std::string word_order = "big";  // see parseModbusWordOrder; 32-bit types only
    double scale = 1.0;              // value = raw * scale + offset
    double offset = 0.0;
};

shared::ConfigTable<ModbusDeviceConfig> modbusDeviceTable();
shared::ConfigTable<ModbusSensorConfig> modbusSensorTable();

using ModbusSensor = SensorBinding<ModbusSensorConfig>;

class ModbusSource final : public Source {
public:
    static constexpr std::size_t kMaxPendingSamples = 4096;

    // Checks what the config tables cannot: device names are unique, every sensor names a known
    // device, a 32-bit value does not run past register 65535.
    static shared::VoidResult validate(const std::vector<ModbusDeviceConfig>& devices,
                                       const std::vector<ModbusSensor>& sensors);

    // A sensor that does not pass validate() is logged at start and never read.
    ModbusSource(std::vector<ModbusDeviceConfig> devices, std::vector<ModbusSensor> sensors,
                 const shared::Clock& clock, shared::MetricsRegistry& metrics);
    ~ModbusSource() override;
    ModbusSource(const ModbusSource&) = delete;
    ModbusSource& operator=(const ModbusSource&) = delete;

    // Starts one worker thread per device that has sensors.
    void start(boost::asio::io_context& io, SampleSink& sink) override;
    // Joins the workers; this waits for a request in flight, at most a device's timeout.
    void stop() override;

    // Reads every sensor now, on the caller's thread (blocking), connecting first where needed
    // (one attempt, no backoff), and hands the samples to sink. For tests and benchmarks.
    void pollOnce(SampleSink& sink);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::edge
