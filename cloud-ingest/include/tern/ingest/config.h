#pragma once

// The tern-ingest configuration file: one table per component (`tern-ingest
// --print-config-reference` prints every key from these tables).
//
//   [log]                       logging
//   [mqtt]                      the broker connection, subscriptions and receipts
//   [intake]                    grouping of messages into spool commits
//   [verify] [quarantine]       what is accepted, and what is kept of what is not
//   [spool]                     the durable log
//   [sinks] [tsdb]              sink workers and the embedded time-series store
//   [api]                       the HTTP API

#include <chrono>
#include <cstdint>
#include <string>

#include "tern/ingest/quarantine.h"
#include "tern/ingest/spool.h"
#include "tern/ingest/timeseries_store.h"
#include "tern/ingest/verifier.h"
#include "tern/shared/config.h"
#include "tern/shared/logging.h"

namespace tern::ingest {

// [mqtt]
struct MqttConfig {
    std::string broker = "ssl://localhost:8883";
    // Must be unique per ingest process: the broker keeps one persistent session per client id.
    std::string client_id = "tern-ingest-1";
    std::string ca_file = "/etc/tern/ca.pem";
    // Its CN is the user the broker's ACL grants every gateway's topics to ("tern-ingest").
    std::string cert_file = "/etc/tern/ingest.pem";
    std::string key_file = "/etc/tern/ingest.key";
    // Shared subscription group for telemetry, alerts and command acks; "" subscribes directly.
    std::string share_group = "tern-ingest";
    std::chrono::milliseconds keepalive{std::chrono::seconds{30}};
    std::chrono::milliseconds connect_timeout{std::chrono::seconds{10}};
    std::chrono::milliseconds session_expiry{std::chrono::hours{1}};
    std::chrono::milliseconds reconnect_min{std::chrono::seconds{1}};
    std::chrono::milliseconds reconnect_max{std::chrono::seconds{30}};
    // Receipt coalescing: a gateway's receipt goes out when receipt_batches of its messages are
    // waiting for one, or receipt_interval after the first of them, whichever comes first.
    std::chrono::milliseconds receipt_interval{200};
    std::int64_t receipt_batches = 8;
};

shared::ConfigTable<MqttConfig> mqttTable();

// [intake]
struct IntakeConfig {
    // Messages received but not yet spooled; past it the MQTT callback waits (the broker then
    // queues, and the gateways keep everything unreceipted).
    std::uint64_t queue_max_bytes = 64 * shared::kMiB;
    // One spool transaction takes at most this many messages, and waits at most group_wait for
    // more after the first: the group commit's trade between fsyncs and latency.
    std::int64_t group_max_messages = 512;
    std::chrono::milliseconds group_wait{5};
};

shared::ConfigTable<IntakeConfig> intakeTable();

// [sinks]: which sinks run and how their workers retry. Reloaded on SIGHUP.
struct SinksConfig {
    bool tsdb = true;
    std::int64_t batch_records = 512;
    std::chrono::milliseconds backoff_min{200};
    std::chrono::milliseconds backoff_max{std::chrono::seconds{30}};
    std::int64_t breaker_failures = 5;
    std::chrono::milliseconds breaker_cooldown{std::chrono::seconds{30}};
    std::chrono::milliseconds drain_timeout{std::chrono::seconds{10}};
    friend bool operator==(const SinksConfig&, const SinksConfig&) = default;
};

shared::ConfigTable<SinksConfig> sinksTable();

// [api]
struct ApiConfig {
    std::string listen = "127.0.0.1:8080";  // "" disables; port 0 picks a free one
    // A file holding the bearer token every /api/ request must carry; "" requires none. A file,
    // not the token itself, so the config can be shared and logged.
    std::string token_file;
    std::int64_t max_connections = 256;
};

shared::ConfigTable<ApiConfig> apiTable();

struct IngestConfig {
    shared::LogConfig log;
    MqttConfig mqtt;
    IntakeConfig intake;
    VerifyConfig verify;
    QuarantineConfig quarantine;
    SpoolConfig spool;
    SinksConfig sinks;
    TimeseriesStoreConfig tsdb;
    ApiConfig api;
};

shared::ConfigTable<IngestConfig> configSchema();

// What the tables cannot check: URLs, ids, share group, listen address, retention order.
shared::ConfigErrors validateIngestConfig(const IngestConfig& config, const std::string& file);

}  // namespace tern::ingest
