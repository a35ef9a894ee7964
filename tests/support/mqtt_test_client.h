#pragma once

// A hand-driven MQTT 5 client for integration tests: TLS against a test CA, optionally with a
// client certificate, clean start, QoS 1 throughout. Incoming messages are queued for consume().
// Every Paho call is bounded by kOperationTimeout; nothing sleeps for a fixed time.
//
// Connects in the constructor (throws if the broker refuses or does not answer in time) and
// disconnects, with the same bound, in the destructor, which tolerates a broker that is already
// gone. Not thread-safe: use from the test's thread.

#include <mqtt/async_client.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "test_pki.h"

namespace tern::test {

class MosquittoFixture;

class MqttTestClient {
public:
    static constexpr std::chrono::milliseconds kOperationTimeout = std::chrono::seconds(5);

    // `identity` nullopt: connect without a client certificate. The server certificate is
    // checked against `caFile`, hostname included (the SAN is IP:127.0.0.1).
    MqttTestClient(const std::string& uri, const std::string& clientId,
                   const std::filesystem::path& caFile, std::optional<TlsIdentity> identity);
    // Connects to `broker` with the client certificate for `cn` (which the broker takes as the
    // user name); an empty `clientId` means `cn`.
    MqttTestClient(MosquittoFixture& broker, const std::string& cn,
                   const std::string& clientId = "");
    ~MqttTestClient();
    MqttTestClient(const MqttTestClient&) = delete;
    MqttTestClient& operator=(const MqttTestClient&) = delete;

    // The reason code of a QoS 1 publish: from the PUBACK, or from the failure Paho reports for
    // a PUBACK with an error code; -1 if no PUBACK came in time.
    int publish(const std::string& topic, std::string_view payload, bool retained = false);
    int publish(const std::string& topic, std::span<const std::uint8_t> payload,
                bool retained = false);

    // The SUBACK reason code for one topic filter (QoS 1); -1 if none came in time.
    int subscribe(const std::string& filter);

    // The next message, or nullptr after `timeout`.
    mqtt::const_message_ptr consume(std::chrono::milliseconds timeout);

private:
    int publishBytes(const std::string& topic, const void* data, std::size_t size, bool retained);

    mqtt::async_client client_;
};

}  // namespace tern::test
