// Checks the broker fixture and the deploy config it uses (deploy/mosquitto/): TLS with client
// certificates from the test PKI, identity-based ACLs, and persistence across a crash.

#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "mosquitto_fixture.h"
#include "mqtt_test_client.h"
#include "temp_dir.h"
#include "test_pki.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

// Every wait in these tests is bounded by this; none sleeps for a fixed time.
constexpr auto kTimeout = 5s;

class BrokerFixtureTest : public ::testing::Test {
protected:
    void SetUp() override {
        broker_ = std::make_unique<MosquittoFixture>(
            MosquittoOptions{.clientCns = {"gw-a", "gw-b", "tern-ingest"}});
    }

    void TearDown() override {
        if (HasFailure() && broker_) std::cerr << "broker log:\n" << broker_->log() << "\n";
    }

    std::unique_ptr<MqttTestClient> connect(const std::string& cn,
                                            const std::string& clientId = "") {
        return std::make_unique<MqttTestClient>(*broker_, cn, clientId);
    }

    std::unique_ptr<MosquittoFixture> broker_;
};

TEST_F(BrokerFixtureTest, GatewayTelemetryReachesIngestSharedSubscription) {
    auto ingest = connect("tern-ingest", "tern-ingest-0");
    ASSERT_EQ(ingest->subscribe("$share/ingest/tern/v1/gw/+/telemetry"), mqtt::GRANTED_QOS_1);
    auto gw = connect("gw-a");

    ASSERT_EQ(gw->publish("tern/v1/gw/gw-a/telemetry", "batch-1"), mqtt::SUCCESS);

    auto msg = ingest->consume(kTimeout);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(msg->get_topic(), "tern/v1/gw/gw-a/telemetry");
    EXPECT_EQ(msg->to_string(), "batch-1");
    EXPECT_EQ(msg->get_qos(), 1);
}

TEST_F(BrokerFixtureTest, GatewayCannotPublishAsAnotherGateway) {
    auto ingest = connect("tern-ingest", "tern-ingest-0");
    ASSERT_EQ(ingest->subscribe("$share/ingest/tern/v1/gw/+/telemetry"), mqtt::GRANTED_QOS_1);
    auto gw = connect("gw-a");

    // MQTT 5: mosquitto 2.0 answers an ACL-denied QoS 1 publish with PUBACK 0x87.
    EXPECT_EQ(gw->publish("tern/v1/gw/gw-b/telemetry", "forged"), mqtt::NOT_AUTHORIZED);
    // QoS 1 messages from one client are delivered in order, so once this later, allowed one
    // arrives the forged one can no longer show up: no guessed wait is needed.
    ASSERT_EQ(gw->publish("tern/v1/gw/gw-a/telemetry", "sentinel"), mqtt::SUCCESS);

    auto msg = ingest->consume(kTimeout);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(msg->get_topic(), "tern/v1/gw/gw-a/telemetry");
    EXPECT_EQ(msg->to_string(), "sentinel");
}

// A denied subscription is either refused in the SUBACK or granted and then never fed: mosquitto
// 2.0's acl_file has no subscribe rules (it grants every SUBSCRIBE and applies "read" rules to each
// delivery), while a plugin may refuse with 0x87. Both keep gw-b's commands from gw-a.
TEST_F(BrokerFixtureTest, GatewayReceivesOnlyItsOwnCommands) {
    auto gw = connect("gw-a");
    const int foreign = gw->subscribe("tern/v1/gw/gw-b/cmd/#");
    EXPECT_TRUE(foreign == mqtt::NOT_AUTHORIZED || foreign == mqtt::GRANTED_QOS_1) << foreign;
    const int wildcard = gw->subscribe("tern/v1/gw/+/receipt");
    EXPECT_TRUE(wildcard == mqtt::NOT_AUTHORIZED || wildcard == mqtt::GRANTED_QOS_1) << wildcard;
    ASSERT_EQ(gw->subscribe("tern/v1/gw/gw-a/cmd/#"), mqtt::GRANTED_QOS_1);

    auto ingest = connect("tern-ingest", "tern-ingest-0");
    ASSERT_EQ(ingest->publish("tern/v1/gw/gw-b/cmd/rebirth", "not-for-gw-a"), mqtt::SUCCESS);
    ASSERT_EQ(ingest->publish("tern/v1/gw/gw-b/receipt", "not-for-gw-a"), mqtt::SUCCESS);
    // In-order delivery from one publisher: once this arrives, the two above cannot follow.
    ASSERT_EQ(ingest->publish("tern/v1/gw/gw-a/cmd/rebirth", "now"), mqtt::SUCCESS);

    auto msg = gw->consume(kTimeout);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(msg->get_topic(), "tern/v1/gw/gw-a/cmd/rebirth");
    EXPECT_EQ(msg->to_string(), "now");
}

TEST_F(BrokerFixtureTest, IngestCannotPublishTelemetry) {
    auto gw = connect("gw-b");
    ASSERT_EQ(gw->subscribe("tern/v1/gw/gw-b/receipt"), mqtt::GRANTED_QOS_1);
    auto ingest = connect("tern-ingest", "tern-ingest-0");
    EXPECT_EQ(ingest->publish("tern/v1/gw/gw-b/telemetry", "forged"), mqtt::NOT_AUTHORIZED);
    ASSERT_EQ(ingest->publish("tern/v1/gw/gw-b/receipt", "r1"), mqtt::SUCCESS);
    auto msg = gw->consume(kTimeout);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(msg->get_topic(), "tern/v1/gw/gw-b/receipt");
}

TEST_F(BrokerFixtureTest, ClientWithoutCertificateIsRejected) {
    EXPECT_THROW(MqttTestClient(broker_->uri(), "gw-a", broker_->caFile(), std::nullopt),
                 std::exception);
}

// The deploy config loads the CA's revocation list: a revoked gateway is refused at the TLS
// handshake once the broker has restarted with the new list, and the others are not.
TEST_F(BrokerFixtureTest, ARevokedGatewayIsRefusedAfterTheBrokerRestarts) {
    ASSERT_NO_THROW(connect("gw-b"));
    broker_->pki().revoke("gw-b");
    broker_->restart();
    EXPECT_THROW(connect("gw-b"), std::exception);
    EXPECT_NO_THROW(connect("gw-a"));
}

TEST_F(BrokerFixtureTest, ClientCertificateFromAnotherCaIsRejected) {
    TempDir otherDir("tern-other-pki");
    TestPki other(otherDir.path(), "Rogue CA");
    EXPECT_THROW(MqttTestClient(broker_->uri(), "gw-a", broker_->caFile(), other.client("gw-a")),
                 std::exception);
}

TEST_F(BrokerFixtureTest, RetainedStatusSurvivesBrokerCrash) {
    {
        auto gw = connect("gw-a");
        ASSERT_EQ(gw->publish("tern/v1/gw/gw-a/status", "online", /*retained=*/true),
                  mqtt::SUCCESS);
    }
    // A crash keeps only what the last snapshot holds, so wait for one taken after the PUBACK.
    const auto acked = std::filesystem::file_time_type::clock::now();
    ASSERT_TRUE(broker_->waitForSnapshot(acked, 10s));
    broker_->kill();
    ASSERT_FALSE(broker_->running());
    broker_->restart();

    auto ingest = connect("tern-ingest", "tern-ingest-0");
    ASSERT_EQ(ingest->subscribe("tern/v1/gw/gw-a/status"), mqtt::GRANTED_QOS_1);
    auto msg = ingest->consume(kTimeout);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(msg->get_topic(), "tern/v1/gw/gw-a/status");
    EXPECT_EQ(msg->to_string(), "online");
    EXPECT_TRUE(msg->is_retained());
}

}  // namespace
}  // namespace tern::test
