#pragma once

// The decoded form of every message on the wire (shared/schema/*.fbs). Decoders produce these
// only after the FlatBuffers Verifier and value validation have passed; encoders take them.

#include <cstdint>
#include <string>
#include <vector>

namespace tern::shared {

enum class Quality : std::uint8_t { Good = 0, Uncertain = 1, Bad = 2, TimeUncertain = 3 };
enum class Severity : std::uint8_t { Info = 0, Warning = 1, Critical = 2 };

struct Sequence {
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
    friend bool operator==(const Sequence&, const Sequence&) = default;
};

struct SeqRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    friend bool operator==(const SeqRange&, const SeqRange&) = default;
};

struct Reading {
    std::uint16_t sensor = 0;
    std::int64_t time_ms = 0;  // Unix ms
    double value = 0.0;
    Quality quality = Quality::Good;
    friend bool operator==(const Reading&, const Reading&) = default;
};

struct Aggregate {
    std::uint16_t sensor = 0;
    std::int64_t start_ms = 0;
    std::uint32_t window_ms = 0;
    std::uint32_t count = 0;
    double min = 0.0;
    double max = 0.0;
    double mean = 0.0;
    double last = 0.0;
    Quality quality = Quality::Good;
    friend bool operator==(const Aggregate&, const Aggregate&) = default;
};

struct TelemetryBatch {
    std::string gateway_id;
    Sequence sequence;
    std::int64_t sent_at_ms = 0;
    bool clock_synced = false;
    // Any order on encode; decoded grouped by sensor in ascending index, each sensor's readings
    // in their original order.
    std::vector<Reading> readings;
    std::vector<Aggregate> aggregates;
    friend bool operator==(const TelemetryBatch&, const TelemetryBatch&) = default;
};

enum class AlertState : std::uint8_t { Firing = 0, Resolved = 1 };

struct Alert {
    std::string gateway_id;
    Sequence sequence;
    std::uint64_t incident_id = 0;
    std::string rule;
    std::uint16_t sensor = 0;
    Severity severity = Severity::Warning;
    AlertState state = AlertState::Firing;
    double value = 0.0;
    std::int64_t time_ms = 0;
    bool clock_synced = false;
    std::string message;
    friend bool operator==(const Alert&, const Alert&) = default;
};

enum class StatusKind : std::uint8_t { Birth = 0, Death = 1, Update = 2 };
enum class SensorKind : std::uint8_t {
    Other = 0,
    Temperature = 1,
    Humidity = 2,
    Pressure = 3,
    Voltage = 4,
    Current = 5,
    Power = 6,
    Vibration = 7,
    Fan = 8,
    Level = 9,
    Flow = 10,
};

struct SensorInfo {
    std::uint16_t index = 0;
    std::string name;
    std::string unit;
    SensorKind kind = SensorKind::Other;
    friend bool operator==(const SensorInfo&, const SensorInfo&) = default;
};

struct DropCounter {
    std::string reason;
    std::uint64_t batches = 0;
    std::uint64_t readings = 0;
    friend bool operator==(const DropCounter&, const DropCounter&) = default;
};

struct GatewayStatus {
    std::string gateway_id;
    StatusKind kind = StatusKind::Birth;
    std::uint64_t session = 0;
    std::uint64_t epoch = 0;
    std::int64_t sent_at_ms = 0;
    bool clock_synced = false;
    std::string firmware_version;
    std::vector<SensorInfo> sensors;
    std::uint64_t backlog_batches = 0;
    std::uint64_t backlog_bytes = 0;
    std::int64_t oldest_backlog_ms = 0;
    std::vector<DropCounter> drops;
    friend bool operator==(const GatewayStatus&, const GatewayStatus&) = default;
};

struct Receipt {
    std::string gateway_id;
    std::uint64_t epoch = 0;
    std::uint64_t cumulative_seq = 0;
    std::vector<SeqRange> ranges;
    std::int64_t issued_at_ms = 0;
    friend bool operator==(const Receipt&, const Receipt&) = default;
};

struct CommandArgument {
    std::string key;
    std::string value;
    friend bool operator==(const CommandArgument&, const CommandArgument&) = default;
};

struct Command {
    std::string gateway_id;
    std::uint64_t command_id = 0;
    std::string name;
    std::int64_t issued_at_ms = 0;
    std::int64_t expires_at_ms = 0;
    std::uint64_t epoch = 0;
    std::vector<SeqRange> resend_ranges;
    std::vector<CommandArgument> arguments;
    friend bool operator==(const Command&, const Command&) = default;
};

enum class CommandResult : std::uint8_t {
    Accepted = 0,
    Done = 1,
    Rejected = 2,
    Failed = 3,
    Expired = 4
};

struct CommandAck {
    std::string gateway_id;
    std::uint64_t command_id = 0;
    CommandResult result = CommandResult::Accepted;
    std::string detail;
    std::int64_t time_ms = 0;
    friend bool operator==(const CommandAck&, const CommandAck&) = default;
};

}  // namespace tern::shared
