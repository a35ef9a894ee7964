// The memory floor of any agent built on Debian's Paho MQTT C++ over TLS: a client that does only
// what the agent's uplink must do (MQTT 5, TLS with a client certificate, subscribe to its
// command and receipt topics, publish one QoS 1 message a second) and links nothing else.
// edge_agent_bench runs it beside tern-edge, so the difference between the two RSS figures is
// what tern-edge itself costs. Its options are the uplink's (edge/src/uplink/uplink.cpp): TLS with
// verification, keepalive, an in-flight window, a retained will. Topics are spelled out rather than
// taken from tern_shared's TopicScheme, which would bring that library's dependencies in.
//
// Usage: paho_tls_floor <uri> <ca> <cert> <key> <gateway-id>
// Prints "connected" once subscribed; runs until SIGTERM or SIGINT.

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

namespace {

std::atomic<bool> stopping{false};

void onSignal(int) { stopping = true; }

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s <uri> <ca> <cert> <key> <gateway-id>\n", argv[0]);
        return 2;
    }
    const std::string uri = argv[1];
    const std::string gateway = argv[5];
    std::signal(SIGTERM, onSignal);
    std::signal(SIGINT, onSignal);
    try {
        mqtt::async_client client(uri, gateway, mqtt::create_options(MQTTVERSION_5));
        auto ssl = mqtt::ssl_options_builder()
                       .trust_store(argv[2])
                       .key_store(argv[3])
                       .private_key(argv[4])
                       .enable_server_cert_auth(true)
                       .verify(true)
                       .finalize();
        const std::string prefix = "tern/v1/gw/" + gateway + "/";
        const std::string death = "death";
        auto connect =
            mqtt::connect_options_builder()
                .mqtt_version(MQTTVERSION_5)
                .clean_start(true)
                .keep_alive_interval(std::chrono::seconds(5))
                .connect_timeout(std::chrono::seconds(3))
                .max_inflight(32)  // the default inflight_window + 16, as the uplink
                .will(mqtt::will_options(prefix + "status", death.data(), death.size(), 1, true))
                .ssl(std::move(ssl))
                .finalize();
        client.connect(connect)->wait();
        client.subscribe(prefix + "cmd/+", 1)->wait();
        client.subscribe(prefix + "receipt", 1)->wait();
        std::printf("connected\n");
        std::fflush(stdout);

        // About the size of one of tern-edge's 1-second batches of 1,000 readings.
        const std::string payload(1200, 'x');
        while (!stopping) {
            client.publish(prefix + "telemetry", payload.data(), payload.size(), 1, false)->wait();
            for (int i = 0; i < 10 && !stopping; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        }
        client.disconnect()->wait();
        return 0;
    } catch (const mqtt::exception& e) {
        std::fprintf(stderr, "paho_tls_floor: %s\n", e.what());
        return 1;
    }
}
