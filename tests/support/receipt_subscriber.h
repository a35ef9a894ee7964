#pragma once

// A stand-in for the cloud ingest in integration tests of the edge agent. It connects to a
// MosquittoFixture as the ACL's ingest user, records every telemetry batch, alert, status and
// command ack that gateways publish, and answers telemetry and alerts with Receipts the way the
// ingest does, so that a test can check the agent's store-and-forward end to end.
//
// Receipts. For each gateway and epoch it remembers every seq it has seen (telemetry and alerts
// share one seq space) and publishes, QoS 1, to <prefix>/gw/<id>/receipt:
//   Receipt{cumulative_seq = the highest n such that seqs 1..n have all been seen (0: seq 1 not
//           yet seen), ranges = the seen seqs above it as ascending, disjoint runs}.
// Every telemetry or alert message makes its gateway's receipt due, a duplicate included: a
// gateway that retransmits because a receipt was lost gets another one. A sender thread
// publishes due receipts, at most one round per gateway per receiptInterval (one Receipt per due
// epoch; a gateway normally has one). A receipt stays due until the broker's PUBACK for it
// arrives: one that cannot be published (broker down) or whose publish fails (connection lost
// before the PUBACK) goes out after the reconnect, still covering everything seen before the
// outage, because seen seqs are never forgotten. Unlike the real ingest, "seen" means "recorded
// in this object's memory"; there is no spool.
//
// Connection. MQTT 5 over TLS with the fixture's client certificate for `identity`, clean start,
// Paho's automatic reconnect; every (re)connection is followed by the subscriptions, made again
// by the sender thread because a clean start drops them. Messages published while the
// subscriber is disconnected are lost to it (clean start), as they would be to an ingest without
// a persistent session; the gateway's retransmission is what recovers them.
//
// Threads. Paho's callback thread records messages; the sender thread subscribes and publishes
// receipts; the public methods may be called from any thread. All state sits behind one mutex,
// which is never held across a Paho call (Paho may hold its own lock while calling back).

#include <mqtt/async_client.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "mosquitto_fixture.h"
#include "tern/shared/messages.h"
#include "tern/shared/result.h"
#include "tern/shared/topics.h"

namespace tern::test {

struct ReceiptSubscriberOptions {
    // Certificate CN, which the broker uses as the user name: the ACL's ingest user.
    std::string identity = "tern-ingest";
    // MQTT client id; empty means `identity`.
    std::string clientId{};  // {}: designated initializers may leave it out without a warning
    // Coalescing: at most one round of receipts per gateway per interval.
    std::chrono::milliseconds receiptInterval{50};
    // Whether receipts are sent from the start; see setReceipting().
    bool receipting = true;
    // Bound on the first connect and subscribe (the constructor), on each later subscribe and on
    // sendCommand's PUBACK.
    std::chrono::milliseconds operationTimeout = std::chrono::seconds(10);
    // Paho's automatic reconnect, in whole seconds (Paho's unit): the first retry after
    // reconnectMin, doubling up to reconnectMax.
    std::chrono::seconds reconnectMin{1};
    std::chrono::seconds reconnectMax{2};
};

// One telemetry batch or alert, as it arrived.
struct ReceivedMessage {
    std::string gateway;        // from the topic; the payload's gateway_id matched it
    shared::Sequence sequence;  // from the payload
    shared::TopicKind kind = shared::TopicKind::Telemetry;  // Telemetry or Alerts
    std::variant<shared::TelemetryBatch, shared::Alert> message;
    std::uint64_t arrival = 0;      // index among every message this subscriber received, from 0
    std::uint64_t payloadHash = 0;  // FNV-1a 64 of the payload bytes as received
    std::size_t payloadBytes = 0;
    bool duplicate = false;  // this gateway's (epoch, seq) had been seen before

    const shared::TelemetryBatch* batch() const {
        return std::get_if<shared::TelemetryBatch>(&message);
    }
    const shared::Alert* alert() const { return std::get_if<shared::Alert>(&message); }
};

// An (epoch, seq) of one gateway that arrived more than once.
struct DuplicateSeq {
    std::string gateway;
    shared::Sequence sequence;
    std::size_t deliveries = 0;
    // All deliveries had the same payload bytes (by size and hash): a retransmission, not a
    // reused seq.
    bool identicalPayloads = true;
};

struct ReceivedStatus {
    shared::GatewayStatus status;
    bool retained = false;  // delivered from the broker's retained store (e.g. on subscribing)
    std::uint64_t arrival = 0;
};

class ReceiptSubscriber {
public:
    // Connects to `broker` with the fixture's certificate for options.identity and subscribes;
    // returns once the subscriptions are granted. Throws std::runtime_error if that does not
    // happen within options.operationTimeout. `broker` is used only here.
    explicit ReceiptSubscriber(MosquittoFixture& broker, ReceiptSubscriberOptions options = {});
    // Stops the sender thread and disconnects (bounded).
    ~ReceiptSubscriber();
    ReceiptSubscriber(const ReceiptSubscriber&) = delete;
    ReceiptSubscriber& operator=(const ReceiptSubscriber&) = delete;

    // Off: messages are still recorded and their receipts become due, but none is published
    // until receipting is turned on again; then the due ones go out at once. For checking that a
    // gateway deletes nothing on a PUBACK alone.
    void setReceipting(bool on);
    bool receipting() const;

    // Publishes `command` (QoS 1) to <prefix>/gw/<gateway_id>/cmd/<name> and waits for the
    // PUBACK, bounded by options.operationTimeout. Errors: the codec's, or "publish_failed".
    shared::VoidResult sendCommand(const shared::Command& command);

    // Calls `predicate` (which may call this object's query methods) whenever the recorded state
    // changes, until it returns true (then true) or `timeout` passes (then false).
    bool waitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) const;
    // Waits until the sender thread has completed a pass that started after this call: every
    // receipt due at the call has then been published or held back (receipting off,
    // disconnected, or its gateway had one less than receiptInterval ago). False on timeout.
    bool waitForReceiptPass(std::chrono::milliseconds timeout) const;

    // Telemetry and alerts in arrival order, duplicates included.
    std::vector<ReceivedMessage> messages() const;
    std::vector<ReceivedMessage> messages(std::string_view gateway) const;
    // Readings in the first delivery of each (epoch, seq) of the gateway's telemetry.
    std::size_t distinctReadings(std::string_view gateway) const;
    std::vector<DuplicateSeq> duplicates(std::string_view gateway) const;

    // Every status delivery, in arrival order. After each (re)connect the broker delivers the
    // retained status again, so it appears once more with retained = true.
    std::optional<shared::GatewayStatus> latestStatus(std::string_view gateway) const;
    std::vector<ReceivedStatus> statuses(std::string_view gateway) const;
    std::vector<shared::CommandAck> commandAcks(std::string_view gateway) const;

    // Messages dropped: undecodable payloads (by the codec's reason), "gateway_mismatch" (the
    // payload names another gateway than its topic), "unexpected_topic".
    std::uint64_t decodeFailures() const;
    std::uint64_t decodeFailures(std::string_view reason) const;

    // Receipts the broker acknowledged (PUBACK), in the order of the acknowledgements.
    std::vector<shared::Receipt> receiptsSent(std::string_view gateway) const;
    // Receipt publishes that failed (not connected, connection lost, or a PUBACK error code);
    // each is retried.
    std::uint64_t receiptFailures() const;

    // Connected and subscribed.
    bool ready() const;
    // Connections on which every subscription was granted: 1 after the constructor, +1 after
    // each reconnect.
    std::uint64_t sessions() const;

private:
    // Seqs of one gateway and epoch.
    struct SeenSeqs {
        std::uint64_t cumulative = 0;
        std::set<std::uint64_t> above;  // seen seqs above cumulative + 1
        bool due = false;

        void add(std::uint64_t seq);
        std::vector<shared::SeqRange> ranges(std::size_t maxRanges) const;
    };
    struct Delivery {
        std::uint64_t hash = 0;
        std::size_t bytes = 0;
        std::size_t deliveries = 0;
        bool identical = true;
    };
    struct GatewayState {
        std::map<std::uint64_t, SeenSeqs> epochs;
        std::map<std::pair<std::uint64_t, std::uint64_t>, Delivery> deliveries;
        std::optional<std::chrono::steady_clock::time_point> lastReceiptRound;
        std::vector<shared::Receipt> receiptsSent;
        std::vector<ReceivedStatus> statuses;
        std::vector<shared::CommandAck> acks;
    };
    struct InFlightReceipt {
        std::string gateway;
        std::uint64_t epoch = 0;
        shared::Receipt receipt;
    };

    // Paho's action listener for receipt publishes: forwards to the owner.
    class ReceiptListener final : public mqtt::iaction_listener {
    public:
        explicit ReceiptListener(ReceiptSubscriber& owner) : owner_(owner) {}
        void on_success(const mqtt::token& token) override;
        void on_failure(const mqtt::token& token) override;

    private:
        ReceiptSubscriber& owner_;
    };

    // Stops the sender thread, then disconnects (bounded). For the destructor and a failed
    // constructor.
    void shutdown();

    // Paho callback thread.
    void onConnected();
    void onConnectionLost();
    void onMessage(const mqtt::message& message);
    void onReceiptDone(const mqtt::token& token, bool acknowledged);
    // Under mutex_.
    void recordSequenced(const std::string& gateway, shared::TopicKind kind,
                         const shared::Sequence& sequence,
                         std::variant<shared::TelemetryBatch, shared::Alert> message,
                         std::uint64_t arrival, std::span<const std::uint8_t> payload);
    void countFailure(std::string_view reason);
    void changed();     // bumps version_, wakes waitFor()
    void wakeSender();  // under mutex_

    // Sender thread.
    void runSender();
    bool subscribeAll();

    const ReceiptSubscriberOptions options_;
    const shared::TopicScheme topics_;

    mutable std::mutex mutex_;
    mutable std::condition_variable changedCv_;  // waitFor(), waitForReceiptPass()
    mutable std::condition_variable senderCv_;
    std::uint64_t version_ = 0;  // bumped on every change to what the queries return
    bool stopping_ = false;
    mutable bool wakeSender_ = false;  // the sender runs another pass before it sleeps
    bool receipting_ = true;
    bool connected_ = false;
    bool subscribed_ = false;
    std::uint64_t connectionGeneration_ = 0;
    std::uint64_t sessions_ = 0;
    std::uint64_t passesStarted_ = 0;
    std::uint64_t passesDone_ = 0;
    std::uint64_t arrivals_ = 0;
    std::uint64_t receiptFailures_ = 0;
    std::uint64_t nextInFlightId_ = 1;
    std::map<std::uint64_t, InFlightReceipt> inFlight_;
    std::map<std::string, GatewayState, std::less<>> gateways_;
    std::vector<ReceivedMessage> messages_;
    std::map<std::string, std::uint64_t, std::less<>> failures_;

    // Declared after the state that callbacks use: members are destroyed in reverse order, so the
    // client (and with it every callback) is gone before that state is.
    ReceiptListener listener_{*this};
    mqtt::async_client client_;
    std::thread sender_;
};

}  // namespace tern::test
