#include "tern/ingest/verifier.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

namespace tern::ingest {

using shared::Error;
using shared::Result;

namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kDay = 24h;
// The most readings any Tern encoder writes (its validation uses the default DecodeLimits), so a
// higher limit could accept nothing more and would break re-encoding clamped batches.
constexpr std::int64_t kMaxReadings =
    static_cast<std::int64_t>(shared::DecodeLimits{}.max_readings);

constexpr std::string_view kUnexpectedTopic = "unexpected_topic";
constexpr std::string_view kGatewayMismatch = "gateway_mismatch";

constexpr std::string_view kReceivedName = "tern_ingest_messages_received_total";
constexpr std::string_view kReceivedHelp =
    "Messages handed to the verifier, by topic kind (other: topics gateways do not publish on)";
constexpr std::string_view kRejectedName = "tern_ingest_messages_rejected_total";
constexpr std::string_view kRejectedHelp = "Messages the verifier rejected, by reason";

std::int64_t saturatingAdd(std::int64_t a, std::int64_t b) {
    std::int64_t sum = 0;
    if (__builtin_add_overflow(a, b, &sum)) {
        return b > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    }
    return sum;
}

bool inside(std::int64_t ms, const shared::TimeWindow& window) {
    return ms >= window.min_ms && ms <= window.max_ms;
}

// Moves readings and aggregate starts outside the window to its nearest edge and marks them
// TimeUncertain (which replaces Bad or Uncertain: the schema has one quality per reading, and a
// wrong time is what a consumer must know first). Returns how many moved.
std::uint32_t clampBatch(shared::TelemetryBatch& batch, const shared::TimeWindow& window) {
    std::uint32_t moved = 0;
    const auto clamp = [&](std::int64_t& ms, shared::Quality& quality) {
        if (inside(ms, window)) return;
        ms = std::clamp(ms, window.min_ms, window.max_ms);
        quality = shared::Quality::TimeUncertain;
        ++moved;
    };
    for (auto& reading : batch.readings) clamp(reading.time_ms, reading.quality);
    for (auto& aggregate : batch.aggregates) clamp(aggregate.start_ms, aggregate.quality);
    return moved;
}

}  // namespace

std::optional<TimestampPolicy> parseTimestampPolicy(std::string_view name) {
    if (name == "reject") return TimestampPolicy::Reject;
    if (name == "clamp") return TimestampPolicy::Clamp;
    return std::nullopt;
}

shared::ConfigTable<VerifyConfig> verifyTable() {
    return shared::ConfigTable<VerifyConfig>(
               "verify", "What a gateway's message must be to get past the ingest's trust boundary")
        .string("topic_prefix", &VerifyConfig::topic_prefix, "tern/v1",
                "First levels of every topic; must match the gateways' uplink.topic_prefix",
                {.check = [](const std::string& prefix) -> std::string {
                    auto scheme = shared::TopicScheme::create(prefix);
                    return scheme ? "" : scheme.error().detail;
                }})
        .byteSize("max_message_bytes", &VerifyConfig::max_message_bytes, 256 * shared::kKiB,
                  {shared::kKiB, 256 * shared::kMiB},
                  "Largest payload accepted as received (compressed or not); larger ones are "
                  "rejected as 'oversize'. Keep it at the broker's message_size_limit")
        .integer("max_readings", &VerifyConfig::max_readings, kMaxReadings, {1, kMaxReadings},
                 "readings",
                 "Most readings in one telemetry batch; 100000 is the most a Tern encoder writes")
        .duration("max_past", &VerifyConfig::max_past, 365 * kDay, {1h, 3650 * kDay},
                  "How far before the receive time a timestamp may lie; long, since gateways "
                  "send weeks-old backlogs after an outage")
        .duration("max_future", &VerifyConfig::max_future, 10min, {0ms, kDay},
                  "How far after the receive time a timestamp may lie (a gateway clock ahead)")
        .string("timestamp_policy", &VerifyConfig::timestamp_policy, "reject",
                "A timestamp outside the window rejects the whole message (reject), or is moved "
                "to the window's edge and marked TimeUncertain (clamp)",
                {.one_of = {"reject", "clamp"}});
}

Result<Verifier> Verifier::create(const VerifyConfig& config, shared::MetricsRegistry& metrics) {
    auto topics = shared::TopicScheme::create(config.topic_prefix);
    if (!topics) return std::move(topics).error();
    const auto policy = parseTimestampPolicy(config.timestamp_policy);
    if (!policy) {
        return Error::stop("bad_timestamp_policy",
                           fmt::format("timestamp_policy '{}' is neither 'reject' nor 'clamp'",
                                       config.timestamp_policy));
    }
    if (config.max_message_bytes == 0 ||
        config.max_message_bytes > std::numeric_limits<std::size_t>::max()) {
        return Error::stop("bad_limits", "max_message_bytes must be positive");
    }
    if (config.max_readings < 1 || config.max_readings > kMaxReadings) {
        return Error::stop("bad_limits", fmt::format("max_readings {} is outside [1, {}]",
                                                     config.max_readings, kMaxReadings));
    }
    if (config.max_past.count() < 0 || config.max_future.count() < 0) {
        return Error::stop("bad_limits", "max_past and max_future must not be negative");
    }
    return Verifier(config, *policy, std::move(topics).value(), metrics);
}

Verifier::Verifier(VerifyConfig config, TimestampPolicy policy, shared::TopicScheme topics,
                   shared::MetricsRegistry& metrics)
    : config_(std::move(config)),
      policy_(policy),
      topics_(std::move(topics)),
      metrics_(&metrics),
      received_telemetry_(&metrics.counter(kReceivedName, kReceivedHelp, {{"kind", "telemetry"}})),
      received_alerts_(&metrics.counter(kReceivedName, kReceivedHelp, {{"kind", "alerts"}})),
      received_status_(&metrics.counter(kReceivedName, kReceivedHelp, {{"kind", "status"}})),
      received_cmd_ack_(&metrics.counter(kReceivedName, kReceivedHelp, {{"kind", "cmd-ack"}})),
      received_other_(&metrics.counter(kReceivedName, kReceivedHelp, {{"kind", "other"}})),
      clamped_(&metrics.counter("tern_ingest_timestamps_clamped_total",
                                "Reading, aggregate and alert timestamps moved into the window "
                                "(timestamp_policy clamp)")) {
    limits_.max_message_bytes = static_cast<std::size_t>(config_.max_message_bytes);
    limits_.max_readings = static_cast<std::size_t>(config_.max_readings);
    // An uncompressed payload may be max_message_bytes long, so a compressed one must be allowed
    // to inflate to at least that much.
    limits_.max_decompressed_bytes =
        std::max(limits_.max_decompressed_bytes, limits_.max_message_bytes);
    // A clamped message must still fit what the spool's readers and the sinks will accept.
    reencode_.max_message_bytes = limits_.max_message_bytes;
}

shared::TimeWindow Verifier::window(std::int64_t received_ms) const {
    shared::TimeWindow window;
    // Event times before 1970 are invalid on the wire anyway; clamping to them would make a
    // message no encoder accepts.
    window.min_ms =
        std::max<std::int64_t>(0, saturatingAdd(received_ms, -config_.max_past.count()));
    window.max_ms = std::max(window.min_ms, saturatingAdd(received_ms, config_.max_future.count()));
    return window;
}

Rejection Verifier::reject(std::string gateway_id, std::string_view reason,
                           std::string detail) const {
    // The registry returns the same counter for the same reason; it takes its own mutex, so this
    // is safe from every verifying thread, and only rejections pay for the lookup.
    metrics_->counter(kRejectedName, kRejectedHelp, {{"reason", std::string(reason)}}).inc();
    return Rejection{std::move(gateway_id), std::string(reason), std::move(detail)};
}

Verified Verifier::verify(std::string_view topic, std::span<const std::uint8_t> payload,
                          std::int64_t received_ms) const {
    auto parsed = topics_.parse(topic);
    if (!parsed) {
        received_other_->inc();
        return reject({}, kUnexpectedTopic, parsed.error().message());
    }
    const shared::ParsedTopic& where = parsed.value();
    switch (where.kind) {
        case shared::TopicKind::Telemetry:
            received_telemetry_->inc();
            return verifyTelemetry(where, payload, received_ms);
        case shared::TopicKind::Alerts:
            received_alerts_->inc();
            return verifyAlert(where, payload, received_ms);
        case shared::TopicKind::Status: {
            received_status_->inc();
            auto decoded = shared::decodeStatus(payload, limits_);
            if (!decoded) {
                return reject(where.gateway_id, decoded.error().code, decoded.error().detail);
            }
            if (decoded.value().gateway_id != where.gateway_id) {
                return reject(where.gateway_id, kGatewayMismatch,
                              fmt::format("status names gateway '{}'", decoded.value().gateway_id));
            }
            VerifiedStatus out{where.gateway_id, std::move(decoded).value(), received_ms, 0};
            out.clock_skew_ms = saturatingAdd(received_ms, -out.status.sent_at_ms);
            return out;
        }
        case shared::TopicKind::CommandAck: {
            received_cmd_ack_->inc();
            auto decoded = shared::decodeCommandAck(payload, limits_);
            if (!decoded) {
                return reject(where.gateway_id, decoded.error().code, decoded.error().detail);
            }
            if (decoded.value().gateway_id != where.gateway_id) {
                return reject(where.gateway_id, kGatewayMismatch,
                              fmt::format("ack names gateway '{}'", decoded.value().gateway_id));
            }
            return VerifiedCommandAck{where.gateway_id, std::move(decoded).value(), received_ms};
        }
        case shared::TopicKind::Receipt:
        case shared::TopicKind::Command:
            break;
    }
    // Receipts and commands are what the ingest publishes; one arriving here is a misrouted
    // subscription or a gateway publishing where it should not.
    received_other_->inc();
    return reject(
        where.gateway_id, kUnexpectedTopic,
        fmt::format("gateways do not publish on '{}' topics", shared::topicKindName(where.kind)));
}

Verified Verifier::verifyTelemetry(const shared::ParsedTopic& topic,
                                   std::span<const std::uint8_t> payload,
                                   std::int64_t received_ms) const {
    // Decoded without a time window first, so that a wrong gateway id is reported as such even
    // when its timestamps are also off (the order the header promises).
    auto decoded = shared::decodeBatch(payload, limits_);
    if (!decoded) return reject(topic.gateway_id, decoded.error().code, decoded.error().detail);
    VerifiedTelemetry out;
    out.batch = std::move(decoded).value();
    if (out.batch.gateway_id != topic.gateway_id) {
        return reject(topic.gateway_id, kGatewayMismatch,
                      fmt::format("batch names gateway '{}'", out.batch.gateway_id));
    }

    const shared::TimeWindow window = this->window(received_ms);
    if (policy_ == TimestampPolicy::Reject) {
        shared::DecodeLimits limits = limits_;
        limits.time_window = window;
        if (auto valid = shared::validate(out.batch, limits); !valid) {
            return reject(topic.gateway_id, valid.error().code, valid.error().detail);
        }
    } else {
        out.clamped = clampBatch(out.batch, window);
    }

    out.incoming.gateway_id = topic.gateway_id;
    out.incoming.sequence = out.batch.sequence;
    out.incoming.kind = Kind::Telemetry;
    out.incoming.readings = static_cast<std::uint32_t>(out.batch.readings.size());
    out.incoming.received_ms = received_ms;
    if (out.clamped > 0) {
        // The spool keeps what the sinks will read, so the clamped times have to be in the bytes.
        // Fields of a newer schema version than this build's are lost here; the readings are not.
        auto encoded = shared::encodeBatch(out.batch, reencode_);
        if (!encoded) {
            return reject(topic.gateway_id, encoded.error().code,
                          "re-encoding the clamped batch: " + encoded.error().detail);
        }
        clamped_->inc(out.clamped);
        out.incoming.payload = std::move(encoded).value();
    } else {
        out.incoming.payload.assign(payload.begin(), payload.end());
    }
    return out;
}

Verified Verifier::verifyAlert(const shared::ParsedTopic& topic,
                               std::span<const std::uint8_t> payload,
                               std::int64_t received_ms) const {
    auto decoded = shared::decodeAlert(payload, limits_);
    if (!decoded) return reject(topic.gateway_id, decoded.error().code, decoded.error().detail);
    VerifiedAlert out;
    out.alert = std::move(decoded).value();
    if (out.alert.gateway_id != topic.gateway_id) {
        return reject(topic.gateway_id, kGatewayMismatch,
                      fmt::format("alert names gateway '{}'", out.alert.gateway_id));
    }

    const shared::TimeWindow window = this->window(received_ms);
    if (policy_ == TimestampPolicy::Reject) {
        shared::DecodeLimits limits = limits_;
        limits.time_window = window;
        if (auto valid = shared::validate(out.alert, limits); !valid) {
            return reject(topic.gateway_id, valid.error().code, valid.error().detail);
        }
    } else if (!inside(out.alert.time_ms, window)) {
        out.alert.time_ms = std::clamp(out.alert.time_ms, window.min_ms, window.max_ms);
        out.alert.clock_synced = false;
        out.clamped = true;
    }

    out.incoming.gateway_id = topic.gateway_id;
    out.incoming.sequence = out.alert.sequence;
    out.incoming.kind = Kind::Alert;
    out.incoming.readings = 0;
    out.incoming.received_ms = received_ms;
    if (out.clamped) {
        auto encoded = shared::encodeAlert(out.alert, reencode_);
        if (!encoded) {
            return reject(topic.gateway_id, encoded.error().code,
                          "re-encoding the clamped alert: " + encoded.error().detail);
        }
        clamped_->inc();
        out.incoming.payload = std::move(encoded).value();
    } else {
        out.incoming.payload.assign(payload.begin(), payload.end());
    }
    return out;
}

}  // namespace tern::ingest
