#pragma once

// The ingest's one MQTT connection: MQTT 5 over TLS with the ingest's client certificate, a
// persistent session (clean start off, session_expiry), Paho's automatic reconnect, and the
// subscriptions made again on every (re)connect:
//   $share/<group>/<prefix>/gw/+/telemetry, .../alerts, .../cmd-ack   split across ingest processes
//   <prefix>/gw/+/status                                              every process: fleet state,
//                                                                     and retained statuses are
//                                                                     not delivered to shared ones
//   <prefix>/gw/+/receipt (with a share group)                        what the other processes
//                                                                     spooled (admitElsewhere)
// Receipts are published QoS 0 and commands QoS 1, neither waited for: a receipt that is lost is
// replaced by the next one (they are cumulative), and a gateway that got none retransmits and so
// makes another one due. QoS 1 receipts were bounded by the broker's receive maximum (mosquitto's
// max_inflight_messages, 20 messages in flight): at 2,500 gateways they fell behind.
//
// Threads: the message handler and on_connected run on Paho's callback thread; everything else may
// be called from any thread. The message handler may block (that is the intake's backpressure:
// Paho stops reading the socket, TCP pushes back, the broker queues).
//
// Paho C uses select(), so the connection must be made while the process has fewer than 1024
// descriptors: create and connect() this before the HTTP server starts accepting.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "tern/ingest/config.h"
#include "tern/shared/codec.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"
#include "tern/shared/topics.h"

namespace tern::ingest {

struct MqttMessage {
    std::string topic;
    shared::Bytes payload;
    bool retained = false;
    std::int64_t received_ms = 0;
};

struct MqttLinkHandlers {
    std::function<void(MqttMessage&&)> on_message;
    // After the subscriptions of a (re)connection were granted.
    std::function<void()> on_subscribed;
};

class MqttLink {
public:
    // Error::stop for a client that cannot be created (a bad URL).
    static shared::Result<std::unique_ptr<MqttLink>> create(const MqttConfig& config,
                                                            const shared::TopicScheme& topics,
                                                            const shared::Clock& clock,
                                                            MqttLinkHandlers handlers,
                                                            shared::MetricsRegistry& metrics);
    ~MqttLink();  // disconnect() with a short timeout if still connected
    MqttLink(const MqttLink&) = delete;
    MqttLink& operator=(const MqttLink&) = delete;

    // Starts connecting (and reconnecting, forever) and waits up to `wait` for the first
    // connection and its subscriptions. Returns whether they were made; either way Paho keeps
    // trying in the background.
    bool start(std::chrono::milliseconds wait);

    bool connected() const;
    // Connected and every subscription granted: what /readyz reports.
    bool subscribed() const;

    // QoS 1, not retained, without waiting for the PUBACK. Errors: "not_connected",
    // "publish_failed" (both retry).
    shared::VoidResult publish(const std::string& topic, std::span<const std::uint8_t> payload,
                               int qos);

    // Unsubscribes nothing (the session keeps the subscriptions for the next start), disconnects.
    void stop(std::chrono::milliseconds timeout);

private:
    struct Impl;
    explicit MqttLink(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::ingest
