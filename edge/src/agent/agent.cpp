#include "tern/edge/agent/agent.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tern/edge/agent/clock_sync.h"
#include "tern/edge/agent/gateway.h"
#include "tern/edge/agent/status_endpoint.h"
#include "tern/edge/store/store.h"
#include "tern/shared/every.h"
#include "tern/shared/program.h"
#include "tern/shared/sd_notify.h"
#include "tern/shared/version.h"

namespace tern::edge {

namespace {

// SIGHUP: rules and logging change at once; the rest needs a restart, and the log says so.
void reload(EdgeConfig& config, const std::string& path, EdgeGateway& gateway) {
    auto loaded = shared::reloadConfig<EdgeConfig>(path, configSchema(), validateEdgeConfig);
    if (!loaded) return;
    const EdgeConfig& next = *loaded;
    if (auto applied = gateway.reloadRules(next); !applied) {
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
    auto opened =
        Store::open(config.store.path, storeOptions(config, currentBootId()), clock, metrics);
    if (!opened) {
        spdlog::critical("cannot open the store {}: {}", config.store.path,
                         opened.error().message());
        return 1;
    }
    auto store = std::move(opened.value());
    spdlog::info("store {} at epoch {}, last seq {}, {} messages waiting", config.store.path,
                 store->epoch(), store->lastSeq(), store->backlog().messages);

    // The gateway opens its MQTT client before the status endpoint opens its descriptors
    // (Paho's select() limit).
    auto created = EdgeGateway::create(io, config, *store, clock, *sync_source, metrics);
    if (!created) {
        spdlog::critical("{}", created.error().message());
        return 1;
    }
    auto& gateway = *created.value();

    std::unique_ptr<StatusEndpoint> endpoint;
    if (!config.agent.status_listen.empty()) {
        auto started = StatusEndpoint::start(io, config.agent.status_listen, metrics,
                                             [&] { return gateway.uplink().connected(); });
        if (!started) {
            spdlog::critical("status endpoint: {}", started.error().message());
            return 1;
        }
        endpoint = std::move(started.value());
        spdlog::info("status endpoint on http://{}/healthz and /metrics", endpoint->address());
    }

    std::optional<shared::Every> watchdog;
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
        gateway.stop(config.agent.shutdown_timeout);
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
            reload(config, config_path, gateway);
            hangup.async_wait(on_hangup);
        };
    hangup.async_wait(on_hangup);

    gateway.start();
    shared::sdNotify("READY=1");
    spdlog::info("tern-edge {} running: {} sensors, {} rules, gateway {}", shared::projectVersion(),
                 config.sensors.size(), config.rules.size(), config.uplink.gateway_id);
    io.run();
    spdlog::info("stopped; {} messages wait in the store", store->backlog().messages);
    return 0;
}

}  // namespace tern::edge
