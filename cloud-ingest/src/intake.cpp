#include "tern/ingest/intake.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <variant>

#include "tern/ingest/receipt_scheduler.h"
#include "tern/shared/topics.h"

namespace tern::ingest {

using namespace std::chrono_literals;

namespace {

constexpr auto kResendInterval = 10s;
constexpr auto kCommandTtl = 5min;
// While the broker is away, due receipts wait this long between attempts.
constexpr auto kReceiptRetryInterval = 200ms;
// A batch sealed longer than this before it arrived was held back by the gateway (an outage, a
// backlog): its age is not the pipeline's latency.
constexpr std::int64_t kLiveBatchMaxAgeMs = 60'000;

bool isBacklog(std::int64_t sent_at_ms, std::int64_t received_ms) {
    return received_ms - sent_at_ms > kLiveBatchMaxAgeMs;
}

}  // namespace

struct Intake::Impl {
    IntakeConfig config;
    const Verifier& verifier;
    Spool& spool;
    Quarantine& quarantine;
    FleetState& fleet;
    const shared::Clock& clock;
    IntakeHooks hooks;
    shared::MetricsRegistry& metrics;

    mutable std::mutex mutex;
    std::condition_variable not_empty;
    std::condition_variable not_full;
    std::deque<MqttMessage> queue;
    std::uint64_t queued_bytes = 0;
    bool stopping = false;
    bool receipt_all = false;
    std::thread thread;

    // Intake thread only.
    ReceiptScheduler receipts;
    std::set<ReceiptScheduler::Key> known_epochs;  // every (gateway, epoch) admitted so far
    std::map<std::string, std::chrono::steady_clock::time_point> last_resend;
    std::atomic<bool> spool_ok{true};
    std::atomic<std::uint64_t> next_command_id;
    bool was_above_high_water = false;

    shared::Counter& spooled_readings;
    shared::Counter& dropped_stopping;
    shared::Counter& receipts_sent;
    shared::Counter& receipt_failures;
    shared::Counter& commands_sent;
    shared::Counter& receipts_learned;
    shared::Counter& receipts_undecodable;
    shared::Gauge& queue_bytes_gauge;
    shared::Histogram& spool_latency;
    shared::Histogram& sent_to_spool_latency;
    shared::Histogram& group_size;

    Impl(const IntakeConfig& intake, const MqttConfig& mqtt, const Verifier& v, Spool& s,
         Quarantine& q, FleetState& f, const shared::Clock& c, IntakeHooks h,
         shared::MetricsRegistry& m)
        : config(intake),
          verifier(v),
          spool(s),
          quarantine(q),
          fleet(f),
          clock(c),
          hooks(std::move(h)),
          metrics(m),
          receipts(mqtt.receipt_interval, static_cast<std::size_t>(mqtt.receipt_batches)),
          next_command_id(static_cast<std::uint64_t>(shared::toUnixMillis(c.wallNow())) * 1000),
          spooled_readings(m.counter("tern_ingest_spooled_readings_total",
                                     "Readings in telemetry committed to the spool")),
          dropped_stopping(m.counter("tern_ingest_dropped_at_shutdown_total",
                                     "Messages received while stopping and not spooled (their "
                                     "gateways retransmit them)")),
          receipts_sent(m.counter("tern_ingest_receipts_total", "Receipts published")),
          receipt_failures(m.counter("tern_ingest_receipt_failures_total",
                                     "Receipts that could not be published (sent again)")),
          commands_sent(m.counter("tern_ingest_commands_total", "Commands published to gateways")),
          receipts_learned(m.counter("tern_ingest_receipts_learned_total",
                                     "Gateway epochs whose dedupe state grew from another ingest "
                                     "process's receipt (shared subscription)")),
          receipts_undecodable(m.counter("tern_ingest_receipts_undecodable_total",
                                         "Receipts seen on the broker that did not decode")),
          queue_bytes_gauge(
              m.gauge("tern_ingest_intake_queue_bytes", "Payload bytes received, not yet spooled")),
          spool_latency(m.histogram("tern_ingest_spool_latency_seconds",
                                    "From receipt by the ingest to committed in the spool",
                                    shared::exponentialBuckets(0.0005, 2, 16))),
          sent_to_spool_latency(m.histogram(
              "tern_ingest_sent_to_spool_seconds",
              "From the gateway sealing a live batch (its sent_at, synchronised clocks only) to "
              "committed in the spool: the end-to-end latency up to the receipt",
              shared::exponentialBuckets(0.001, 2, 16))),
          group_size(m.histogram("tern_ingest_spool_group_messages",
                                 "Messages per spool transaction",
                                 shared::exponentialBuckets(1, 2, 14))) {}

    void run() {
        std::vector<MqttMessage> group;
        for (;;) {
            group.clear();
            bool stop_now = false;
            {
                std::unique_lock lock(mutex);
                auto next = receipts.nextDue();
                auto wake = [&] { return stopping || !queue.empty() || receipt_all; };
                if (next) {
                    not_empty.wait_until(lock, *next, wake);
                } else {
                    not_empty.wait(lock, wake);
                }
                if (!queue.empty() && config.group_wait.count() > 0 &&
                    queue.size() < static_cast<std::size_t>(config.group_max_messages) &&
                    !stopping) {
                    not_empty.wait_for(lock, config.group_wait, [&] {
                        return stopping ||
                               queue.size() >= static_cast<std::size_t>(config.group_max_messages);
                    });
                }
                while (!queue.empty() &&
                       group.size() < static_cast<std::size_t>(config.group_max_messages)) {
                    queued_bytes -= queue.front().payload.size();
                    group.push_back(std::move(queue.front()));
                    queue.pop_front();
                }
                queue_bytes_gauge.set(static_cast<double>(queued_bytes));
                stop_now = stopping && queue.empty();
                if (receipt_all) {
                    receipt_all = false;
                    const auto now = clock.monoNow();
                    for (const auto& key : known_epochs) receipts.putBack(key, now);
                }
            }
            not_full.notify_all();
            if (!group.empty()) process(group);
            sendDueReceipts(stop_now);
            if (stop_now) return;
        }
    }

    void process(std::vector<MqttMessage>& group) {
        std::vector<Incoming> incoming;
        std::vector<const MqttMessage*> sources;  // parallel to incoming
        std::vector<std::int64_t> sent_at;        // parallel to incoming; 0: not measured
        std::vector<shared::Receipt> elsewhere;
        incoming.reserve(group.size());
        for (auto& message : group) {
            if (auto receipt = otherIngestsReceipt(message)) {
                elsewhere.push_back(std::move(*receipt));
                continue;
            }
            auto verified = verifier.verify(message.topic, message.payload, message.received_ms);
            std::visit(
                [&](auto& v) {
                    using T = std::decay_t<decltype(v)>;
                    if constexpr (std::is_same_v<T, Rejection>) {
                        quarantine.add(message.received_ms, message.topic, v.gateway_id, v.reason,
                                       v.detail, message.payload);
                        if (!v.gateway_id.empty())
                            fleet.onRejected(v.gateway_id, message.received_ms);
                        spdlog::debug("intake: rejected {} from '{}': {}", message.topic,
                                      v.gateway_id, v.reason);
                    } else if constexpr (std::is_same_v<T, VerifiedStatus>) {
                        const bool applied = fleet.onStatus(v.gateway_id, v.status, v.received_ms,
                                                            v.clock_skew_ms, message.retained);
                        if (applied && v.status.kind == shared::StatusKind::Birth && hooks.birth) {
                            hooks.birth(v.gateway_id, v.status.sensors);
                        }
                    } else if constexpr (std::is_same_v<T, VerifiedCommandAck>) {
                        fleet.onCommandAck(v.gateway_id, v.ack, v.received_ms);
                    } else if constexpr (std::is_same_v<T, VerifiedTelemetry>) {
                        // Live, synchronised batches only: a backlog batch's age is the outage.
                        sent_at.push_back(v.batch.clock_synced ? v.batch.sent_at_ms : 0);
                        incoming.push_back(std::move(v.incoming));
                        sources.push_back(&message);
                    } else {
                        sent_at.push_back(0);
                        incoming.push_back(std::move(v.incoming));
                        sources.push_back(&message);
                    }
                },
                verified);
        }
        if (!elsewhere.empty()) {
            // First, so that a retransmission arriving in the same group is a Duplicate.
            if (auto learned = spool.admitElsewhere(elsewhere); !learned) {
                spdlog::warn("intake: recording other ingest processes' receipts: {}",
                             learned.error().message());
            } else {
                receipts_learned.inc(learned.value());
            }
        }
        if (incoming.empty()) return;
        auto admitted = spool.append(incoming);
        group_size.observe(static_cast<double>(incoming.size()));
        if (!admitted) {
            spool_ok = false;
            spdlog::error(
                "intake: spool commit of {} messages failed: {} (gateways will "
                "retransmit)",
                incoming.size(), admitted.error().message());
            return;
        }
        spool_ok = true;
        const auto now_mono = clock.monoNow();
        const auto now_ms = shared::toUnixMillis(clock.wallNow());
        bool stored_any = false;
        for (std::size_t i = 0; i < incoming.size(); ++i) {
            const auto& message = incoming[i];
            const ReceiptScheduler::Key key{message.gateway_id, message.sequence.epoch};
            switch (admitted.value()[i]) {
                case Admission::Stored:
                    stored_any = true;
                    spooled_readings.inc(message.readings);
                    spool_latency.observe(static_cast<double>(std::max<std::int64_t>(
                                              0, now_ms - message.received_ms)) /
                                          1000.0);
                    if (sent_at[i] != 0 && !isBacklog(sent_at[i], message.received_ms)) {
                        sent_to_spool_latency.observe(
                            static_cast<double>(std::max<std::int64_t>(0, now_ms - sent_at[i])) /
                            1000.0);
                    }
                    if (message.kind == Kind::Alert) {
                        fleet.onAlert(message.gateway_id, message.received_ms);
                    } else {
                        fleet.onTelemetry(message.gateway_id, message.sequence, message.readings,
                                          message.received_ms);
                    }
                    known_epochs.insert(key);
                    receipts.markWaiting(key.first, key.second, now_mono);
                    break;
                case Admission::Duplicate:
                    known_epochs.insert(key);
                    receipts.markWaiting(key.first, key.second, now_mono);
                    break;
                case Admission::Full:
                    break;
                case Admission::TooManyGaps:
                    askForGaps(message.gateway_id, message.sequence.epoch, now_mono);
                    break;
                case Admission::Stale:
                case Admission::Invalid: {
                    const bool stale = admitted.value()[i] == Admission::Stale;
                    quarantine.add(message.received_ms, sources[i]->topic, message.gateway_id,
                                   stale ? "stale_epoch" : "spool_invalid",
                                   stale ? "epoch " + std::to_string(message.sequence.epoch) +
                                               " is older than every epoch kept for the gateway"
                                         : "the spool refused the message as invalid",
                                   sources[i]->payload);
                    fleet.onRejected(message.gateway_id, message.received_ms);
                    break;
                }
            }
        }
        const auto stats = spool.stats();
        if (stats.above_high_water != was_above_high_water) {
            was_above_high_water = stats.above_high_water;
            if (stats.above_high_water) {
                spdlog::error("spool above its high-water mark: {} of {} bytes; a sink is behind",
                              stats.bytes, stats.max_bytes);
            } else {
                spdlog::info("spool back below its high-water mark");
            }
            if (hooks.high_water) hooks.high_water(stats.above_high_water, stats);
        }
        if (stored_any && hooks.spooled) hooks.spooled();
    }

    // A receipt on the receipt topic, published by an ingest process (only the ingest may
    // publish there: deploy/mosquitto/acl). Ours come back too; the spool ignores those.
    std::optional<shared::Receipt> otherIngestsReceipt(const MqttMessage& message) {
        auto parsed = verifier.topics().parse(message.topic);
        if (!parsed || parsed.value().kind != shared::TopicKind::Receipt) return std::nullopt;
        auto receipt = shared::decodeReceipt(message.payload);
        if (!receipt || receipt.value().gateway_id != parsed.value().gateway_id) {
            receipts_undecodable.inc();
            return shared::Receipt{};  // consumed, and ignored by the spool
        }
        return std::move(receipt.value());
    }

    void askForGaps(const std::string& gateway, std::uint64_t epoch,
                    std::chrono::steady_clock::time_point now) {
        auto& last = last_resend[gateway];
        if (last != std::chrono::steady_clock::time_point{} && now - last < kResendInterval) return;
        last = now;
        if (auto sent = sendCommand(gateway, "resend", epoch, {}); !sent) {
            spdlog::warn("intake: asking {} for its gaps: {}", gateway, sent.error().message());
        }
    }

    void sendDueReceipts(bool final_pass) {
        const auto now = clock.monoNow();
        auto due = receipts.takeDue(final_pass ? now + std::chrono::hours(1) : now);
        for (const auto& key : due) {
            auto receipt = spool.receiptFor(key.first, key.second);
            receipt.gateway_id = key.first;
            auto payload = shared::encodeReceipt(receipt);
            if (!payload) {
                spdlog::error("intake: encoding a receipt for {}: {}", key.first,
                              payload.error().message());
                continue;
            }
            auto topic = verifier.topics().topic(key.first, shared::TopicKind::Receipt);
            if (!topic) continue;
            // QoS 0: a receipt is cumulative, so a lost one is replaced by the next, and QoS 1
            // would bound receipts by the broker's receive maximum (20 in flight), which 2,500
            // gateways outran (see docs/ingest.md).
            auto sent = hooks.publish ? hooks.publish(topic.value(), payload.value(), 0)
                                      : shared::VoidResult(shared::Error::retry("no_publisher"));
            if (sent) {
                receipts_sent.inc();
            } else {
                receipt_failures.inc();
                if (!final_pass) receipts.putBack(key, now + kReceiptRetryInterval);
            }
        }
    }

    shared::Result<std::uint64_t> sendCommand(const std::string& gateway, const std::string& name,
                                              std::uint64_t epoch,
                                              std::vector<shared::SeqRange> ranges) {
        if (auto valid = shared::validateGatewayId(gateway); !valid) {
            return shared::Error::drop("invalid_command", valid.error().message());
        }
        if (auto valid = shared::validateCommandName(name); !valid) {
            return shared::Error::drop("invalid_command", valid.error().message());
        }
        if (name == "resend" && ranges.empty()) {
            ranges = spool.gaps(gateway, epoch, kMaxReceiptRanges);
            if (ranges.empty()) {
                return shared::Error::drop("no_gaps", "the spool has no gaps for " + gateway +
                                                          " in epoch " + std::to_string(epoch));
            }
        }
        const auto now_ms = shared::toUnixMillis(clock.wallNow());
        shared::Command command;
        command.gateway_id = gateway;
        command.command_id = next_command_id.fetch_add(1);
        command.name = name;
        command.issued_at_ms = now_ms;
        command.expires_at_ms =
            now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(kCommandTtl).count();
        command.epoch = epoch;
        command.resend_ranges = std::move(ranges);
        auto payload = shared::encodeCommand(command);
        if (!payload) return shared::Error::drop("invalid_command", payload.error().message());
        auto topic = verifier.topics().topic(gateway, shared::TopicKind::Command, name);
        if (!topic) return shared::Error::drop("invalid_command", topic.error().message());
        if (!hooks.publish) return shared::Error::retry("no_publisher", "no MQTT link");
        if (auto sent = hooks.publish(topic.value(), payload.value(), 1); !sent) {
            return sent.error();
        }
        commands_sent.inc();
        spdlog::info("command {} '{}' sent to {}", command.command_id, name, gateway);
        return command.command_id;
    }
};

Intake::Intake(const IntakeConfig& intake, const MqttConfig& mqtt, const Verifier& verifier,
               Spool& spool, Quarantine& quarantine, FleetState& fleet, const shared::Clock& clock,
               IntakeHooks hooks, shared::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(intake, mqtt, verifier, spool, quarantine, fleet, clock,
                                   std::move(hooks), metrics)) {}

Intake::~Intake() { stop(); }

void Intake::start() {
    if (impl_->thread.joinable()) return;
    impl_->thread = std::thread([this] { impl_->run(); });
}

bool Intake::push(MqttMessage&& message) {
    std::unique_lock lock(impl_->mutex);
    impl_->not_full.wait(lock, [&] {
        return impl_->stopping || impl_->queue.empty() ||
               impl_->queued_bytes + message.payload.size() <= impl_->config.queue_max_bytes;
    });
    if (impl_->stopping) {
        impl_->dropped_stopping.inc();
        return false;
    }
    impl_->queued_bytes += message.payload.size();
    impl_->queue.push_back(std::move(message));
    impl_->queue_bytes_gauge.set(static_cast<double>(impl_->queued_bytes));
    // The intake thread waits for a first message, or for a full group: only those wake it,
    // not every message of a burst (a futex call each, on Paho's receive thread).
    const bool wake =
        impl_->queue.size() == 1 ||
        impl_->queue.size() == static_cast<std::size_t>(impl_->config.group_max_messages);
    lock.unlock();
    if (wake) impl_->not_empty.notify_one();
    return true;
}

void Intake::stop() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->not_empty.notify_all();
    impl_->not_full.notify_all();
    if (impl_->thread.joinable()) impl_->thread.join();
    std::lock_guard lock(impl_->mutex);
    if (!impl_->queue.empty()) {
        impl_->dropped_stopping.inc(impl_->queue.size());
        impl_->queue.clear();
        impl_->queued_bytes = 0;
    }
}

void Intake::receiptAllSoon() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->receipt_all = true;
    }
    impl_->not_empty.notify_one();
}

shared::Result<std::uint64_t> Intake::sendCommand(const std::string& gateway,
                                                  const std::string& name, std::uint64_t epoch,
                                                  std::vector<shared::SeqRange> ranges) {
    return impl_->sendCommand(gateway, name, epoch, std::move(ranges));
}

std::uint64_t Intake::queuedBytes() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->queued_bytes;
}

bool Intake::spoolWritable() const { return impl_->spool_ok; }

}  // namespace tern::ingest
