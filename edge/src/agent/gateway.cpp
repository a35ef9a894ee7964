#include "tern/edge/agent/gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "tern/edge/agent/clock_watch.h"
#include "tern/edge/sample.h"
#include "tern/shared/every.h"
#include "tern/shared/version.h"

namespace tern::edge {

using namespace std::chrono_literals;

namespace {

constexpr auto kLimitsInterval = 60s;
constexpr auto kClockCheckInterval = 1s;
// At most one store alert of a kind per this period: a full disk stays full for a while.
constexpr std::int64_t kStoreAlertPeriodMs = 10 * 60 * 1000;

struct AtomicCounts {
    std::atomic<std::uint64_t> batches_stored{0};
    std::atomic<std::uint64_t> readings_stored{0};
    std::atomic<std::uint64_t> readings_failed{0};
    std::atomic<std::uint64_t> alerts_stored{0};
};

// Where sealed batches and alerts go: into the store (stamped with the clock's sync state), then
// the uplink is told. Failures are counted by the store; a full disk or a recovered file also
// raises an alert of the agent's own.
class StoreSink final : public BatchSink, public AlertSink {
public:
    StoreSink(Store& store, const SyncAwareClock& clock, AtomicCounts& counts)
        : store_(store), clock_(clock), counts_(counts) {}
    void setUplink(Uplink* uplink) { uplink_ = uplink; }

    void onBatch(const shared::TelemetryBatch& batch) override {
        shared::TelemetryBatch stamped = batch;
        stamped.clock_synced = clock_.synced();
        stamped.sent_at_ms = shared::toUnixMillis(clock_.wallNow());
        const auto before = diskFullDrops();
        const auto readings = static_cast<std::uint32_t>(batch.readings.size());
        auto stored = store_.storeBatch(stamped);
        if (stored) {
            counts_.batches_stored.fetch_add(1, std::memory_order_relaxed);
            counts_.readings_stored.fetch_add(readings, std::memory_order_relaxed);
            spdlog::debug("stored telemetry epoch={} seq={} readings={}", stored.value().epoch,
                          stored.value().seq, readings);
        } else {
            spdlog::error("store: dropped a batch of {} readings: {}", readings,
                          stored.error().message());
            counts_.readings_failed.fetch_add(readings, std::memory_order_relaxed);
            store_.countFailed(readings);
        }
        afterStore(before, stored ? std::string() : stored.error().code);
    }

    void onAlert(const shared::Alert& alert) override {
        shared::Alert stamped = alert;
        stamped.clock_synced = clock_.synced();
        const auto before = diskFullDrops();
        auto stored = store_.storeAlert(stamped);
        if (stored) {
            counts_.alerts_stored.fetch_add(1, std::memory_order_relaxed);
            spdlog::debug("stored alert epoch={} seq={} rule={}", stored.value().epoch,
                          stored.value().seq, alert.rule);
        } else {
            spdlog::error("store: dropped alert {}: {}", alert.rule, stored.error().message());
            store_.countFailed(0);
        }
        afterStore(before, stored ? std::string() : stored.error().code);
    }

    // The agent's own alert about its store ("store.disk_full", "store.recovered").
    void raiseStoreAlert(const std::string& rule, const std::string& message) {
        const auto now = shared::toUnixMillis(clock_.wallNow());
        auto& last = last_alert_ms_[rule];
        if (last != 0 && now - last < kStoreAlertPeriodMs) return;
        last = now;
        shared::Alert alert;
        alert.incident_id = static_cast<std::uint64_t>(now);
        alert.rule = rule;
        alert.severity = shared::Severity::Critical;
        alert.state = shared::AlertState::Firing;
        alert.time_ms = now;
        alert.message = message;
        spdlog::error("{}: {}", rule, message);
        onAlert(alert);
    }

private:
    std::uint64_t diskFullDrops() const {
        for (const auto& drop : store_.dropCounters()) {
            if (drop.reason == "disk_full") return drop.batches;
        }
        return 0;
    }

    void afterStore(std::uint64_t disk_full_before, const std::string& error_code) {
        const auto evicted = diskFullDrops() - disk_full_before;
        if (in_store_alert_) return;
        in_store_alert_ = true;
        if (error_code == "disk_full" || evicted > 0) {
            raiseStoreAlert("store.disk_full",
                            "the store's disk is full: evicted " + std::to_string(evicted) +
                                " oldest messages" +
                                (error_code == "disk_full" ? " and could not store one" : ""));
        }
        in_store_alert_ = false;
        if (uplink_ != nullptr) uplink_->onStored();
    }

    Store& store_;
    const SyncAwareClock& clock_;
    AtomicCounts& counts_;
    Uplink* uplink_ = nullptr;
    bool in_store_alert_ = false;
    std::map<std::string, std::int64_t> last_alert_ms_;
};

}  // namespace

shared::GatewayStatus gatewayStatus(const EdgeConfig& config, const Store& store,
                                    const SyncAwareClock& clock) {
    shared::GatewayStatus status;
    status.clock_synced = clock.synced();
    status.firmware_version = std::string(shared::projectVersion());
    for (std::size_t i = 0; i < config.sensors.size(); ++i) {
        const auto& sensor = config.sensors[i];
        status.sensors.push_back(shared::SensorInfo{static_cast<std::uint16_t>(i), sensor.name,
                                                    sensor.unit, sensorKindOf(sensor)});
    }
    const auto backlog = store.backlog();
    status.backlog_batches = backlog.messages;
    status.backlog_bytes = backlog.bytes;
    status.oldest_backlog_ms = backlog.oldest_created_ms;
    for (auto& drop : store.dropCounters()) {
        if (drop.batches > 0) status.drops.push_back(std::move(drop));
    }
    return status;
}

StoreOptions storeOptions(const EdgeConfig& config, std::uint64_t boot_id) {
    StoreOptions options;
    options.max_bytes = config.store.max_bytes;
    options.max_age = config.store.max_age;
    options.max_disk_bytes = config.store.max_disk_bytes;
    options.gateway_id = config.uplink.gateway_id;
    options.boot_id = boot_id;
    options.encode.max_message_bytes =
        std::min<std::size_t>(options.encode.max_message_bytes,
                              static_cast<std::size_t>(config.uplink.max_payload_bytes));
    return options;
}

struct EdgeGateway::Impl {
    Impl(boost::asio::io_context& io_context, const EdgeConfig& cfg, Store& s, SyncAwareClock& c,
         const ClockSyncSource& sync, shared::MetricsRegistry& metrics)
        : io(io_context),
          config(cfg),
          store(s),
          clock(c),
          sink(s, c, counts),
          tick(io_context, cfg.agent.tick_interval,
               [this] {
                   assembly->pipeline().onTick(
                       Tick{shared::toUnixMillis(clock.wallNow()), monoMillis(clock.monoNow())});
               }),
          limits(io_context, kLimitsInterval,
                 [this] {
                     if (auto done = store.enforceLimits(); !done) {
                         spdlog::error("store: enforcing limits: {}", done.error().message());
                     }
                 }),
          clock_sync(
              c, sync, s, [this] { assembly->pipeline().flush(); }, metrics),
          clock_check(io_context, kClockCheckInterval, [this] {
              if (clock_sync.check()) {
                  uplink->publishStatus();
                  uplink->onStored();  // what waited for the clock can go now
              }
          }) {}

    boost::asio::io_context& io;
    EdgeConfig config;
    Store& store;
    SyncAwareClock& clock;
    AtomicCounts counts;
    StoreSink sink;
    std::unique_ptr<Uplink> uplink;
    std::unique_ptr<EdgeAssembly> assembly;
    shared::Every tick;
    shared::Every limits;
    ClockSyncWatch clock_sync;
    shared::Every clock_check;
    bool running = false;
    bool sampling = false;
};

shared::Result<std::unique_ptr<EdgeGateway>> EdgeGateway::create(
    boost::asio::io_context& io, const EdgeConfig& config, Store& store, SyncAwareClock& clock,
    const ClockSyncSource& sync, shared::MetricsRegistry& metrics) {
    auto impl = std::make_unique<Impl>(io, config, store, clock, sync, metrics);
    Impl& self = *impl;
    if (store.recovered()) {
        self.sink.raiseStoreAlert("store.recovered",
                                  "the store failed its integrity check and was moved aside; a "
                                  "new one started at epoch " +
                                      std::to_string(store.epoch()));
    }
    auto uplink = Uplink::create(
        io, self.config.uplink, store,
        [&self] { return gatewayStatus(self.config, self.store, self.clock); }, clock, metrics);
    if (!uplink) return uplink.error();
    self.uplink = std::move(uplink.value());
    self.sink.setUplink(self.uplink.get());

    auto built = EdgeAssembly::build(self.config, clock, metrics, self.sink, self.sink);
    if (!built) return built.error();
    self.assembly = std::move(built.value());
    return std::unique_ptr<EdgeGateway>(new EdgeGateway(std::move(impl)));
}

EdgeGateway::EdgeGateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EdgeGateway::~EdgeGateway() {
    if (impl_->running) stop(0ms);
}

void EdgeGateway::start() {
    auto& self = *impl_;
    if (self.running) return;
    self.running = true;
    self.sampling = true;
    self.uplink->start();
    self.assembly->start(self.io);
    self.tick.start();
    self.limits.start();
    self.clock_check.start();
}

void EdgeGateway::stopSources() {
    auto& self = *impl_;
    if (!self.sampling) return;
    self.sampling = false;
    self.assembly->stop();
    self.assembly->pipeline().flush();
    self.tick.cancel();
}

void EdgeGateway::stop(std::chrono::milliseconds timeout) {
    auto& self = *impl_;
    if (!self.running) return;
    stopSources();
    self.running = false;
    self.uplink->stop(timeout);
    self.limits.cancel();
    self.clock_check.cancel();
}

shared::VoidResult EdgeGateway::reloadRules(const EdgeConfig& config) {
    auto applied = impl_->assembly->reloadRules(config);
    if (applied) impl_->config.rules = config.rules;
    return applied;
}

Uplink& EdgeGateway::uplink() { return *impl_->uplink; }
EdgeAssembly& EdgeGateway::assembly() { return *impl_->assembly; }

GatewayCounts EdgeGateway::counts() const {
    const auto& c = impl_->counts;
    return GatewayCounts{c.batches_stored.load(std::memory_order_relaxed),
                         c.readings_stored.load(std::memory_order_relaxed),
                         c.readings_failed.load(std::memory_order_relaxed),
                         c.alerts_stored.load(std::memory_order_relaxed)};
}

}  // namespace tern::edge
