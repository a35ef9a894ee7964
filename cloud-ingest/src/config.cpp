#include "tern/ingest/config.h"

#include "tern/shared/http_server.h"
#include "tern/shared/topics.h"

namespace tern::ingest {

using namespace std::chrono_literals;

shared::ConfigTable<MqttConfig> mqttTable() {
    return shared::ConfigTable<MqttConfig>(
               "mqtt", "The broker connection: MQTT 5 over TLS with a client certificate")
        .string("broker", &MqttConfig::broker, "ssl://localhost:8883",
                "Broker URL; only ssl:// (TLS) is accepted")
        .string("client_id", &MqttConfig::client_id, "tern-ingest-1",
                "MQTT client id, unique per ingest process (the broker keeps its session)")
        .string("ca_file", &MqttConfig::ca_file, "/etc/tern/ca.pem",
                "CA certificate(s) the broker's certificate must chain to")
        .string("cert_file", &MqttConfig::cert_file, "/etc/tern/ingest.pem",
                "The ingest's client certificate (PEM); its CN is the broker ACL's ingest user")
        .string("key_file", &MqttConfig::key_file, "/etc/tern/ingest.key",
                "The private key of cert_file (PEM); never logged")
        .string("share_group", &MqttConfig::share_group, "tern-ingest",
                "Shared subscription group, so several ingest processes split the load; \"\" "
                "subscribes directly")
        .duration("keepalive", &MqttConfig::keepalive, 30s, {5s, 30min},
                  "MQTT keep-alive: how soon a dead link is noticed")
        .duration("connect_timeout", &MqttConfig::connect_timeout, 10s, {1s, 5min},
                  "Time a connection attempt (TCP, TLS, CONNACK) may take")
        .duration("session_expiry", &MqttConfig::session_expiry, 1h, {0s, 7 * 24h},
                  "How long the broker keeps this client's session (and queues its messages) "
                  "while it is disconnected; 0 ends the session with the connection")
        .duration("reconnect_min", &MqttConfig::reconnect_min, 1s, {1s, 10min},
                  "First reconnect delay; it doubles per failed attempt")
        .duration("reconnect_max", &MqttConfig::reconnect_max, 30s, {1s, 1h},
                  "Largest reconnect delay")
        .duration("receipt_interval", &MqttConfig::receipt_interval, 200ms, {1ms, 1min},
                  "Longest a spooled message waits for its gateway's (coalesced) receipt")
        .integer("receipt_batches", &MqttConfig::receipt_batches, 8, {1, 100'000}, "messages",
                 "A gateway's receipt goes out at once when this many of its messages wait "
                 "for one; keep it below the gateways' inflight_window (16 by default), or a "
                 "gateway with a full window waits for receipt_interval");
}

shared::ConfigTable<IntakeConfig> intakeTable() {
    return shared::ConfigTable<IntakeConfig>(
               "intake", "Grouping received messages into spool transactions (group commit)")
        .byteSize("queue_max_bytes", &IntakeConfig::queue_max_bytes, 64 * shared::kMiB,
                  {shared::kMiB, 64 * shared::kGiB},
                  "Payload bytes received and not yet spooled; past it the MQTT client stops "
                  "reading until the spool catches up")
        .integer("group_max_messages", &IntakeConfig::group_max_messages, 512, {1, 100'000},
                 "messages", "Most messages committed to the spool in one transaction")
        .duration("group_wait", &IntakeConfig::group_wait, 5ms, {0ms, 1s},
                  "Longest wait for more messages after the first of a group");
}

shared::ConfigTable<SinksConfig> sinksTable() {
    return shared::ConfigTable<SinksConfig>(
               "sinks", "Which sinks run and how their workers retry; reloaded on SIGHUP")
        .boolean("tsdb", &SinksConfig::tsdb, true,
                 "Deliver to the embedded time-series store ([tsdb]). Turning a sink off "
                 "removes its cursor: the spool no longer keeps records for it")
        .integer("batch_records", &SinksConfig::batch_records, 512, {1, 100'000}, "records",
                 "Records handed to a sink in one delivery")
        .duration("backoff_min", &SinksConfig::backoff_min, 200ms, {1ms, 10min},
                  "First retry delay bound after a failed delivery; doubles, with full jitter")
        .duration("backoff_max", &SinksConfig::backoff_max, 30s, {1ms, 1h},
                  "Largest retry delay bound")
        .integer("breaker_failures", &SinksConfig::breaker_failures, 5, {1, 1000}, "attempts",
                 "Consecutive failed deliveries that open a sink's breaker")
        .duration("breaker_cooldown", &SinksConfig::breaker_cooldown, 30s, {1ms, 1h},
                  "How long an open breaker keeps a sink untried")
        .duration("drain_timeout", &SinksConfig::drain_timeout, 10s, {0ms, 10min},
                  "At shutdown, how long sinks may take to deliver what is spooled");
}

shared::ConfigTable<ApiConfig> apiTable() {
    return shared::ConfigTable<ApiConfig>("api", "The HTTP API and metrics endpoint")
        .string("listen", &ApiConfig::listen, "127.0.0.1:8080",
                "address:port (IPv4); \"\" disables the API; port 0 picks a free one")
        .string("token_file", &ApiConfig::token_file, "",
                "File holding the bearer token every /api/ request must carry; \"\" requires "
                "none (then keep the API on 127.0.0.1)")
        .integer("max_connections", &ApiConfig::max_connections, 256, {1, 512}, "connections",
                 "Concurrent HTTP connections; kept well below 1024 because the MQTT client "
                 "uses select()");
}

shared::ConfigTable<IngestConfig> configSchema() {
    return shared::ConfigTable<IngestConfig>("", "tern-ingest configuration")
        .table(&IngestConfig::log, shared::logTable())
        .table(&IngestConfig::mqtt, mqttTable())
        .table(&IngestConfig::intake, intakeTable())
        .table(&IngestConfig::verify, verifyTable())
        .table(&IngestConfig::quarantine, quarantineTable())
        .table(&IngestConfig::spool, spoolTable())
        .table(&IngestConfig::sinks, sinksTable())
        .table(&IngestConfig::tsdb, timeseriesStoreTable())
        .table(&IngestConfig::api, apiTable());
}

shared::ConfigErrors validateIngestConfig(const IngestConfig& config, const std::string& file) {
    shared::ConfigErrors errors;
    auto add = [&](const std::string& key, std::string message) {
        errors.push_back(shared::ConfigError{file, 0, 0, key, std::move(message)});
    };
    if (!config.mqtt.broker.starts_with("ssl://") && !config.mqtt.broker.starts_with("mqtts://")) {
        add("mqtt.broker", "must be an ssl:// URL: the ingest only speaks TLS");
    }
    if (auto valid = shared::validateGatewayId(config.mqtt.client_id); !valid) {
        add("mqtt.client_id", valid.error().message());
    }
    if (!config.mqtt.share_group.empty()) {
        if (auto valid = shared::validateGatewayId(config.mqtt.share_group); !valid) {
            add("mqtt.share_group", valid.error().message());
        }
    }
    if (config.mqtt.reconnect_max < config.mqtt.reconnect_min) {
        add("mqtt.reconnect_max", "must not be below reconnect_min");
    }
    if (config.sinks.backoff_max < config.sinks.backoff_min) {
        add("sinks.backoff_max", "must not be below backoff_min");
    }
    if (!config.api.listen.empty() && !shared::parseListenAddress(config.api.listen)) {
        add("api.listen", "must be an IPv4 address and a port, such as 127.0.0.1:8080");
    }
    if (auto scheme = shared::TopicScheme::create(config.verify.topic_prefix); !scheme) {
        add("verify.topic_prefix", scheme.error().message());
    }
    if (!(config.tsdb.raw_retention <= config.tsdb.minute_retention &&
          config.tsdb.minute_retention <= config.tsdb.hour_retention)) {
        add("tsdb.raw_retention", "retention must not shrink with the tier: raw <= minute <= hour");
    }
    return errors;
}

}  // namespace tern::ingest
