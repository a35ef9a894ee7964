#pragma once

// Readings pushed by local processes in the InfluxDB line protocol (line_protocol.h), over UDP on
// 127.0.0.1 and/or a Unix datagram socket. Each [[sensor]] served by this source names one
// measurement, one field and optionally tags that a line must carry; every numeric field of every
// line that matches becomes a sample of that sensor.
//
// Datagrams are received with async_receive on the loop thread and parsed there; nothing blocks.
// A line's own timestamp is used when it is plausible (after 2000-01-01 and at most five minutes
// ahead of the receive time), otherwise the receive time, with quality TimeUncertain when a
// timestamp was given but not believed. mono_ms is always the receive time. Nothing the senders
// write stops the source: each bad line, oversized datagram and unmatched field is counted.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tern/edge/source.h"
#include "tern/edge/sources/sensor_binding.h"
#include "tern/shared/clock.h"
#include "tern/shared/config.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// The top-level [line_protocol] table.
struct LineProtocolConfig {
    // 0 = no UDP listener. Always bound on 127.0.0.1: the senders are local processes.
    std::int64_t udp_port = 0;
    // "" = no Unix socket. A stale socket file at this path is removed at start.
    std::string unix_socket;
    // A datagram longer than this is dropped whole (too_long).
    std::int64_t max_datagram_bytes = 8192;
};

// [sensor.line]
struct LineSensorConfig {
    std::string measurement;
    std::string field;
    // Every tag listed must be on the line with this value; the line may carry others.
    std::map<std::string, std::string> tags;
};

shared::ConfigTable<LineProtocolConfig> lineProtocolTable();
shared::ConfigTable<LineSensorConfig> lineSensorTable();

using LineSensor = SensorBinding<LineSensorConfig>;

class LineProtocolSource final : public Source {
public:
    // Not accepted by the config table (operators need a known port), but by the constructor: bind
    // any free port and report it through boundUdpPort().
    static constexpr std::int64_t kAnyFreeUdpPort = -1;

    static shared::VoidResult validate(const LineProtocolConfig& config,
                                       const std::vector<LineSensor>& sensors);

    LineProtocolSource(LineProtocolConfig config, std::vector<LineSensor> sensors,
                       const shared::Clock& clock, shared::MetricsRegistry& metrics);
    ~LineProtocolSource() override;
    LineProtocolSource(const LineProtocolSource&) = delete;
    LineProtocolSource& operator=(const LineProtocolSource&) = delete;

    // Binds the configured sockets. A socket that cannot be bound is logged and counted
    // (bind_failed); the other one still runs.
    void start(boost::asio::io_context& io, SampleSink& sink) override;
    // Closes the sockets and removes the Unix socket file.
    void stop() override;

    // The UDP port bound by start(), or 0 when there is no UDP listener.
    std::uint16_t boundUdpPort() const;

    // Handles one datagram as if it had just arrived, on the caller's thread: for tests and
    // benchmarks that do without sockets.
    void handleDatagram(std::string_view datagram, SampleSink& sink);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::edge
