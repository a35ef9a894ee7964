#include "mqtt_test_client.h"

#include <stdexcept>
#include <utility>

#include "mosquitto_fixture.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

mqtt::connect_options connectOptions(const std::filesystem::path& caFile,
                                     const std::optional<TlsIdentity>& identity) {
    auto ssl = mqtt::ssl_options_builder()
                   .trust_store(caFile.string())
                   .enable_server_cert_auth(true)
                   .verify(true)  // hostname check against the SAN (IP:127.0.0.1)
                   .finalize();
    if (identity) {
        ssl.set_key_store(identity->cert.string());
        ssl.set_private_key(identity->key.string());
    }
    return mqtt::connect_options_builder()
        .mqtt_version(MQTTVERSION_5)
        .clean_start(true)
        .connect_timeout(MqttTestClient::kOperationTimeout)
        .ssl(std::move(ssl))
        .finalize();
}

}  // namespace

MqttTestClient::MqttTestClient(const std::string& uri, const std::string& clientId,
                               const std::filesystem::path& caFile,
                               std::optional<TlsIdentity> identity)
    : client_(uri, clientId, mqtt::create_options(MQTTVERSION_5)) {
    client_.start_consuming();
    if (!client_.connect(connectOptions(caFile, identity))->wait_for(kOperationTimeout)) {
        throw std::runtime_error("connect timed out for " + clientId);
    }
}

MqttTestClient::MqttTestClient(MosquittoFixture& broker, const std::string& cn,
                               const std::string& clientId)
    : MqttTestClient(broker.uri(), clientId.empty() ? cn : clientId, broker.caFile(),
                     TlsIdentity{broker.clientCert(cn), broker.clientKey(cn)}) {}

MqttTestClient::~MqttTestClient() {
    try {
        if (client_.is_connected()) client_.disconnect()->wait_for(kOperationTimeout);
    } catch (const mqtt::exception&) {
        // The broker may already be gone (kill()); nothing left to clean up.
    }
}

int MqttTestClient::publish(const std::string& topic, std::string_view payload, bool retained) {
    return publishBytes(topic, payload.data(), payload.size(), retained);
}

int MqttTestClient::publish(const std::string& topic, std::span<const std::uint8_t> payload,
                            bool retained) {
    return publishBytes(topic, payload.data(), payload.size(), retained);
}

int MqttTestClient::publishBytes(const std::string& topic, const void* data, std::size_t size,
                                 bool retained) {
    try {
        auto token = client_.publish(topic, data, size, 1, retained);
        if (!token->wait_for(kOperationTimeout)) return -1;
        return token->get_reason_code();
    } catch (const mqtt::exception& e) {
        return e.get_reason_code();
    }
}

int MqttTestClient::subscribe(const std::string& filter) {
    try {
        auto token = client_.subscribe(filter, 1);
        if (!token->wait_for(kOperationTimeout)) return -1;
        const auto codes = token->get_subscribe_response().get_reason_codes();
        return codes.empty() ? -1 : codes.front();
    } catch (const mqtt::exception& e) {
        return e.get_reason_code();
    }
}

mqtt::const_message_ptr MqttTestClient::consume(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= 0s) return nullptr;
        mqtt::const_message_ptr msg;
        // A null message is Paho's "connection lost" marker; keep waiting until the deadline.
        if (client_.try_consume_message_for(&msg, left) && msg) return msg;
    }
}

}  // namespace tern::test
