#include "tern/edge/agent/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tern/edge/agent/clock_sync.h"
#include "tern/edge/agent/clock_watch.h"
#include "tern/edge/agent/status_endpoint.h"
#include "tern/edge/assembly.h"
#include "tern/edge/sample.h"
#include "tern/edge/store/store.h"
#include "tern/edge/uplink/uplink.h"
#include "tern/shared/program.h"
#include "tern/shared/sd_notify.h"
#include "tern/shared/version.h"

namespace tern::edge {

using namespace std::chrono_literals;

namespace {

constexpr auto kLimitsInterval = 60s;
// At most one store alert of a kind per this period: a full disk stays full for a while.
constexpr std::int64_t kStoreAlertPeriodMs = 10 * 60 * 1000;

// A repeating timer on the io_context.
class Every {
public:
    Every(boost::asio::io_context& io, std::chrono::steady_clock::duration period,
          std::function<void()> work)
        : timer_(io), period_(period), work_(std::move(work)) {}
    void start() {
        timer_.expires_after(period_);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            work_();
            start();
        });
    }
    void cancel() { timer_.cancel(); }

private:
    boost::asio::steady_timer timer_;
    std::chrono::steady_clock::duration period_;
    std::function<void()> work_;
};

// Where sealed batches and alerts go: into the store (stamped with the clock's sync state), then
// the uplink is told. Failures are counted by the store; a full disk or a recovered file also
// raises an alert of the agent's own.
class StoreSink final : public BatchSink, public AlertSink {
public:
    StoreSink(Store& store, const SyncAwareClock& clock) : store_(store), clock_(clock) {}
    void setUplink(Uplink* uplink) { uplink_ = uplink; }

    void onBatch(const shared::TelemetryBatch& batch) override {
        shared::TelemetryBatch stamped = batch;
        stamped.clock_synced = clock_.synced();
        stamped.sent_at_ms = shared::toUnixMillis(clock_.wallNow());
        const auto before = diskFullDrops();
        auto stored = store_.storeBatch(stamped);
        if (stored) {
            spdlog::debug("stored telemetry epoch={} seq={} readings={}", stored.value().epoch,
                          stored.value().seq, batch.readings.size());
        } else {
            spdlog::error("store: dropped a batch of {} readings: {}", batch.readings.size(),
                          stored.error().message());
            store_.countFailed(static_cast<std::uint32_t>(batch.readings.size()));
        }
        afterStore(before, stored ? std::string() : stored.error().code);
    }

    void onAlert(const shared::Alert& alert) override {
        shared::Alert stamped = alert;
        stamped.clock_synced = clock_.synced();
        const auto before = diskFullDrops();
        auto stored = store_.storeAlert(stamped);
        if (stored) {
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
    Uplink* uplink_ = nullptr;
    bool in_store_alert_ = false;
    std::map<std::string, std::int64_t> last_alert_ms_;
};

shared::GatewayStatus statusOf(const EdgeConfig& config, const Store& store,
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

// SIGHUP: rules and logging change at once; the rest needs a restart, and the log says so.
void reload(EdgeConfig& config, const std::string& path, EdgeAssembly& assembly) {
    auto loaded = shared::reloadConfig<EdgeConfig>(path, configSchema(), validateEdgeConfig);
    if (!loaded) return;
    const EdgeConfig& next = *loaded;
    if (auto applied = assembly.reloadRules(next); !applied) {
        spdlog::error("SIGHUP: rules not reloaded: {}", applied.error().message());
        return;
    }
    config.rules = next.rules;
    shared::reloadLogging(config.log, next.log, "tern-edge");
    spdlog::info(
        "SIGHUP: reloaded {}: {} rules active; changes to sensors, [store], [uplink] "
        "and [agent] take effect at the next restart",
        path, config.rules.size());
}

}  // namespace

int runAgent(const EdgeConfig& initial_config, const std::string& config_path) {
    EdgeConfig config = initial_config;
    boost::asio::io_context io;
    shared::SystemClock system_clock;
    auto sync_source = makeClockSyncSource(config.agent.clock_sync);
    SyncAwareClock clock(system_clock, sync_source->synced());
    shared::MetricsRegistry metrics;
    StoreOptions store_options;
    store_options.max_bytes = config.store.max_bytes;
    store_options.max_age = config.store.max_age;
    store_options.max_disk_bytes = config.store.max_disk_bytes;
    store_options.gateway_id = config.uplink.gateway_id;
    store_options.boot_id = currentBootId();
    store_options.encode.max_message_bytes =
        std::min<std::size_t>(store_options.encode.max_message_bytes,
                              static_cast<std::size_t>(config.uplink.max_payload_bytes));
    auto opened = Store::open(config.store.path, store_options, clock, metrics);
    if (!opened) {
        spdlog::critical("cannot open the store {}: {}", config.store.path,
                         opened.error().message());
        return 1;
    }
    auto store = std::move(opened.value());
    spdlog::info("store {} at epoch {}, last seq {}, {} messages waiting", config.store.path,
                 store->epoch(), store->lastSeq(), store->backlog().messages);

    StoreSink sink(*store, clock);
    if (store->recovered()) {
        sink.raiseStoreAlert("store.recovered",
                             "the store failed its integrity check and was moved aside; a new "
                             "one started at epoch " +
                                 std::to_string(store->epoch()));
    }

    // The MQTT client comes before the sources and the status endpoint open their descriptors
    // (Paho's select() limit).
    auto uplink = Uplink::create(
        io, config.uplink, *store, [&] { return statusOf(config, *store, clock); }, clock, metrics);
    if (!uplink) {
        spdlog::critical("uplink: {}", uplink.error().message());
        return 1;
    }
    sink.setUplink(uplink.value().get());

    auto built = EdgeAssembly::build(config, clock, metrics, sink, sink);
    if (!built) {
        spdlog::critical("pipeline: {}", built.error().message());
        return 1;
    }
    auto& assembly = *built.value();

    std::unique_ptr<StatusEndpoint> endpoint;
    if (!config.agent.status_listen.empty()) {
        auto started = StatusEndpoint::start(io, config.agent.status_listen, metrics,
                                             [&] { return uplink.value()->connected(); });
        if (!started) {
            spdlog::critical("status endpoint: {}", started.error().message());
            return 1;
        }
        endpoint = std::move(started.value());
        spdlog::info("status endpoint on http://{}/healthz and /metrics", endpoint->address());
    }

    Every tick(io, config.agent.tick_interval, [&] {
        assembly.pipeline().onTick(
            Tick{shared::toUnixMillis(clock.wallNow()), monoMillis(clock.monoNow())});
    });
    Every limits(io, kLimitsInterval, [&] {
        if (auto done = store->enforceLimits(); !done) {
            spdlog::error("store: enforcing limits: {}", done.error().message());
        }
    });
    ClockSyncWatch clock_sync(
        clock, *sync_source, *store, [&] { assembly.pipeline().flush(); }, metrics);
    Every clock_watch(io, 1s, [&] {
        if (clock_sync.check()) uplink.value()->publishStatus();
    });
    std::optional<Every> watchdog;
    if (auto period = shared::sdWatchdogPeriod()) {
        watchdog.emplace(io, *period, [] { shared::sdNotify("WATCHDOG=1"); });
        watchdog->start();
    }

    bool stopping = false;
    auto shutdown = [&](int signal_number) {
        if (stopping) return;
        stopping = true;
        spdlog::info("signal {}: stopping", signal_number);
        shared::sdNotify("STOPPING=1");
        assembly.stop();
        assembly.pipeline().flush();
        uplink.value()->stop(config.agent.shutdown_timeout);
        tick.cancel();
        limits.cancel();
        clock_watch.cancel();
        if (watchdog) watchdog->cancel();
        if (endpoint) endpoint->stop();
        io.stop();
    };
    boost::asio::signal_set terminate(io, SIGTERM, SIGINT);
    std::function<void(const boost::system::error_code&, int)> on_terminate =
        [&](const boost::system::error_code& ec, int signal_number) {
            if (!ec) shutdown(signal_number);
        };
    terminate.async_wait(on_terminate);

    boost::asio::signal_set hangup(io, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hangup =
        [&](const boost::system::error_code& ec, int) {
            if (ec) return;
            reload(config, config_path, assembly);
            hangup.async_wait(on_hangup);
        };
    hangup.async_wait(on_hangup);

    uplink.value()->start();
    assembly.start(io);
    tick.start();
    limits.start();
    clock_watch.start();
    shared::sdNotify("READY=1");
    spdlog::info("tern-edge {} running: {} sensors, {} rules, gateway {}", shared::projectVersion(),
                 config.sensors.size(), config.rules.size(), config.uplink.gateway_id);
    io.run();
    spdlog::info("stopped; {} messages wait in the store", store->backlog().messages);
    return 0;
}

}  // namespace tern::edge
