#include "tern/edge/uplink/uplink.h"

#include <mqtt/async_client.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <span>

#include "tern/shared/codec.h"
#include "tern/shared/topics.h"

namespace tern::edge {

using namespace std::chrono_literals;
using shared::Error;
using shared::Result;

shared::ConfigTable<UplinkConfig> uplinkTable() {
    return shared::ConfigTable<UplinkConfig>(
               "uplink", "MQTT 5 over TLS to the broker; see docs/edge-uplink.md")
        .string("broker", &UplinkConfig::broker, "ssl://localhost:8883",
                "Broker URL; only ssl:// (TLS) is accepted")
        .string("gateway_id", &UplinkConfig::gateway_id, "",
                "This gateway's id: its MQTT client id and the CN of its certificate")
        .required()
        .string("ca_file", &UplinkConfig::ca_file, "/etc/tern/ca.pem",
                "CA certificate(s) the broker's certificate must chain to")
        .string("cert_file", &UplinkConfig::cert_file, "/etc/tern/gateway.pem",
                "This gateway's client certificate (PEM)")
        .string("key_file", &UplinkConfig::key_file, "/etc/tern/gateway.key",
                "The private key of cert_file (PEM); never logged")
        .string("topic_prefix", &UplinkConfig::topic_prefix, "tern/v1",
                "First levels of every topic; must match the ingest's")
        .duration("keepalive", &UplinkConfig::keepalive, 30s, {5s, 30min},
                  "MQTT keep-alive: how soon a dead link is noticed")
        .duration("connect_timeout", &UplinkConfig::connect_timeout, 10s, {1s, 5min},
                  "Time a connection attempt (TCP, TLS, CONNACK) may take")
        .integer("inflight_window", &UplinkConfig::inflight_window, 16, {1, 1000}, "messages",
                 "Messages published and not yet covered by a receipt; keep it at or below the "
                 "broker's max_inflight_messages")
        .byteSize("max_payload_bytes", &UplinkConfig::max_payload_bytes, 256 * shared::kKiB,
                  {shared::kKiB, 256 * shared::kMiB},
                  "Largest payload published; a stored message above it is evicted as "
                  "'oversize'. Keep it at the broker's message size limit")
        .byteSize("backlog_rate", &UplinkConfig::backlog_rate, 0, {0, 1024 * shared::kMiB},
                  "Bytes per second for draining the backlog behind live data; 0: no cap")
        .duration("reconnect_min", &UplinkConfig::reconnect_min, 1s, {100ms, 10min},
                  "First reconnect delay bound; it doubles per failed attempt, with full jitter")
        .duration("reconnect_max", &UplinkConfig::reconnect_max, 2min, {1s, 1h},
                  "Largest reconnect delay bound")
        .duration("receipt_timeout", &UplinkConfig::receipt_timeout, 30s, {1s, 1h},
                  "A message unreceipted this long is sent again (same epoch and seq)")
        .duration("status_interval", &UplinkConfig::status_interval, 60s, {1s, 24h},
                  "Period of the retained Status update (backlog, drop counters)");
}

shared::ConfigErrors validateUplinkConfig(const UplinkConfig& config, const std::string& file) {
    shared::ConfigErrors errors;
    auto add = [&](const std::string& key, std::string message) {
        errors.push_back(shared::ConfigError{file, 0, 0, "uplink." + key, std::move(message)});
    };
    if (auto valid = shared::validateGatewayId(config.gateway_id); !valid) {
        add("gateway_id", valid.error().message());
    }
    if (!config.broker.starts_with("ssl://") && !config.broker.starts_with("mqtts://")) {
        add("broker", "must be an ssl:// URL: the uplink only speaks TLS");
    }
    if (auto scheme = shared::TopicScheme::create(config.topic_prefix); !scheme) {
        add("topic_prefix", scheme.error().message());
    }
    if (config.reconnect_max < config.reconnect_min) {
        add("reconnect_max", "must not be below reconnect_min");
    }
    return errors;
}

RateLimiter::RateLimiter(std::uint64_t bytes_per_second)
    : rate_(bytes_per_second),
      capacity_(static_cast<double>(bytes_per_second)),
      tokens_(capacity_) {}

std::chrono::milliseconds RateLimiter::tryTake(std::uint64_t bytes,
                                               std::chrono::steady_clock::time_point now) {
    if (rate_ == 0) return 0ms;
    if (last_ != std::chrono::steady_clock::time_point{}) {
        const double elapsed = std::chrono::duration<double>(now - last_).count();
        tokens_ = std::min(capacity_, tokens_ + elapsed * static_cast<double>(rate_));
    }
    last_ = now;
    // A message larger than a second's worth waits for a full bucket and leaves it in debt, so
    // the average holds whatever the message sizes.
    const double need = std::min(static_cast<double>(bytes), capacity_);
    if (tokens_ >= need) {
        tokens_ -= static_cast<double>(bytes);
        return 0ms;
    }
    const double wait_s = (need - tokens_) / static_cast<double>(rate_);
    return std::chrono::milliseconds{static_cast<std::int64_t>(wait_s * 1000.0) + 1};
}

Result<std::string> certificateCommonName(const std::string& pem_file) {
    std::FILE* file = std::fopen(pem_file.c_str(), "r");
    if (file == nullptr) return Error::stop("certificate_unreadable", "cannot open " + pem_file);
    X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
    std::fclose(file);
    if (cert == nullptr) {
        return Error::stop("certificate_invalid", pem_file + " holds no PEM certificate");
    }
    std::string cn;
    X509_NAME* subject = X509_get_subject_name(cert);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index >= 0) {
        ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
        cn.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                  static_cast<std::size_t>(ASN1_STRING_length(data)));
    }
    X509_free(cert);
    if (cn.empty()) return Error::stop("certificate_invalid", pem_file + " has no subject CN");
    return cn;
}

namespace {

enum class SendKind : std::size_t { Alert = 0, Resend = 1, Live = 2, Backlog = 3 };
constexpr std::array<std::string_view, 4> kSendKindNames = {"alert", "resend", "live", "backlog"};
constexpr std::array<std::string_view, 5> kCommandResultNames = {"accepted", "done", "rejected",
                                                                 "failed", "expired"};

bool covers(const shared::Receipt& receipt, std::uint64_t seq) {
    if (seq <= receipt.cumulative_seq) return true;
    return std::any_of(
        receipt.ranges.begin(), receipt.ranges.end(),
        [seq](const shared::SeqRange& r) { return seq >= r.first && seq <= r.last; });
}

}  // namespace

struct Uplink::Impl : std::enable_shared_from_this<Impl> {
    struct InFlight {
        std::chrono::steady_clock::time_point sent;
    };

    // Paho calls these on its own threads; each only posts into the io_context.
    class Callbacks final : public mqtt::callback, public mqtt::iaction_listener {
    public:
        explicit Callbacks(boost::asio::io_context& io) : io_(io) {}
        void bind(std::weak_ptr<Impl> owner) { owner_ = std::move(owner); }

        void connected(const std::string&) override {
            post([](Impl& impl) { impl.onConnected(); });
        }
        void connection_lost(const std::string& cause) override {
            post([cause](Impl& impl) { impl.onDisconnected("connection lost: " + cause); });
        }
        void message_arrived(mqtt::const_message_ptr message) override {
            post([message](Impl& impl) { impl.onMessage(*message); });
        }
        void delivery_complete(mqtt::delivery_token_ptr) override {}
        // The connect attempt's outcome; success is reported through connected() too. Paho
        // reports no more than a code: -1 covers refused TCP, a failed TLS handshake (a broker
        // certificate not signed by ca_file, a client certificate the broker refuses) and
        // timeouts alike, so the message names the usual suspects.
        void on_failure(const mqtt::token& token) override {
            const int code =
                token.get_reason_code() != 0 ? token.get_reason_code() : token.get_return_code();
            post([code](Impl& impl) {
                impl.onDisconnected("connect failed (code " + std::to_string(code) +
                                    "): broker unreachable, TLS handshake refused (ca_file, "
                                    "certificate) or CONNACK refused");
            });
        }
        void on_success(const mqtt::token&) override {}

    private:
        template <class F>
        void post(F work) {
            boost::asio::post(io_, [owner = owner_, work = std::move(work)] {
                if (auto impl = owner.lock()) work(*impl);
            });
        }
        boost::asio::io_context& io_;
        std::weak_ptr<Impl> owner_;
    };

    Impl(boost::asio::io_context& io_context, UplinkConfig cfg, Store& s, StatusSource status,
         const shared::Clock& c, shared::MetricsRegistry& metrics, shared::TopicScheme scheme)
        : io(io_context),
          config(std::move(cfg)),
          store(s),
          status_source(std::move(status)),
          clock(c),
          topics(std::move(scheme)),
          callbacks(io_context),
          limiter(config.backlog_rate),
          reconnect_timer(io_context),
          backlog_timer(io_context),
          tick_timer(io_context),
          status_timer(io_context),
          rng(std::random_device{}()),
          metrics_registry(metrics) {
        connected_gauge =
            &metrics.gauge("tern_edge_uplink_connected", "1 while the MQTT session is up, else 0");
        inflight_gauge = &metrics.gauge("tern_edge_uplink_inflight_messages",
                                        "Messages published and not yet covered by a receipt");
        connects = &metrics.counter("tern_edge_uplink_connects_total", "MQTT sessions opened");
        connect_failures = &metrics.counter("tern_edge_uplink_connect_failures_total",
                                            "Connection attempts that failed");
        disconnects = &metrics.counter("tern_edge_uplink_disconnects_total",
                                       "MQTT sessions lost after they were up");
        for (std::size_t kind = 0; kind < kSendKindNames.size(); ++kind) {
            published[kind] =
                &metrics.counter("tern_edge_uplink_published_total", "Stored messages published",
                                 {{"kind", std::string(kSendKindNames[kind])}});
        }
        published_bytes = &metrics.counter("tern_edge_uplink_published_bytes_total",
                                           "Payload bytes of published stored messages");
        publish_errors = &metrics.counter("tern_edge_uplink_publish_errors_total",
                                          "Publishes the client refused");
        receipts = &metrics.counter("tern_edge_uplink_receipts_total", "Receipts applied");
        acknowledged = &metrics.counter("tern_edge_uplink_acknowledged_total",
                                        "Stored messages deleted because a receipt covered them");
        receipt_timeouts = &metrics.counter(
            "tern_edge_uplink_receipt_timeouts_total",
            "Times the window was resent because no receipt came within receipt_timeout");
        oversize = &metrics.counter("tern_edge_uplink_oversize_total",
                                    "Stored messages evicted as larger than max_payload_bytes");
        for (const char* reason : {"undecodable", "wrong_gateway", "unknown_topic"}) {
            ignored[reason] = &metrics.counter("tern_edge_uplink_ignored_messages_total",
                                               "Messages from the broker that were not applied",
                                               {{"reason", reason}});
        }
    }

    ~Impl() {
        stopping = true;
        if (client) {
            try {
                if (client->is_connected()) client->disconnect(0)->wait_for(1s);
            } catch (const mqtt::exception&) {
                // Tearing down anyway.
            }
        }
    }

    Result<std::string> topic(shared::TopicKind kind, std::string_view command = {}) const {
        return topics.topic(config.gateway_id, kind, command);
    }

    shared::Bytes statusPayload(shared::StatusKind kind) {
        shared::GatewayStatus status = status_source ? status_source() : shared::GatewayStatus{};
        status.gateway_id = config.gateway_id;
        status.kind = kind;
        status.session = session;
        status.epoch = store.epoch();
        status.sent_at_ms = shared::toUnixMillis(clock.wallNow());
        if (kind != shared::StatusKind::Birth) status.sensors.clear();
        auto encoded = shared::encodeStatus(status);
        if (!encoded) {
            spdlog::error("uplink: cannot encode status: {}", encoded.error().message());
            return {};
        }
        return std::move(encoded.value());
    }

    void start() {
        started = true;
        scheduleTick();
        connect();
    }

    void connect() {
        if (stopping) return;
        auto next = store.nextSession();
        if (!next) {
            spdlog::error("uplink: cannot take a session number: {}", next.error().message());
            scheduleReconnect();
            return;
        }
        session = next.value();
        const auto status_topic = topic(shared::TopicKind::Status).value();
        const auto death = statusPayload(shared::StatusKind::Death);
        auto ssl = mqtt::ssl_options_builder()
                       .trust_store(config.ca_file)
                       .key_store(config.cert_file)
                       .private_key(config.key_file)
                       .enable_server_cert_auth(true)
                       .verify(true)
                       .finalize();
        auto options =
            mqtt::connect_options_builder()
                .mqtt_version(MQTTVERSION_5)
                .clean_start(true)
                .keep_alive_interval(
                    std::chrono::duration_cast<std::chrono::seconds>(config.keepalive))
                .connect_timeout(
                    std::chrono::duration_cast<std::chrono::seconds>(config.connect_timeout))
                .max_inflight(static_cast<int>(config.inflight_window) + 16)
                .will(mqtt::will_options(status_topic, death.data(), death.size(), 1, true))
                .ssl(std::move(ssl))
                .finalize();
        try {
            client->connect(options, nullptr, callbacks);
        } catch (const mqtt::exception& e) {
            onDisconnected(std::string("connect refused by the client: ") + e.what());
        }
    }

    void scheduleReconnect() {
        if (stopping) return;
        auto delay = backoffDelay(attempt, config.reconnect_min, config.reconnect_max, rng);
        const auto now = std::chrono::steady_clock::now();
        if (now < offline_until) {
            delay += std::chrono::ceil<std::chrono::milliseconds>(offline_until - now);
        }
        attempt += 1;
        spdlog::info("uplink: reconnecting in {} ms (attempt {})", delay.count(), attempt);
        reconnect_timer.expires_after(delay);
        reconnect_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) self->connect();
        });
    }

    void onConnected() {
        if (stopping) return;
        if (std::chrono::steady_clock::now() < offline_until) {
            // An attempt begun before the network was cut off: it cannot have got through.
            dropSession();
            scheduleReconnect();
            return;
        }
        up = true;
        attempt = 0;
        connects->inc();
        connected_gauge->set(1);
        spdlog::info("uplink: connected to {} as {} (session {})", config.broker, config.gateway_id,
                     session);
        try {
            client->subscribe(topic(shared::TopicKind::Receipt).value(), 1);
            client->subscribe(topics.prefix() + "/gw/" + config.gateway_id + "/cmd/+", 1);
        } catch (const mqtt::exception& e) {
            spdlog::warn("uplink: subscribe failed: {}", e.what());
        }
        publishStatusNow(shared::StatusKind::Birth);
        resync();
        scheduleStatus();
        pump();
    }

    void onDisconnected(const std::string& why) {
        (up ? disconnects : connect_failures)->inc();
        spdlog::warn("uplink: {}", why);
        up = false;
        connected_gauge->set(0);
        backlog_timer.cancel();
        status_timer.cancel();
        scheduleReconnect();
    }

    // Everything unreceipted becomes backlog, sent again from the oldest; what is stored from now
    // on is live.
    void resync() {
        inflight.clear();
        inflight_gauge->set(0);
        alert_cursor = 0;
        backlog_cursor = 0;
        live_from = store.lastSeq() + 1;
        live_cursor = store.lastSeq();
    }

    bool publishRaw(const std::string& to, const shared::Bytes& payload, bool retained) {
        try {
            client->publish(to, payload.data(), payload.size(), 1, retained);
            return true;
        } catch (const mqtt::exception& e) {
            publish_errors->inc();
            spdlog::warn("uplink: publish to {} failed: {}", to, e.what());
            return false;
        }
    }

    void publishStatusNow(shared::StatusKind kind) {
        if (!up) return;
        const auto payload = statusPayload(kind);
        if (!payload.empty()) publishRaw(topic(shared::TopicKind::Status).value(), payload, true);
    }

    void scheduleStatus() {
        status_timer.expires_after(config.status_interval);
        status_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (!self || ec) return;
            self->publishStatusNow(shared::StatusKind::Update);
            self->scheduleStatus();
        });
    }

    void scheduleTick() {
        tick_timer.expires_after(1s);
        tick_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (!self || ec || self->stopping) return;
            self->checkReceiptTimeout();
            self->scheduleTick();
        });
    }

    void checkReceiptTimeout() {
        if (!up || inflight.empty()) return;
        const auto now = std::chrono::steady_clock::now();
        const auto oldest = std::min_element(
            inflight.begin(), inflight.end(),
            [](const auto& a, const auto& b) { return a.second.sent < b.second.sent; });
        if (now - oldest->second.sent < config.receipt_timeout) return;
        receipt_timeouts->inc();
        timeouts += 1;
        spdlog::warn("uplink: no receipt for seq {} within {} ms; resending {} unreceipted",
                     oldest->first, config.receipt_timeout.count(), inflight.size());
        resync();
        pump();
    }

    // The next message to publish, or nullopt (and maybe a timer armed for the rate cap).
    std::optional<std::pair<StoredMessage, SendKind>> pickNext() {
        constexpr auto kAll = std::numeric_limits<std::uint64_t>::max();
        // Each loop skips one message that is already in flight.
        while (true) {
            if (auto alerts = store.scan(Lane::Alert, alert_cursor, kAll, 1); !alerts.empty()) {
                alert_cursor = alerts.front().sequence.seq;
                if (inflight.contains(alert_cursor)) continue;
                return std::pair{std::move(alerts.front()), SendKind::Alert};
            }
            if (!resend.empty()) {
                auto& range = resend.front();
                std::optional<StoredMessage> found;
                for (Lane lane : {Lane::Alert, Lane::Telemetry}) {
                    auto got = store.scan(lane, range.first - 1, range.last, 1);
                    if (!got.empty() &&
                        (!found || got.front().sequence.seq < found->sequence.seq)) {
                        found = std::move(got.front());
                    }
                }
                if (!found || found->sequence.seq >= range.last) {
                    resend.pop_front();
                } else {
                    range.first = found->sequence.seq + 1;
                }
                // Sent again even if in flight: the cloud says it never got it.
                if (!found) continue;
                return std::pair{std::move(*found), SendKind::Resend};
            }
            if (auto live = store.scan(Lane::Telemetry, live_cursor, kAll, 1); !live.empty()) {
                live_cursor = live.front().sequence.seq;
                if (inflight.contains(live_cursor)) continue;
                return std::pair{std::move(live.front()), SendKind::Live};
            }
            if (live_from > 1 && backlog_cursor < live_from - 1 && !backlog_timer_armed) {
                auto backlog = store.scan(Lane::Telemetry, backlog_cursor, live_from - 1, 1);
                if (backlog.empty()) {
                    backlog_cursor = live_from - 1;
                    return std::nullopt;
                }
                const auto wait = limiter.tryTake(backlog.front().payload.size(),
                                                  std::chrono::steady_clock::now());
                if (wait > 0ms) {
                    armBacklogTimer(wait);
                    return std::nullopt;
                }
                backlog_cursor = backlog.front().sequence.seq;
                if (inflight.contains(backlog_cursor)) continue;
                return std::pair{std::move(backlog.front()), SendKind::Backlog};
            }
            return std::nullopt;
        }
    }

    void armBacklogTimer(std::chrono::milliseconds wait) {
        backlog_timer_armed = true;
        backlog_timer.expires_after(wait);
        backlog_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (!self) return;
            self->backlog_timer_armed = false;
            if (!ec) self->pump();
        });
    }

    void pump() {
        if (!up || stopping) return;
        if (shared::toUnixMillis(clock.wallNow()) < shared::kEarliestPlausibleUnixMs) {
            // Timestamps from a board that booted without a clock (1970) would be rejected by the
            // cloud; they wait here until the clock syncs and Store::restamp corrects them.
            if (!holding_for_clock) spdlog::warn("uplink: the clock is not set; holding data");
            holding_for_clock = true;
            return;
        }
        holding_for_clock = false;
        while (inflight.size() < static_cast<std::size_t>(config.inflight_window)) {
            auto next = pickNext();
            if (!next) break;
            auto& [message, kind] = *next;
            if (message.payload.size() > config.max_payload_bytes) {
                oversize->inc();
                spdlog::error(
                    "uplink: seq {} has {} payload bytes, above max_payload_bytes {}; evicted",
                    message.sequence.seq, message.payload.size(), config.max_payload_bytes);
                if (auto gone = store.discardOversize(message.sequence.seq); !gone) {
                    spdlog::error("uplink: evicting seq {}: {}", message.sequence.seq,
                                  gone.error().message());
                }
                continue;
            }
            const auto to = topic(message.lane == Lane::Alert ? shared::TopicKind::Alerts
                                                              : shared::TopicKind::Telemetry)
                                .value();
            if (!publishRaw(to, message.payload, false)) break;
            inflight[message.sequence.seq] = InFlight{std::chrono::steady_clock::now()};
            published[static_cast<std::size_t>(kind)]->inc();
            published_bytes->inc(message.payload.size());
            published_count += 1;
        }
        inflight_gauge->set(static_cast<double>(inflight.size()));
    }

    void onMessage(const mqtt::message& message) {
        const auto parsed = topics.parse(message.get_topic());
        if (!parsed || parsed.value().gateway_id != config.gateway_id) {
            ignored["unknown_topic"]->inc();
            return;
        }
        const auto& bytes = message.get_payload_ref();
        const std::span<const std::uint8_t> payload(
            reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        if (parsed.value().kind == shared::TopicKind::Receipt) {
            onReceipt(payload);
        } else if (parsed.value().kind == shared::TopicKind::Command) {
            onCommand(parsed.value().command_name, payload);
        } else {
            ignored["unknown_topic"]->inc();
        }
    }

    void onReceipt(std::span<const std::uint8_t> payload) {
        auto receipt = shared::decodeReceipt(payload);
        if (!receipt) {
            ignored["undecodable"]->inc();
            spdlog::warn("uplink: undecodable receipt: {}", receipt.error().message());
            return;
        }
        if (receipt.value().gateway_id != config.gateway_id) {
            ignored["wrong_gateway"]->inc();
            return;
        }
        auto deleted = store.acknowledge(receipt.value());
        if (!deleted) {
            // Kept in flight: the next receipt (cumulative) covers the same seqs again.
            spdlog::error("uplink: applying a receipt: {}", deleted.error().message());
            return;
        }
        receipts->inc();
        receipt_count += 1;
        acknowledged->inc(deleted.value());
        acknowledged_count += deleted.value();
        if (receipt.value().epoch == store.epoch()) {
            std::erase_if(inflight,
                          [&](const auto& entry) { return covers(receipt.value(), entry.first); });
        }
        inflight_gauge->set(static_cast<double>(inflight.size()));
        pump();
    }

    void ack(const shared::Command& command, shared::CommandResult result, std::string detail) {
        // Names come from the network: only the known ones become label values.
        const std::string name =
            command.name == "rebirth" || command.name == "resend" ? command.name : "other";
        auto& counter = commands[{name, result}];
        if (counter == nullptr) {
            counter = &metrics_registry.counter(
                "tern_edge_uplink_commands_total", "Commands answered, by name and result",
                {{"name", name},
                 {"result",
                  std::string(kCommandResultNames.at(static_cast<std::size_t>(result)))}});
        }
        counter->inc();
        if (!up) return;
        shared::CommandAck out;
        out.gateway_id = config.gateway_id;
        out.command_id = command.command_id;
        out.result = result;
        out.detail = std::move(detail);
        out.time_ms = shared::toUnixMillis(clock.wallNow());
        auto encoded = shared::encodeCommandAck(out);
        if (!encoded) {
            spdlog::error("uplink: cannot encode command ack: {}", encoded.error().message());
            return;
        }
        publishRaw(topic(shared::TopicKind::CommandAck).value(), encoded.value(), false);
    }

    void onCommand(const std::string& name, std::span<const std::uint8_t> payload) {
        auto decoded = shared::decodeCommand(payload);
        if (!decoded) {
            ignored["undecodable"]->inc();
            spdlog::warn("uplink: undecodable command on cmd/{}: {}", name,
                         decoded.error().message());
            return;
        }
        const auto& command = decoded.value();
        if (command.gateway_id != config.gateway_id) {
            ignored["wrong_gateway"]->inc();
            return;
        }
        if (command.name != name) {
            ack(command, shared::CommandResult::Rejected,
                "command name '" + command.name + "' does not match topic cmd/" + name);
            return;
        }
        const auto now = shared::toUnixMillis(clock.wallNow());
        if (command.expires_at_ms != 0 && now > command.expires_at_ms) {
            ack(command, shared::CommandResult::Expired, "expired before it arrived");
            return;
        }
        if (name == "rebirth") {
            publishStatusNow(shared::StatusKind::Birth);
            ack(command, shared::CommandResult::Done, "birth published");
        } else if (name == "resend") {
            if (command.epoch != store.epoch()) {
                ack(command, shared::CommandResult::Rejected,
                    "epoch " + std::to_string(command.epoch) + " is gone; the store is at epoch " +
                        std::to_string(store.epoch()));
                return;
            }
            constexpr std::size_t kMaxQueuedRanges = 256;
            std::size_t queued = 0;
            for (const auto& range : command.resend_ranges) {
                if (range.first == 0 || range.last < range.first) continue;
                if (resend.size() >= kMaxQueuedRanges) break;
                resend.push_back(range);
                queued += 1;
            }
            ack(command,
                queued == command.resend_ranges.size() ? shared::CommandResult::Accepted
                                                       : shared::CommandResult::Rejected,
                "queued " + std::to_string(queued) + " of " +
                    std::to_string(command.resend_ranges.size()) +
                    " ranges; seqs no longer stored were receipted or evicted (see drops)");
            pump();
        } else {
            ack(command, shared::CommandResult::Rejected, "unknown command '" + name + "'");
        }
    }

    // Ends the session as a lost link would (the broker publishes the will) without waiting.
    void dropSession() {
        try {
            if (client->is_connected()) {
                client->disconnect(mqtt::disconnect_options_builder()
                                       .reason_code(mqtt::ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)
                                       .finalize());
            }
        } catch (const mqtt::exception& e) {
            spdlog::debug("uplink: dropping the session: {}", e.what());
        }
    }

    void cutOff(std::chrono::milliseconds duration) {
        if (stopping || !started) return;
        offline_until = std::chrono::steady_clock::now() + duration;
        spdlog::info("uplink: network cut off for {} ms", duration.count());
        reconnect_timer.cancel();
        if (up) {
            dropSession();
            onDisconnected("network cut off");
        } else {
            scheduleReconnect();
        }
    }

    void stop(std::chrono::milliseconds timeout) {
        if (stopping) return;
        stopping = true;
        reconnect_timer.cancel();
        backlog_timer.cancel();
        tick_timer.cancel();
        status_timer.cancel();
        if (!client) return;
        try {
            if (up && client->is_connected()) {
                const auto death = statusPayload(shared::StatusKind::Death);
                auto token = client->publish(topic(shared::TopicKind::Status).value(), death.data(),
                                             death.size(), 1, true);
                token->wait_for(timeout / 2);
                client->disconnect(timeout / 2)->wait_for(timeout / 2);
            }
        } catch (const mqtt::exception& e) {
            spdlog::warn("uplink: disconnecting: {}", e.what());
        }
        up = false;
        connected_gauge->set(0);
    }

    boost::asio::io_context& io;
    UplinkConfig config;
    Store& store;
    StatusSource status_source;
    const shared::Clock& clock;
    shared::TopicScheme topics;
    Callbacks callbacks;
    std::unique_ptr<mqtt::async_client> client;
    RateLimiter limiter;
    boost::asio::steady_timer reconnect_timer, backlog_timer, tick_timer, status_timer;
    std::mt19937_64 rng;

    bool started = false;
    bool stopping = false;
    bool up = false;
    bool backlog_timer_armed = false;
    unsigned attempt = 0;
    std::chrono::steady_clock::time_point offline_until{};
    bool holding_for_clock = false;
    std::uint64_t session = 0;
    std::map<std::uint64_t, InFlight> inflight;
    std::uint64_t alert_cursor = 0;
    std::uint64_t live_from = 1;
    std::uint64_t live_cursor = 0;
    std::uint64_t backlog_cursor = 0;
    std::deque<shared::SeqRange> resend;
    shared::MetricsRegistry& metrics_registry;
    std::map<std::pair<std::string, shared::CommandResult>, shared::Counter*> commands;

    std::uint64_t published_count = 0;
    std::uint64_t receipt_count = 0;
    std::uint64_t acknowledged_count = 0;
    std::uint64_t timeouts = 0;

    shared::Gauge* connected_gauge = nullptr;
    shared::Gauge* inflight_gauge = nullptr;
    shared::Counter* connects = nullptr;
    shared::Counter* connect_failures = nullptr;
    shared::Counter* disconnects = nullptr;
    std::array<shared::Counter*, 4> published{};
    shared::Counter* published_bytes = nullptr;
    shared::Counter* publish_errors = nullptr;
    shared::Counter* receipts = nullptr;
    shared::Counter* acknowledged = nullptr;
    shared::Counter* receipt_timeouts = nullptr;
    shared::Counter* oversize = nullptr;
    std::map<std::string, shared::Counter*> ignored;
};

Result<std::unique_ptr<Uplink>> Uplink::create(boost::asio::io_context& io, UplinkConfig config,
                                               Store& store, StatusSource status,
                                               const shared::Clock& clock,
                                               shared::MetricsRegistry& metrics) {
    if (auto errors = validateUplinkConfig(config, ""); !errors.empty()) {
        return shared::toError(errors);
    }
    auto cn = certificateCommonName(config.cert_file);
    if (!cn) return cn.error();
    if (cn.value() != config.gateway_id) {
        return Error::stop("identity_mismatch", "certificate " + config.cert_file + " is for '" +
                                                    cn.value() + "', not gateway '" +
                                                    config.gateway_id + "'");
    }
    for (const auto* file : {&config.ca_file, &config.key_file}) {
        if (std::FILE* f = std::fopen(file->c_str(), "r"); f != nullptr) {
            std::fclose(f);
        } else {
            return Error::stop("file_unreadable", "cannot read " + *file);
        }
    }
    auto scheme = shared::TopicScheme::create(config.topic_prefix);
    if (!scheme) return scheme.error();
    auto impl = std::make_shared<Impl>(io, std::move(config), store, std::move(status), clock,
                                       metrics, std::move(scheme.value()));
    try {
        impl->client = std::make_unique<mqtt::async_client>(
            impl->config.broker, impl->config.gateway_id, mqtt::create_options(MQTTVERSION_5));
    } catch (const mqtt::exception& e) {
        return Error::stop("mqtt_client", e.what());
    }
    impl->callbacks.bind(impl);
    impl->client->set_callback(impl->callbacks);
    return std::unique_ptr<Uplink>(new Uplink(std::move(impl)));
}

Uplink::Uplink(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Uplink::~Uplink() = default;

void Uplink::start() { impl_->start(); }
void Uplink::onStored() { impl_->pump(); }
void Uplink::publishStatus() { impl_->publishStatusNow(shared::StatusKind::Update); }
void Uplink::stop(std::chrono::milliseconds timeout) { impl_->stop(timeout); }
void Uplink::cutOff(std::chrono::milliseconds duration) { impl_->cutOff(duration); }
bool Uplink::connected() const { return impl_->up; }
std::size_t Uplink::inFlight() const { return impl_->inflight.size(); }

UplinkCounters Uplink::counters() const {
    return UplinkCounters{impl_->connects->value(), impl_->published_count, impl_->receipt_count,
                          impl_->acknowledged_count, impl_->timeouts};
}

}  // namespace tern::edge
