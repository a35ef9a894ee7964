#pragma once

// The ingest's trust boundary for everything a gateway publishes. verify() takes a topic and a
// payload exactly as the broker delivered them and returns either a verified message, ready for
// the spool (telemetry, alerts) or the fleet state (status, command acks), or a Rejection with a
// stable reason that the quarantine and the metrics label with.
//
// Checks, in order: the topic parses under the configured prefix and is a kind gateways publish
// (else "unexpected_topic"); the codec decodes it under the configured limits (else the codec's
// reason, shared::codec_reason); the gateway id in the payload equals the topic's (else
// "gateway_mismatch": the broker's ACL lets a gateway publish only under its own id, so the topic
// is the authenticated identity and the payload is not); timestamps lie inside the window around
// the receive time (see VerifyConfig::timestamp_policy).
//
// Clock skew: received_ms - sent_at_ms of a Status, which gateways publish live, is the
// gateway's clock offset plus the network delay (a telemetry batch may come from a backlog hours
// old, so its sent_at_ms says nothing about the clock). VerifiedStatus carries it; FleetState
// keeps it per gateway.
//
// Threads: verify() is const and may be called from several threads at once.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "tern/ingest/spool.h"
#include "tern/shared/codec.h"
#include "tern/shared/config.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"
#include "tern/shared/topics.h"

namespace tern::ingest {

enum class TimestampPolicy : std::uint8_t {
    // A message with any timestamp outside the window is rejected whole
    // ("timestamp_out_of_window").
    Reject,
    // Readings, aggregates and alert times outside the window are moved to its nearest edge and
    // marked quality TimeUncertain (alerts: clock_synced=false); the message is re-encoded and
    // counted in tern_ingest_timestamps_clamped_total. Nothing is rejected for the window (a
    // time outside 1970..9999 is invalid on the wire and rejected by the codec either way).
    Clamp,
};

// [verify] in the ingest's config.
struct VerifyConfig {
    std::string topic_prefix = "tern/v1";
    // As the broker's message_size_limit; larger payloads are rejected as "oversize".
    std::uint64_t max_message_bytes = 256 * shared::kKiB;
    // A config integer (as every table's); at most 100,000, the most any Tern encoder writes.
    std::int64_t max_readings = 100'000;
    // The window is [received - max_past, received + max_future]. max_past is long because
    // store-and-forward makes late data normal: a gateway offline for weeks sends weeks-old
    // readings.
    std::chrono::milliseconds max_past{std::chrono::hours{24 * 365}};
    std::chrono::milliseconds max_future{std::chrono::minutes{10}};
    // "reject" or "clamp" (TimestampPolicy); a string, as config enums are, and checked by
    // Verifier::create.
    std::string timestamp_policy = "reject";
};

// "reject" -> Reject, "clamp" -> Clamp; nullopt for anything else.
std::optional<TimestampPolicy> parseTimestampPolicy(std::string_view name);

shared::ConfigTable<VerifyConfig> verifyTable();

struct Rejection {
    std::string gateway_id;  // from the topic when it parsed; empty otherwise
    std::string reason;      // stable snake_case: a codec reason, "gateway_mismatch", ...
    std::string detail;      // human-readable; never payload bytes
};

struct VerifiedTelemetry {
    Incoming incoming;  // kind Telemetry; payload re-encoded if timestamps were clamped
    shared::TelemetryBatch batch;
    std::uint32_t clamped = 0;  // readings and aggregates moved into the window
};

struct VerifiedAlert {
    Incoming incoming;  // kind Alert
    shared::Alert alert;
    bool clamped = false;
};

struct VerifiedStatus {
    std::string gateway_id;
    shared::GatewayStatus status;
    std::int64_t received_ms = 0;
    std::int64_t clock_skew_ms = 0;  // received_ms - status.sent_at_ms
};

struct VerifiedCommandAck {
    std::string gateway_id;
    shared::CommandAck ack;
    std::int64_t received_ms = 0;
};

using Verified =
    std::variant<VerifiedTelemetry, VerifiedAlert, VerifiedStatus, VerifiedCommandAck, Rejection>;

class Verifier {
public:
    // Error::stop for a bad topic prefix or limits.
    static shared::Result<Verifier> create(const VerifyConfig& config,
                                           shared::MetricsRegistry& metrics);

    // Counts every call in tern_ingest_messages_received_total{kind} and every rejection in
    // tern_ingest_messages_rejected_total{reason} (the quarantine counts what it keeps).
    Verified verify(std::string_view topic, std::span<const std::uint8_t> payload,
                    std::int64_t received_ms) const;

    const shared::TopicScheme& topics() const { return topics_; }

private:
    Verifier(VerifyConfig config, TimestampPolicy policy, shared::TopicScheme topics,
             shared::MetricsRegistry& metrics);

    Rejection reject(std::string gateway_id, std::string_view reason, std::string detail) const;
    Verified verifyTelemetry(const shared::ParsedTopic& topic,
                             std::span<const std::uint8_t> payload, std::int64_t received_ms) const;
    Verified verifyAlert(const shared::ParsedTopic& topic, std::span<const std::uint8_t> payload,
                         std::int64_t received_ms) const;
    shared::TimeWindow window(std::int64_t received_ms) const;

    VerifyConfig config_;
    TimestampPolicy policy_;
    shared::DecodeLimits limits_;  // without a time window; verify() adds one per message
    shared::EncodeOptions reencode_;
    shared::TopicScheme topics_;
    shared::MetricsRegistry* metrics_;
    // Registered once; rejections are labelled per reason through metrics_ as they come.
    shared::Counter* received_telemetry_;
    shared::Counter* received_alerts_;
    shared::Counter* received_status_;
    shared::Counter* received_cmd_ack_;
    shared::Counter* received_other_;
    shared::Counter* clamped_;
};

}  // namespace tern::ingest
