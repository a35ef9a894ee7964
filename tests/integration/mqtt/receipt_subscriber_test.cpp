// Checks the receipt-sending test subscriber (tests/support/receipt_subscriber.h) against a real
// broker: what it records, the receipts it sends (cumulative seq, ranges, coalescing, duplicates),
// receipting turned off, and a broker crash in the middle. The gateways here are hand-driven
// Paho clients with the gateways' certificates.

#include "receipt_subscriber.h"

#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mosquitto_fixture.h"
#include "mqtt_test_client.h"
#include "tern/shared/codec.h"
#include "tern/shared/messages.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using shared::Receipt;
using shared::SeqRange;

// Every wait is bounded by one of these; none sleeps for a fixed time.
constexpr auto kTimeout = 5s;
// Paho retries a lost connection after 1 s, then 2 s (ReceiptSubscriberOptions' defaults).
constexpr auto kReconnectTimeout = 15s;
// A fixed wall time for message contents (2024-01-01T00:00:00Z): the codec only checks ranges.
constexpr std::int64_t kT0 = 1'704'067'200'000;

shared::Bytes encoded(shared::Result<shared::Bytes> bytes) {
    if (!bytes) throw std::runtime_error("encode failed: " + bytes.error().message());
    return std::move(bytes).value();
}

// Readings with non-decreasing sensor indexes, so the decoded batch (grouped by sensor) compares
// equal to this one.
shared::TelemetryBatch makeBatch(const std::string& gateway, std::uint64_t epoch, std::uint64_t seq,
                                 std::size_t readings) {
    shared::TelemetryBatch batch;
    batch.gateway_id = gateway;
    batch.sequence = {epoch, seq};
    batch.sent_at_ms = kT0 + static_cast<std::int64_t>(seq) * 1000;
    batch.clock_synced = true;
    for (std::size_t i = 0; i < readings; ++i) {
        batch.readings.push_back({.sensor = static_cast<std::uint16_t>(i / 2),
                                  .time_ms = batch.sent_at_ms - 500 + static_cast<std::int64_t>(i),
                                  .value = static_cast<double>(seq) * 10.0 + static_cast<double>(i),
                                  .quality = shared::Quality::Good});
    }
    return batch;
}

shared::Alert makeAlert(const std::string& gateway, std::uint64_t epoch, std::uint64_t seq) {
    return {.gateway_id = gateway,
            .sequence = {epoch, seq},
            .incident_id = seq,
            .rule = "temp-high",
            .sensor = 3,
            .severity = shared::Severity::Critical,
            .state = shared::AlertState::Firing,
            .value = 97.5,
            .time_ms = kT0 + static_cast<std::int64_t>(seq) * 1000,
            .clock_synced = true,
            .message = "temperature above 90"};
}

bool covers(const Receipt& receipt, std::uint64_t seq) {
    if (seq <= receipt.cumulative_seq) return true;
    for (const auto& range : receipt.ranges) {
        if (range.first <= seq && seq <= range.last) return true;
    }
    return false;
}

// The seqs a receipt covers, up to `limit` (enough for these tests' small seqs).
std::set<std::uint64_t> coveredUpTo(const Receipt& receipt, std::uint64_t limit) {
    std::set<std::uint64_t> out;
    for (std::uint64_t seq = 1; seq <= limit; ++seq) {
        if (covers(receipt, seq)) out.insert(seq);
    }
    return out;
}

std::string topicOf(const std::string& gateway, const std::string& kind) {
    return "tern/v1/gw/" + gateway + "/" + kind;
}

// A hand-driven gateway: an MQTT 5 client with the gateway's certificate, plus the gateway's
// topics and receipts.
class GatewayClient : public MqttTestClient {
public:
    GatewayClient(MosquittoFixture& broker, const std::string& id)
        : MqttTestClient(broker, id), id_(id) {}

    int publishTelemetry(const shared::Bytes& payload) {
        return publish(topicOf(id_, "telemetry"), payload);
    }

    // Consumes receipts until one satisfies `done` (returned) or kTimeout passes (nullopt). Every
    // receipt consumed, the last one included, is appended to `seen`. Anything else fails the test.
    std::optional<Receipt> awaitReceipt(const std::function<bool(const Receipt&)>& done,
                                        std::vector<Receipt>& seen) {
        const auto deadline = std::chrono::steady_clock::now() + kTimeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            auto msg = consume(std::max(left, 0ms));
            if (!msg) return std::nullopt;
            EXPECT_EQ(msg->get_topic(), topicOf(id_, "receipt"));
            const auto& payload = msg->get_payload();
            auto receipt = shared::decodeReceipt(
                {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()});
            if (!receipt) {
                ADD_FAILURE() << "undecodable receipt: " << receipt.error().message();
                continue;
            }
            seen.push_back(receipt.value());
            if (done(receipt.value())) return receipt.value();
        }
    }
    std::optional<Receipt> awaitReceipt(const std::function<bool(const Receipt&)>& done) {
        std::vector<Receipt> ignored;
        return awaitReceipt(done, ignored);
    }

private:
    std::string id_;
};

std::function<bool(const Receipt&)> receiptIs(std::uint64_t cumulative,
                                              std::vector<SeqRange> ranges = {}) {
    return [cumulative, ranges = std::move(ranges)](const Receipt& receipt) {
        return receipt.cumulative_seq == cumulative && receipt.ranges == ranges;
    };
}

class ReceiptSubscriberTest : public ::testing::Test {
protected:
    void SetUp() override {
        broker_ = std::make_unique<MosquittoFixture>(
            MosquittoOptions{.clientCns = {"gw-1", "gw-2", "tern-ingest"}});
    }

    void TearDown() override {
        if (HasFailure() && broker_) std::cerr << "broker log:\n" << broker_->log() << "\n";
    }

    std::unique_ptr<ReceiptSubscriber> startIngest(ReceiptSubscriberOptions options = {}) {
        return std::make_unique<ReceiptSubscriber>(*broker_, std::move(options));
    }

    // A gateway subscribed to its receipts.
    std::unique_ptr<GatewayClient> connectGateway(const std::string& id) {
        auto gateway = std::make_unique<GatewayClient>(*broker_, id);
        if (gateway->subscribe(topicOf(id, "receipt")) != mqtt::GRANTED_QOS_1) {
            throw std::runtime_error(id + ": receipt subscription refused");
        }
        return gateway;
    }

    std::unique_ptr<MosquittoFixture> broker_;
};

TEST_F(ReceiptSubscriberTest, RecordsBatchesAndReceiptsAGapWithARange) {
    auto ingest = startIngest();
    auto gw = connectGateway("gw-1");

    const std::vector<shared::TelemetryBatch> sent{
        makeBatch("gw-1", 1, 1, 3), makeBatch("gw-1", 1, 2, 2), makeBatch("gw-1", 1, 4, 1)};
    std::vector<shared::Bytes> payloads;
    for (const auto& batch : sent) {
        payloads.push_back(encoded(shared::encodeBatch(batch)));
        ASSERT_EQ(gw->publishTelemetry(payloads.back()), mqtt::SUCCESS);
    }

    ASSERT_TRUE(ingest->waitFor([&] { return ingest->messages("gw-1").size() == 3; }, kTimeout));
    const auto got = ingest->messages("gw-1");
    for (std::size_t i = 0; i < sent.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(got[i].gateway, "gw-1");
        EXPECT_EQ(got[i].sequence, sent[i].sequence);
        EXPECT_EQ(got[i].kind, shared::TopicKind::Telemetry);
        ASSERT_NE(got[i].batch(), nullptr);
        EXPECT_EQ(*got[i].batch(), sent[i]);
        EXPECT_EQ(got[i].payloadBytes, payloads[i].size());
        EXPECT_FALSE(got[i].duplicate);
        if (i > 0) {
            EXPECT_LT(got[i - 1].arrival, got[i].arrival);
        }
    }
    EXPECT_EQ(ingest->distinctReadings("gw-1"), 6U);
    EXPECT_TRUE(ingest->duplicates("gw-1").empty());

    // Receipts sent before seq 4 arrived may say less, but none may cover seq 3, which was never
    // sent: a gateway would delete it.
    std::vector<Receipt> seen;
    const auto receipt = gw->awaitReceipt(receiptIs(2, {{4, 4}}), seen);
    ASSERT_TRUE(receipt.has_value());
    EXPECT_EQ(receipt->gateway_id, "gw-1");
    EXPECT_EQ(receipt->epoch, 1U);
    EXPECT_GT(receipt->issued_at_ms, 0);
    for (const auto& r : seen) {
        const auto covered = coveredUpTo(r, 10);
        EXPECT_TRUE(std::includes(std::set<std::uint64_t>{1, 2, 4}.begin(),
                                  std::set<std::uint64_t>{1, 2, 4}.end(), covered.begin(),
                                  covered.end()))
            << "receipt cumulative " << r.cumulative_seq << " covers an unseen seq";
    }

    // Filling the gap folds the range into cumulative_seq.
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 3, 1)))),
              mqtt::SUCCESS);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(4)).has_value());
}

TEST_F(ReceiptSubscriberTest, AlertsShareTheSeqSpaceAndRangesStayAscendingAndDisjoint) {
    auto ingest = startIngest();
    auto gw = connectGateway("gw-1");
    const auto alertTopic = topicOf("gw-1", "alerts");

    const auto alert2 = makeAlert("gw-1", 7, 2);
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 7, 1, 1)))),
              mqtt::SUCCESS);
    ASSERT_EQ(gw->publish(alertTopic, encoded(shared::encodeAlert(alert2))), mqtt::SUCCESS);
    for (const std::uint64_t seq : {5, 6, 9}) {
        ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 7, seq, 1)))),
                  mqtt::SUCCESS);
    }
    ASSERT_EQ(gw->publish(alertTopic, encoded(shared::encodeAlert(makeAlert("gw-1", 7, 8)))),
              mqtt::SUCCESS);

    auto receipt = gw->awaitReceipt(receiptIs(2, {{5, 6}, {8, 9}}));
    ASSERT_TRUE(receipt.has_value());
    EXPECT_EQ(receipt->epoch, 7U);

    const auto got = ingest->messages("gw-1");
    ASSERT_EQ(got.size(), 6U);
    EXPECT_EQ(got[1].kind, shared::TopicKind::Alerts);
    ASSERT_NE(got[1].alert(), nullptr);
    EXPECT_EQ(*got[1].alert(), alert2);
    EXPECT_EQ(got[5].kind, shared::TopicKind::Alerts);
    EXPECT_EQ(ingest->distinctReadings("gw-1"), 4U);  // alerts carry no readings

    ASSERT_EQ(gw->publish(alertTopic, encoded(shared::encodeAlert(makeAlert("gw-1", 7, 3)))),
              mqtt::SUCCESS);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(3, {{5, 6}, {8, 9}})).has_value());
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 7, 4, 1)))),
              mqtt::SUCCESS);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(6, {{8, 9}})).has_value());
}

TEST_F(ReceiptSubscriberTest, DuplicatesAreCountedAndEachGetsAReceipt) {
    auto ingest = startIngest();
    auto gw = connectGateway("gw-1");

    const auto first = encoded(shared::encodeBatch(makeBatch("gw-1", 1, 1, 4)));
    ASSERT_EQ(gw->publishTelemetry(first), mqtt::SUCCESS);
    ASSERT_TRUE(gw->awaitReceipt(receiptIs(1)).has_value());

    // Nothing new, but a retransmission means the gateway missed the receipt: it gets another.
    ASSERT_EQ(gw->publishTelemetry(first), mqtt::SUCCESS);
    ASSERT_TRUE(gw->awaitReceipt(receiptIs(1)).has_value());

    // A reused seq with other contents (a recreated store without a new epoch) is a duplicate
    // too, but not an identical one; only its first delivery's readings count.
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 2, 2)))),
              mqtt::SUCCESS);
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 2, 5)))),
              mqtt::SUCCESS);
    ASSERT_TRUE(ingest->waitFor([&] { return ingest->messages("gw-1").size() == 4; }, kTimeout));

    const auto got = ingest->messages("gw-1");
    EXPECT_FALSE(got[0].duplicate);
    EXPECT_TRUE(got[1].duplicate);
    EXPECT_EQ(got[1].payloadHash, got[0].payloadHash);
    EXPECT_FALSE(got[2].duplicate);
    EXPECT_TRUE(got[3].duplicate);
    EXPECT_NE(got[3].payloadHash, got[2].payloadHash);
    EXPECT_EQ(ingest->distinctReadings("gw-1"), 4U + 2U);

    const auto dups = ingest->duplicates("gw-1");
    ASSERT_EQ(dups.size(), 2U);
    EXPECT_EQ(dups[0].sequence, (shared::Sequence{1, 1}));
    EXPECT_EQ(dups[0].deliveries, 2U);
    EXPECT_TRUE(dups[0].identicalPayloads);
    EXPECT_EQ(dups[1].sequence, (shared::Sequence{1, 2}));
    EXPECT_EQ(dups[1].deliveries, 2U);
    EXPECT_FALSE(dups[1].identicalPayloads);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(2)).has_value());
}

TEST_F(ReceiptSubscriberTest, ReceiptingOffSendsNothingUntilTurnedOn) {
    auto ingest = startIngest({.receipting = false});
    auto gw = connectGateway("gw-1");
    ASSERT_EQ(gw->subscribe(topicOf("gw-1", "cmd/#")), mqtt::GRANTED_QOS_1);

    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 1, 1)))),
              mqtt::SUCCESS);
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 2, 1)))),
              mqtt::SUCCESS);
    ASSERT_TRUE(ingest->waitFor([&] { return ingest->messages("gw-1").size() == 2; }, kTimeout));
    // With receipting on, this pass would have published the receipt.
    ASSERT_TRUE(ingest->waitForReceiptPass(kTimeout));

    // The subscriber's publishes reach the gateway in order, so a receipt published before this
    // command would arrive before it: none did.
    shared::Command probe;
    probe.gateway_id = "gw-1";
    probe.command_id = 42;
    probe.name = "ping";
    probe.issued_at_ms = kT0;
    probe.expires_at_ms = kT0 + 60'000;
    const auto sentCommand = ingest->sendCommand(probe);
    ASSERT_TRUE(sentCommand) << sentCommand.error().message();
    const auto msg = gw->consume(kTimeout);
    ASSERT_NE(msg, nullptr);
    EXPECT_EQ(msg->get_topic(), topicOf("gw-1", "cmd/ping"));
    const auto& payload = msg->get_payload();
    const auto command = shared::decodeCommand(
        {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()});
    ASSERT_TRUE(command);
    EXPECT_EQ(command.value(), probe);
    EXPECT_TRUE(ingest->receiptsSent("gw-1").empty());

    ingest->setReceipting(true);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(2)).has_value());
}

TEST_F(ReceiptSubscriberTest, ReceiptsCoverWhatWasSeenBeforeABrokerCrash) {
    auto ingest = startIngest();
    auto gw = connectGateway("gw-1");
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 1, 1)))),
              mqtt::SUCCESS);
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 2, 1)))),
              mqtt::SUCCESS);
    ASSERT_TRUE(gw->awaitReceipt(receiptIs(2)).has_value());

    // Seq 3 arrives but its receipt has not gone out when the broker dies.
    ingest->setReceipting(false);
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 3, 1)))),
              mqtt::SUCCESS);
    ASSERT_TRUE(ingest->waitFor([&] { return ingest->messages("gw-1").size() == 3; }, kTimeout));
    broker_->kill();
    ASSERT_TRUE(ingest->waitFor([&] { return !ingest->ready(); }, kTimeout));
    gw.reset();

    const auto restarted = std::chrono::steady_clock::now();
    broker_->restart();
    // The gateway subscribes again before receipting resumes, so it cannot miss the receipt.
    gw = connectGateway("gw-1");
    ASSERT_TRUE(ingest->waitFor([&] { return ingest->sessions() >= 2; }, kReconnectTimeout));
    RecordProperty("reconnect_ms",
                   static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - restarted)
                                        .count()));
    ingest->setReceipting(true);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(3)).has_value());

    // The subscriptions came back with the connection.
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 4, 1)))),
              mqtt::SUCCESS);
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(4)).has_value());
    EXPECT_EQ(ingest->messages("gw-1").size(), 4U);
}

TEST_F(ReceiptSubscriberTest, ReceiptsAreCoalescedPerGateway) {
    constexpr auto kInterval = 300ms;
    constexpr std::uint64_t kBatches = 20;
    auto ingest = startIngest({.receiptInterval = kInterval});
    auto gw1 = connectGateway("gw-1");
    auto gw2 = connectGateway("gw-2");

    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t seq = 1; seq <= kBatches; ++seq) {
        ASSERT_EQ(gw1->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, seq, 1)))),
                  mqtt::SUCCESS);
        ASSERT_EQ(gw2->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-2", 3, seq, 1)))),
                  mqtt::SUCCESS);
    }
    std::vector<Receipt> seen1;
    std::vector<Receipt> seen2;
    const auto last1 = gw1->awaitReceipt(receiptIs(kBatches), seen1);
    const auto last2 = gw2->awaitReceipt(receiptIs(kBatches), seen2);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(last1.has_value());
    ASSERT_TRUE(last2.has_value());
    EXPECT_EQ(last1->gateway_id, "gw-1");
    EXPECT_EQ(last2->gateway_id, "gw-2");
    EXPECT_EQ(last2->epoch, 3U);

    // One round at the first batch, then at most one per interval.
    const auto rounds = static_cast<std::size_t>(elapsed / kInterval) + 1;
    EXPECT_LE(seen1.size(), rounds);
    EXPECT_LE(seen2.size(), rounds);
    EXPECT_LE(ingest->receiptsSent("gw-1").size(), rounds);
}

TEST_F(ReceiptSubscriberTest, RecordsStatusesAndAcksAndCountsRejectedPayloads) {
    auto gw = connectGateway("gw-1");
    shared::GatewayStatus birth;
    birth.gateway_id = "gw-1";
    birth.kind = shared::StatusKind::Birth;
    birth.session = 1;
    birth.epoch = 1;
    birth.sent_at_ms = kT0;
    birth.clock_synced = true;
    birth.firmware_version = "1.2.3";
    birth.sensors = {{0, "inlet", "degC", shared::SensorKind::Temperature}};
    ASSERT_EQ(gw->publish(topicOf("gw-1", "status"), encoded(shared::encodeStatus(birth)),
                          /*retained=*/true),
              mqtt::SUCCESS);

    // Started after the birth: it gets the retained copy on subscribing.
    auto ingest = startIngest();
    ASSERT_TRUE(
        ingest->waitFor([&] { return ingest->latestStatus("gw-1").has_value(); }, kTimeout));
    EXPECT_EQ(*ingest->latestStatus("gw-1"), birth);
    ASSERT_EQ(ingest->statuses("gw-1").size(), 1U);
    EXPECT_TRUE(ingest->statuses("gw-1")[0].retained);

    auto update = birth;
    update.kind = shared::StatusKind::Update;
    update.backlog_batches = 12;
    ASSERT_EQ(gw->publish(topicOf("gw-1", "status"), encoded(shared::encodeStatus(update))),
              mqtt::SUCCESS);
    const shared::CommandAck ack{.gateway_id = "gw-1",
                                 .command_id = 42,
                                 .result = shared::CommandResult::Done,
                                 .detail = "pong",
                                 .time_ms = kT0};
    ASSERT_EQ(gw->publish(topicOf("gw-1", "cmd-ack"), encoded(shared::encodeCommandAck(ack))),
              mqtt::SUCCESS);

    // Rejected: not a batch at all, and a batch naming another gateway than its topic.
    ASSERT_EQ(gw->publishTelemetry(shared::Bytes{'n', 'o', 't', ' ', 'a', ' ', 'b', 'a', 't', 'c',
                                                 'h', '.', '.', '.', '.', '.'}),
              mqtt::SUCCESS);
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-2", 1, 1, 1)))),
              mqtt::SUCCESS);
    // In-order delivery from one publisher: once this is recorded, everything above has been seen.
    ASSERT_EQ(gw->publishTelemetry(encoded(shared::encodeBatch(makeBatch("gw-1", 1, 1, 1)))),
              mqtt::SUCCESS);
    ASSERT_TRUE(ingest->waitFor([&] { return ingest->messages().size() == 1; }, kTimeout));

    EXPECT_EQ(*ingest->latestStatus("gw-1"), update);
    const auto statuses = ingest->statuses("gw-1");
    ASSERT_EQ(statuses.size(), 2U);
    EXPECT_FALSE(statuses[1].retained);
    EXPECT_LT(statuses[0].arrival, statuses[1].arrival);
    ASSERT_EQ(ingest->commandAcks("gw-1").size(), 1U);
    EXPECT_EQ(ingest->commandAcks("gw-1")[0], ack);
    EXPECT_EQ(ingest->decodeFailures(), 2U);
    EXPECT_EQ(ingest->decodeFailures("gateway_mismatch"), 1U);
    EXPECT_EQ(ingest->messages()[0].gateway, "gw-1");
    EXPECT_TRUE(ingest->messages("gw-2").empty());

    // Only the accepted batch is receipted; gw-2 never gets one for the forged batch.
    EXPECT_TRUE(gw->awaitReceipt(receiptIs(1)).has_value());
    EXPECT_TRUE(ingest->receiptsSent("gw-2").empty());
}

}  // namespace
}  // namespace tern::test
