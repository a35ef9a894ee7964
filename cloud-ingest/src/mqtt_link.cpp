#include "tern/ingest/mqtt_link.h"

#include <MQTTAsync.h>
#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "tern/shared/backoff.h"

namespace tern::ingest {

using namespace std::chrono_literals;

struct MqttLink::Impl {
    MqttConfig config;
    const shared::Clock& clock;
    MqttLinkHandlers handlers;
    std::unique_ptr<mqtt::async_client> client;
    mqtt::connect_options connect_options;
    std::vector<std::string> filters;

    std::mutex mutex;
    std::condition_variable cv;
    bool stopping = false;
    bool started = false;
    bool link_lost = false;  // wakes the connector
    std::atomic<bool> is_connected{false};
    std::atomic<bool> is_subscribed{false};
    std::thread connector;

    shared::Counter* connects = nullptr;
    shared::Counter* connect_failures = nullptr;
    shared::Counter* connection_losses = nullptr;
    shared::Counter* messages = nullptr;
    shared::Counter* publishes = nullptr;
    shared::Counter* publish_failures = nullptr;
    shared::Gauge* connected_gauge = nullptr;

    Impl(const MqttConfig& c, const shared::Clock& clk, MqttLinkHandlers h)
        : config(c), clock(clk), handlers(std::move(h)) {}

    // Fills connect_options in place (see the note on properties below).
    void buildConnectOptions() {
        auto ssl = mqtt::ssl_options_builder()
                       .trust_store(config.ca_file)
                       .key_store(config.cert_file)
                       .private_key(config.key_file)
                       .enable_server_cert_auth(true)
                       .verify(true)
                       .finalize();
        const auto expiry = std::chrono::duration_cast<std::chrono::seconds>(config.session_expiry);
        connect_options =
            mqtt::connect_options_builder()
                .mqtt_version(MQTTVERSION_5)
                .clean_start(false)
                .keep_alive_interval(
                    std::chrono::duration_cast<std::chrono::seconds>(config.keepalive))
                .connect_timeout(
                    std::chrono::duration_cast<std::chrono::seconds>(config.connect_timeout))
                .max_inflight(1000)
                .ssl(std::move(ssl))
                .finalize();
        // Set on the finished object, not through the builder: Paho C++ 1.2's builder moves the
        // options, and the move leaves the C struct pointing at the moved-from properties
        // (eclipse-paho/paho.mqtt.cpp#362, #444); a copy, as connect() makes, is correct.
        connect_options.set_properties(mqtt::properties{mqtt::property(
            mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<int32_t>(expiry.count()))});
    }

    // One attempt: connect, then subscribe. Runs on the connector thread, so it may wait on
    // tokens (Paho's callback thread must not).
    bool connectOnce() {
        try {
            auto token = client->connect(connect_options);
            if (!token->wait_for(config.connect_timeout + 1s)) {
                throw mqtt::exception(MQTTASYNC_OPERATION_INCOMPLETE, "connect timed out");
            }
            is_connected = true;
            connected_gauge->set(1);
            connects->inc();
            const bool session_present = token->get_connect_response().is_session_present();
            spdlog::info("mqtt: connected to {} as {} (session {})", config.broker,
                         config.client_id, session_present ? "resumed" : "new");
            auto collection = mqtt::string_collection::create(filters);
            mqtt::iasync_client::qos_collection qos(filters.size(), 1);
            auto sub = client->subscribe(collection, qos);
            if (!sub->wait_for(config.connect_timeout)) {
                throw mqtt::exception(MQTTASYNC_OPERATION_INCOMPLETE, "subscribe timed out");
            }
            const auto granted = sub->get_subscribe_response();
            for (auto code : granted.get_reason_codes()) {
                if (code >= 0x80) {
                    throw mqtt::exception(code, "a subscription was refused (check the ACL)");
                }
            }
            is_subscribed = true;
            spdlog::info("mqtt: subscribed to {} filters", filters.size());
            if (handlers.on_subscribed) handlers.on_subscribed();
            return true;
        } catch (const mqtt::exception& e) {
            connect_failures->inc();
            spdlog::warn("mqtt: connecting to {}: {}", config.broker, e.what());
            is_subscribed = false;
            is_connected = false;
            connected_gauge->set(0);
            try {
                if (client->is_connected()) client->disconnect(0)->wait_for(1s);
            } catch (const mqtt::exception&) {
            }
            return false;
        }
    }

    void runConnector() {
        std::mt19937_64 rng{std::random_device{}()};
        unsigned attempt = 0;
        std::unique_lock lock(mutex);
        while (!stopping) {
            if (!is_connected) {
                lock.unlock();
                const bool ok = connectOnce();
                lock.lock();
                if (ok) {
                    attempt = 0;
                    link_lost = false;
                    continue;
                }
                const auto delay =
                    shared::backoffDelay(attempt, config.reconnect_min, config.reconnect_max, rng);
                attempt += 1;
                cv.wait_for(lock, delay, [&] { return stopping; });
                continue;
            }
            cv.wait(lock, [&] { return stopping || link_lost; });
            link_lost = false;
        }
    }

    void onConnectionLost(const std::string& cause) {
        connection_losses->inc();
        spdlog::warn("mqtt: connection lost: {}", cause.empty() ? "no reason given" : cause);
        is_subscribed = false;
        is_connected = false;
        connected_gauge->set(0);
        {
            std::lock_guard lock(mutex);
            link_lost = true;
        }
        cv.notify_all();
    }
};

MqttLink::MqttLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MqttLink::~MqttLink() { stop(1s); }

shared::Result<std::unique_ptr<MqttLink>> MqttLink::create(const MqttConfig& config,
                                                           const shared::TopicScheme& topics,
                                                           const shared::Clock& clock,
                                                           MqttLinkHandlers handlers,
                                                           shared::MetricsRegistry& metrics) {
    auto impl = std::make_unique<Impl>(config, clock, std::move(handlers));
    for (auto kind :
         {shared::TopicKind::Telemetry, shared::TopicKind::Alerts, shared::TopicKind::CommandAck}) {
        auto filter = topics.fleetFilter(kind, config.share_group);
        if (!filter) return shared::Error::stop("bad_topic", filter.error().message());
        impl->filters.push_back(filter.value());
    }
    // Not shared: every ingest process keeps the whole fleet's state, and a broker does not
    // deliver retained messages to shared subscriptions.
    auto status = topics.fleetFilter(shared::TopicKind::Status);
    if (!status) return shared::Error::stop("bad_topic", status.error().message());
    impl->filters.push_back(status.value());
    if (!config.share_group.empty()) {
        // Other ingest processes in the group receipt what they spooled; this one learns from
        // their receipts what not to store again (Spool::admitElsewhere).
        auto receipts = topics.fleetFilter(shared::TopicKind::Receipt);
        if (!receipts) return shared::Error::stop("bad_topic", receipts.error().message());
        impl->filters.push_back(receipts.value());
    }

    impl->connects = &metrics.counter("tern_ingest_mqtt_connects_total", "Connections made");
    impl->connect_failures =
        &metrics.counter("tern_ingest_mqtt_connect_failures_total", "Failed connection attempts");
    impl->connection_losses =
        &metrics.counter("tern_ingest_mqtt_connection_losses_total", "Connections lost");
    impl->messages = &metrics.counter("tern_ingest_mqtt_messages_total", "Messages received");
    impl->publishes =
        &metrics.counter("tern_ingest_mqtt_publishes_total", "Receipts and commands published");
    impl->publish_failures = &metrics.counter("tern_ingest_mqtt_publish_failures_total",
                                              "Receipts and commands that could not be published");
    impl->connected_gauge =
        &metrics.gauge("tern_ingest_mqtt_connected", "1 while connected to the broker");
    // Paho C formats every packet into an in-memory trace ring unless told otherwise: about a
    // fifth of its receive thread's time per message (tests/bench/ingest_bench, perf). Errors
    // are all the ring needs to hold; it is process-wide and nothing else reads it.
    MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
    try {
        impl->client = std::make_unique<mqtt::async_client>(config.broker, config.client_id,
                                                            mqtt::create_options(MQTTVERSION_5));
    } catch (const mqtt::exception& e) {
        return shared::Error::stop("bad_broker", e.what());
    }
    impl->buildConnectOptions();
    auto* raw = impl.get();
    impl->client->set_message_callback([raw](mqtt::const_message_ptr message) {
        raw->messages->inc();
        const auto& bytes = message->get_payload_ref();
        MqttMessage received{
            message->get_topic(),
            shared::Bytes(bytes.data(), bytes.data() + bytes.size()),
            message->is_retained(),
            shared::toUnixMillis(raw->clock.wallNow()),
        };
        if (raw->handlers.on_message) raw->handlers.on_message(std::move(received));
    });
    impl->client->set_connection_lost_handler(
        [raw](const std::string& cause) { raw->onConnectionLost(cause); });
    impl->client->set_disconnected_handler([raw](const mqtt::properties&, mqtt::ReasonCode code) {
        raw->onConnectionLost("the broker disconnected us (reason " +
                              std::to_string(static_cast<int>(code)) + ")");
    });
    return std::unique_ptr<MqttLink>(new MqttLink(std::move(impl)));
}

bool MqttLink::start(std::chrono::milliseconds wait) {
    {
        std::lock_guard lock(impl_->mutex);
        if (impl_->started) return impl_->is_subscribed;
        impl_->started = true;
    }
    impl_->connector = std::thread([this] { impl_->runConnector(); });
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (!impl_->is_subscribed && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    return impl_->is_subscribed;
}

bool MqttLink::connected() const { return impl_->is_connected; }
bool MqttLink::subscribed() const { return impl_->is_subscribed; }

shared::VoidResult MqttLink::publish(const std::string& topic,
                                     std::span<const std::uint8_t> payload, int qos) {
    if (!impl_->is_connected) {
        impl_->publish_failures->inc();
        return shared::Error::retry("not_connected", "not connected to the broker");
    }
    try {
        impl_->client->publish(topic, payload.data(), payload.size(), qos, false);
        impl_->publishes->inc();
        return shared::success();
    } catch (const mqtt::exception& e) {
        impl_->publish_failures->inc();
        return shared::Error::retry("publish_failed", e.what());
    }
}

void MqttLink::stop(std::chrono::milliseconds timeout) {
    {
        std::lock_guard lock(impl_->mutex);
        if (impl_->stopping) return;
        impl_->stopping = true;
    }
    impl_->cv.notify_all();
    if (impl_->connector.joinable()) impl_->connector.join();
    try {
        if (impl_->client->is_connected()) impl_->client->disconnect(timeout)->wait_for(timeout);
    } catch (const mqtt::exception& e) {
        spdlog::warn("mqtt: disconnecting: {}", e.what());
    }
    impl_->is_subscribed = false;
    impl_->is_connected = false;
    impl_->connected_gauge->set(0);
}

}  // namespace tern::ingest
