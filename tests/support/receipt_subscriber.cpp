#include "receipt_subscriber.h"

#include <algorithm>
#include <stdexcept>

#include "tern/shared/codec.h"

namespace tern::test {
namespace {

using shared::TopicKind;
using SteadyClock = std::chrono::steady_clock;

// A receipt carries at most as many ranges as a decoder accepts; the ranges above the last one
// sent are covered by a later receipt, once the gaps below them are filled.
constexpr std::size_t kMaxRanges = shared::DecodeLimits{}.max_items;

std::uint64_t fnv1a(std::span<const std::uint8_t> bytes) {
    std::uint64_t hash = 14695981039346656037ULL;
    for (const std::uint8_t byte : bytes) {
        hash ^= byte;
        hash *= 1099511628211ULL;
    }
    return hash;
}

std::span<const std::uint8_t> payloadOf(const mqtt::message& message) {
    const auto& payload = message.get_payload();
    return {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()};
}

shared::TopicScheme defaultTopics() {
    auto scheme = shared::TopicScheme::create();
    if (!scheme)
        throw std::logic_error("default topic prefix rejected: " + scheme.error().message());
    return std::move(scheme).value();
}

std::int64_t wallNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string clientIdOf(const ReceiptSubscriberOptions& options) {
    return options.clientId.empty() ? options.identity : options.clientId;
}

mqtt::connect_options connectOptions(MosquittoFixture& broker,
                                     const ReceiptSubscriberOptions& options) {
    auto ssl = mqtt::ssl_options_builder()
                   .trust_store(broker.caFile().string())
                   .key_store(broker.clientCert(options.identity).string())
                   .private_key(broker.clientKey(options.identity).string())
                   .enable_server_cert_auth(true)
                   .verify(true)
                   .finalize();
    return mqtt::connect_options_builder()
        .mqtt_version(MQTTVERSION_5)
        .clean_start(true)
        .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(options.operationTimeout))
        .automatic_reconnect(options.reconnectMin, options.reconnectMax)
        .ssl(std::move(ssl))
        .finalize();
}

void* contextOf(std::uint64_t id) {
    return reinterpret_cast<void*>(static_cast<std::uintptr_t>(id));
}
std::uint64_t idOf(void* context) { return reinterpret_cast<std::uintptr_t>(context); }

}  // namespace

// ---- SeenSeqs -----------------------------------------------------------------------------------

void ReceiptSubscriber::SeenSeqs::add(std::uint64_t seq) {
    if (seq <= cumulative) return;
    if (seq != cumulative + 1) {
        above.insert(seq);
        return;
    }
    ++cumulative;
    while (!above.empty() && *above.begin() == cumulative + 1) {
        above.erase(above.begin());
        ++cumulative;
    }
}

std::vector<shared::SeqRange> ReceiptSubscriber::SeenSeqs::ranges(std::size_t maxRanges) const {
    std::vector<shared::SeqRange> out;
    for (const std::uint64_t seq : above) {
        if (!out.empty() && out.back().last + 1 == seq) {
            out.back().last = seq;
            continue;
        }
        if (out.size() == maxRanges) break;
        out.push_back({seq, seq});
    }
    return out;
}

// ---- lifecycle ----------------------------------------------------------------------------------

ReceiptSubscriber::ReceiptSubscriber(MosquittoFixture& broker, ReceiptSubscriberOptions options)
    : options_(std::move(options)),
      topics_(defaultTopics()),
      receipting_(options_.receipting),
      client_(broker.uri(), clientIdOf(options_), mqtt::create_options(MQTTVERSION_5)) {
    client_.set_connected_handler([this](const std::string&) { onConnected(); });
    client_.set_connection_lost_handler([this](const std::string&) { onConnectionLost(); });
    client_.set_message_callback([this](mqtt::const_message_ptr message) {
        if (message) onMessage(*message);
    });
    sender_ = std::thread([this] { runSender(); });

    std::string failure;
    try {
        if (!client_.connect(connectOptions(broker, options_))
                 ->wait_for(options_.operationTimeout)) {
            failure = "connect timed out";
        }
    } catch (const mqtt::exception& e) {
        failure = std::string("connect failed: ") + e.what();
    }
    if (failure.empty() && !waitFor([this] { return ready(); }, options_.operationTimeout)) {
        failure = "subscriptions not granted in time";
    }
    if (!failure.empty()) {
        shutdown();  // a throwing constructor runs no destructor, and the thread must be joined
        throw std::runtime_error("ReceiptSubscriber(" + clientIdOf(options_) + "): " + failure);
    }
}

ReceiptSubscriber::~ReceiptSubscriber() { shutdown(); }

void ReceiptSubscriber::shutdown() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    senderCv_.notify_all();
    if (sender_.joinable()) sender_.join();
    try {
        // Also when disconnected: it ends Paho's automatic reconnect attempts.
        client_.disconnect()->wait_for(options_.operationTimeout);
    } catch (const mqtt::exception&) {
        // Not connected (the broker may be gone); nothing is left to close.
    }
}

// ---- Paho callback thread -----------------------------------------------------------------------

void ReceiptSubscriber::onConnected() {
    std::lock_guard lock(mutex_);
    connected_ = true;
    subscribed_ = false;  // clean start: the broker kept no subscriptions
    ++connectionGeneration_;
    wakeSender();
    changed();
}

void ReceiptSubscriber::onConnectionLost() {
    std::lock_guard lock(mutex_);
    connected_ = false;
    subscribed_ = false;
    // Whatever Paho later reports for these tokens, their PUBACKs are not to be counted on: the
    // receipts go out again after the reconnect (a duplicate receipt is harmless to a gateway).
    for (auto& [id, flight] : inFlight_) {
        auto& state = gateways_[flight.gateway];
        state.epochs[flight.epoch].due = true;
        ++receiptFailures_;
    }
    inFlight_.clear();
    wakeSender();
    changed();
}

void ReceiptSubscriber::onMessage(const mqtt::message& message) {
    const auto payload = payloadOf(message);
    auto parsed = topics_.parse(message.get_topic());
    if (!parsed) {
        std::lock_guard lock(mutex_);
        ++arrivals_;
        countFailure("unexpected_topic");
        return;
    }
    const std::string& gateway = parsed.value().gateway_id;
    const TopicKind kind = parsed.value().kind;

    // Decoded outside the lock; recorded under it, which also fixes the arrival index.
    auto reject = [this](std::string_view reason) {
        std::lock_guard lock(mutex_);
        ++arrivals_;
        countFailure(reason);
    };
    switch (kind) {
        case TopicKind::Telemetry: {
            auto batch = shared::decodeBatch(payload);
            if (!batch) return reject(batch.error().code);
            if (batch.value().gateway_id != gateway) return reject("gateway_mismatch");
            const auto sequence = batch.value().sequence;
            std::lock_guard lock(mutex_);
            recordSequenced(gateway, kind, sequence, std::move(batch).value(), arrivals_++,
                            payload);
            return;
        }
        case TopicKind::Alerts: {
            auto alert = shared::decodeAlert(payload);
            if (!alert) return reject(alert.error().code);
            if (alert.value().gateway_id != gateway) return reject("gateway_mismatch");
            const auto sequence = alert.value().sequence;
            std::lock_guard lock(mutex_);
            recordSequenced(gateway, kind, sequence, std::move(alert).value(), arrivals_++,
                            payload);
            return;
        }
        case TopicKind::Status: {
            auto status = shared::decodeStatus(payload);
            if (!status) return reject(status.error().code);
            if (status.value().gateway_id != gateway) return reject("gateway_mismatch");
            std::lock_guard lock(mutex_);
            gateways_[gateway].statuses.push_back(
                {std::move(status).value(), message.is_retained(), arrivals_++});
            changed();
            return;
        }
        case TopicKind::CommandAck: {
            auto ack = shared::decodeCommandAck(payload);
            if (!ack) return reject(ack.error().code);
            if (ack.value().gateway_id != gateway) return reject("gateway_mismatch");
            std::lock_guard lock(mutex_);
            ++arrivals_;
            gateways_[gateway].acks.push_back(std::move(ack).value());
            changed();
            return;
        }
        case TopicKind::Receipt:
        case TopicKind::Command:
            break;
    }
    reject("unexpected_topic");
}

void ReceiptSubscriber::recordSequenced(const std::string& gateway, TopicKind kind,
                                        const shared::Sequence& sequence,
                                        std::variant<shared::TelemetryBatch, shared::Alert> message,
                                        std::uint64_t arrival,
                                        std::span<const std::uint8_t> payload) {
    auto& state = gateways_[gateway];
    const std::uint64_t hash = fnv1a(payload);
    auto& delivery = state.deliveries[{sequence.epoch, sequence.seq}];
    const bool duplicate = delivery.deliveries > 0;
    if (!duplicate) {
        delivery.hash = hash;
        delivery.bytes = payload.size();
    } else if (delivery.hash != hash || delivery.bytes != payload.size()) {
        delivery.identical = false;
    }
    ++delivery.deliveries;

    // Due on a duplicate too: the gateway resends because it has not seen a receipt for it.
    auto& seen = state.epochs[sequence.epoch];
    seen.add(sequence.seq);
    seen.due = true;

    messages_.push_back({.gateway = gateway,
                         .sequence = sequence,
                         .kind = kind,
                         .message = std::move(message),
                         .arrival = arrival,
                         .payloadHash = hash,
                         .payloadBytes = payload.size(),
                         .duplicate = duplicate});
    wakeSender();
    changed();
}

void ReceiptSubscriber::ReceiptListener::on_success(const mqtt::token& token) {
    owner_.onReceiptDone(token, true);
}

void ReceiptSubscriber::ReceiptListener::on_failure(const mqtt::token& token) {
    owner_.onReceiptDone(token, false);
}

void ReceiptSubscriber::onReceiptDone(const mqtt::token& token, bool acknowledged) {
    std::lock_guard lock(mutex_);
    const auto it = inFlight_.find(idOf(token.get_user_context()));
    if (it == inFlight_.end()) return;  // already given up on by onConnectionLost()
    auto& state = gateways_[it->second.gateway];
    if (acknowledged) {
        state.receiptsSent.push_back(std::move(it->second.receipt));
    } else {
        state.epochs[it->second.epoch].due = true;
        ++receiptFailures_;
        wakeSender();
    }
    inFlight_.erase(it);
    changed();
}

void ReceiptSubscriber::countFailure(std::string_view reason) {
    auto it = failures_.find(reason);
    if (it == failures_.end()) it = failures_.emplace(std::string(reason), 0).first;
    ++it->second;
    changed();
}

void ReceiptSubscriber::changed() {
    ++version_;
    changedCv_.notify_all();
}

void ReceiptSubscriber::wakeSender() {
    wakeSender_ = true;
    senderCv_.notify_one();
}

// ---- sender thread ------------------------------------------------------------------------------

void ReceiptSubscriber::runSender() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        ++passesStarted_;
        wakeSender_ = false;
        std::optional<SteadyClock::time_point> wakeAt;

        if (connected_ && !subscribed_) {
            const auto generation = connectionGeneration_;
            lock.unlock();
            const bool granted = subscribeAll();
            lock.lock();
            if (granted && connected_ && generation == connectionGeneration_) {
                subscribed_ = true;
                ++sessions_;
                changed();
            } else if (connected_) {
                wakeAt = SteadyClock::now() + options_.receiptInterval;  // retry, rate-bounded
            }
        }

        // Choose the receipts to send. They are in inFlight_ before publish() is called, so a
        // PUBACK that arrives before publish() returns finds its receipt.
        std::vector<std::uint64_t> outgoing;
        const auto now = SteadyClock::now();
        if (receipting_ && connected_) {
            for (auto& [gateway, state] : gateways_) {
                const bool due = std::any_of(state.epochs.begin(), state.epochs.end(),
                                             [](const auto& entry) { return entry.second.due; });
                if (!due) continue;
                if (state.lastReceiptRound &&
                    now < *state.lastReceiptRound + options_.receiptInterval) {
                    const auto at = *state.lastReceiptRound + options_.receiptInterval;
                    wakeAt = wakeAt ? std::min(*wakeAt, at) : at;
                    continue;
                }
                state.lastReceiptRound = now;
                for (auto& [epoch, seen] : state.epochs) {
                    if (!seen.due) continue;
                    seen.due = false;
                    const std::uint64_t id = nextInFlightId_++;
                    inFlight_[id] = {gateway, epoch,
                                     shared::Receipt{.gateway_id = gateway,
                                                     .epoch = epoch,
                                                     .cumulative_seq = seen.cumulative,
                                                     .ranges = seen.ranges(kMaxRanges),
                                                     .issued_at_ms = wallNowMs()}};
                    outgoing.push_back(id);
                }
            }
        }

        for (const std::uint64_t id : outgoing) {
            const auto it = inFlight_.find(id);
            if (it == inFlight_.end()) continue;  // the connection was lost meanwhile
            const std::string gateway = it->second.gateway;
            const std::uint64_t epoch = it->second.epoch;
            auto bytes = shared::encodeReceipt(it->second.receipt);
            auto topic = topics_.topic(gateway, TopicKind::Receipt);
            if (!bytes || !topic) {
                // Cannot happen for ids that came from a parsed topic; not retried, it would fail
                // again.
                inFlight_.erase(it);
                ++receiptFailures_;
                changed();
                continue;
            }
            lock.unlock();
            bool published = true;
            try {
                client_.publish(topic.value(), bytes.value().data(), bytes.value().size(), 1, false,
                                contextOf(id), listener_);
            } catch (const mqtt::exception&) {
                published = false;  // not connected: Paho refuses at once
            }
            lock.lock();
            if (!published) {
                if (const auto again = inFlight_.find(id); again != inFlight_.end()) {
                    inFlight_.erase(again);
                    gateways_[gateway].epochs[epoch].due = true;
                    ++receiptFailures_;
                    wakeSender_ = true;  // reschedule: its round is spent, so it waits an interval
                }
            }
        }

        ++passesDone_;
        changed();
        if (stopping_) break;
        const auto woken = [this] { return stopping_ || wakeSender_; };
        if (wakeAt) {
            senderCv_.wait_until(lock, *wakeAt, woken);
        } else {
            senderCv_.wait(lock, woken);
        }
    }
}

bool ReceiptSubscriber::subscribeAll() {
    auto filters = std::make_shared<mqtt::string_collection>();
    for (const TopicKind kind :
         {TopicKind::Telemetry, TopicKind::Alerts, TopicKind::Status, TopicKind::CommandAck}) {
        auto filter = topics_.fleetFilter(kind);
        if (!filter) return false;
        filters->push_back(filter.value());
    }
    const mqtt::iasync_client::qos_collection qos(filters->size(), 1);
    try {
        auto token = client_.subscribe(filters, qos);
        if (!token->wait_for(options_.operationTimeout)) return false;
        const auto codes = token->get_subscribe_response().get_reason_codes();
        return codes.size() == filters->size() &&
               std::all_of(codes.begin(), codes.end(),
                           [](mqtt::ReasonCode code) { return code == mqtt::GRANTED_QOS_1; });
    } catch (const mqtt::exception&) {
        return false;  // lost the connection meanwhile; the reconnect starts over
    }
}

// ---- public -------------------------------------------------------------------------------------

void ReceiptSubscriber::setReceipting(bool on) {
    std::lock_guard lock(mutex_);
    receipting_ = on;
    wakeSender();
    changed();
}

bool ReceiptSubscriber::receipting() const {
    std::lock_guard lock(mutex_);
    return receipting_;
}

shared::VoidResult ReceiptSubscriber::sendCommand(const shared::Command& command) {
    auto bytes = shared::encodeCommand(command);
    if (!bytes) return bytes.error();
    auto topic = topics_.topic(command.gateway_id, TopicKind::Command, command.name);
    if (!topic) return topic.error();
    try {
        auto token =
            client_.publish(topic.value(), bytes.value().data(), bytes.value().size(), 1, false);
        if (!token->wait_for(options_.operationTimeout)) {
            return shared::Error::retry("publish_failed", "no PUBACK for " + topic.value());
        }
    } catch (const mqtt::exception& e) {
        return shared::Error::retry("publish_failed", topic.value() + ": " + e.what());
    }
    return shared::success();
}

bool ReceiptSubscriber::waitFor(const std::function<bool()>& predicate,
                                std::chrono::milliseconds timeout) const {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
        std::uint64_t seen = 0;
        {
            std::lock_guard lock(mutex_);
            seen = version_;
        }
        if (predicate()) return true;  // without the lock: it may call the query methods
        std::unique_lock lock(mutex_);
        if (!changedCv_.wait_until(lock, deadline, [&] { return version_ != seen; })) {
            lock.unlock();
            return predicate();
        }
    }
}

bool ReceiptSubscriber::waitForReceiptPass(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    // A pass already under way may have looked at the state before this call; the one after it
    // has not. wakeSender_ makes sure that one runs.
    const std::uint64_t target = passesStarted_ + 1;
    wakeSender_ = true;
    senderCv_.notify_one();
    return changedCv_.wait_for(lock, timeout, [&] { return passesDone_ >= target; });
}

std::vector<ReceivedMessage> ReceiptSubscriber::messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
}

std::vector<ReceivedMessage> ReceiptSubscriber::messages(std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    std::vector<ReceivedMessage> out;
    for (const auto& message : messages_) {
        if (message.gateway == gateway) out.push_back(message);
    }
    return out;
}

std::size_t ReceiptSubscriber::distinctReadings(std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    std::size_t readings = 0;
    for (const auto& message : messages_) {
        if (message.gateway != gateway || message.duplicate) continue;
        if (const auto* batch = message.batch()) readings += batch->readings.size();
    }
    return readings;
}

std::vector<DuplicateSeq> ReceiptSubscriber::duplicates(std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    std::vector<DuplicateSeq> out;
    const auto it = gateways_.find(gateway);
    if (it == gateways_.end()) return out;
    for (const auto& [key, delivery] : it->second.deliveries) {
        if (delivery.deliveries < 2) continue;
        out.push_back({.gateway = std::string(gateway),
                       .sequence = {key.first, key.second},
                       .deliveries = delivery.deliveries,
                       .identicalPayloads = delivery.identical});
    }
    return out;
}

std::optional<shared::GatewayStatus> ReceiptSubscriber::latestStatus(
    std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    const auto it = gateways_.find(gateway);
    if (it == gateways_.end() || it->second.statuses.empty()) return std::nullopt;
    return it->second.statuses.back().status;
}

std::vector<ReceivedStatus> ReceiptSubscriber::statuses(std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    const auto it = gateways_.find(gateway);
    return it == gateways_.end() ? std::vector<ReceivedStatus>{} : it->second.statuses;
}

std::vector<shared::CommandAck> ReceiptSubscriber::commandAcks(std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    const auto it = gateways_.find(gateway);
    return it == gateways_.end() ? std::vector<shared::CommandAck>{} : it->second.acks;
}

std::uint64_t ReceiptSubscriber::decodeFailures() const {
    std::lock_guard lock(mutex_);
    std::uint64_t total = 0;
    for (const auto& [reason, count] : failures_) total += count;
    return total;
}

std::uint64_t ReceiptSubscriber::decodeFailures(std::string_view reason) const {
    std::lock_guard lock(mutex_);
    const auto it = failures_.find(reason);
    return it == failures_.end() ? 0 : it->second;
}

std::vector<shared::Receipt> ReceiptSubscriber::receiptsSent(std::string_view gateway) const {
    std::lock_guard lock(mutex_);
    const auto it = gateways_.find(gateway);
    return it == gateways_.end() ? std::vector<shared::Receipt>{} : it->second.receiptsSent;
}

std::uint64_t ReceiptSubscriber::receiptFailures() const {
    std::lock_guard lock(mutex_);
    return receiptFailures_;
}

bool ReceiptSubscriber::ready() const {
    std::lock_guard lock(mutex_);
    return connected_ && subscribed_;
}

std::uint64_t ReceiptSubscriber::sessions() const {
    std::lock_guard lock(mutex_);
    return sessions_;
}

}  // namespace tern::test
