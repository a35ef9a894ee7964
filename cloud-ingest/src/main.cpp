#include "tern/ingest/main.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <fstream>
#include <optional>
#include <sstream>

#include "tern/ingest/api.h"
#include "tern/ingest/config.h"
#include "tern/ingest/fleet_state.h"
#include "tern/ingest/intake.h"
#include "tern/ingest/mqtt_link.h"
#include "tern/ingest/quarantine.h"
#include "tern/ingest/sink_worker.h"
#include "tern/ingest/spool.h"
#include "tern/ingest/timeseries_sink.h"
#include "tern/ingest/timeseries_store.h"
#include "tern/ingest/verifier.h"
#include "tern/shared/http_server.h"
#include "tern/shared/program.h"
#include "tern/shared/sd_notify.h"
#include "tern/shared/version.h"

namespace tern::ingest {

using namespace std::chrono_literals;

namespace {

constexpr const char* kTsdbSinkName = "tsdb";

shared::Result<std::string> readToken(const std::string& path) {
    std::ifstream in(path);
    if (!in) return shared::Error::stop("token_file", "cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    std::string token = text.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                              token.back() == '\t')) {
        token.pop_back();
    }
    if (token.empty()) return shared::Error::stop("token_file", path + " is empty");
    return token;
}

SinkWorkerOptions workerOptions(const SinksConfig& sinks) {
    SinkWorkerOptions options;
    options.batch_records = static_cast<std::size_t>(sinks.batch_records);
    options.backoff_min = sinks.backoff_min;
    options.backoff_max = sinks.backoff_max;
    options.breaker_failures = static_cast<unsigned>(sinks.breaker_failures);
    options.breaker_cooldown = sinks.breaker_cooldown;
    return options;
}

// The configured sinks and their workers; rebuilt on SIGHUP when [sinks] changes.
class Sinks {
public:
    Sinks(const IngestConfig& config, Spool& spool, const shared::Clock& clock,
          shared::MetricsRegistry& metrics)
        : tsdb_config_(config.tsdb), spool_(spool), clock_(clock), metrics_(metrics) {}

    shared::VoidResult apply(const SinksConfig& next) {
        stopAll(current_ ? current_->drain_timeout : 0ms);
        if (next.tsdb) {
            auto store = TimeseriesStore::open(tsdb_config_, clock_, metrics_);
            if (!store) return store.error();
            auto sink =
                std::make_unique<TimeseriesSink>(kTsdbSinkName, std::move(store.value()), clock_);
            auto* tsdb = sink.get();
            auto worker =
                SinkWorker::create(spool_, std::move(sink), workerOptions(next), clock_, metrics_);
            if (!worker) return worker.error();
            std::lock_guard lock(mutex_);
            tsdb_ = tsdb;
            for (auto& [gateway, sensors] : births_) tsdb_->setSensors(gateway, sensors);
            for (auto& alert : held_alerts_) {
                std::string gateway = alert.gateway_id;  // before the alert is moved from
                tsdb_->addAlert(std::move(gateway), std::move(alert));
            }
            held_alerts_.clear();
            workers_.push_back(std::move(worker.value()));
        } else if (current_ && current_->tsdb) {
            // Turned off: the spool no longer keeps records for it.
            if (auto removed = spool_.removeCursor(kTsdbSinkName); !removed) {
                spdlog::warn("sinks: removing the tsdb cursor: {}", removed.error().message());
            }
        }
        current_ = next;
        std::lock_guard lock(mutex_);
        for (auto& worker : workers_) worker->start();
        return shared::success();
    }

    void notify() {
        std::lock_guard lock(mutex_);
        for (auto& worker : workers_) worker->notify();
    }

    void birth(const std::string& gateway, const std::vector<shared::SensorInfo>& sensors) {
        std::lock_guard lock(mutex_);
        births_[gateway] = sensors;
        if (tsdb_) tsdb_->setSensors(gateway, sensors);
    }

    // The ingest's own alert, stored with the gateways' alerts under its own name.
    void ingestAlert(shared::Alert alert) {
        std::lock_guard lock(mutex_);
        if (tsdb_) {
            std::string gateway = alert.gateway_id;  // before the alert is moved from
            tsdb_->addAlert(std::move(gateway), std::move(alert));
            for (auto& worker : workers_) worker->notify();
        } else if (held_alerts_.size() < kMaxHeldAlerts) {
            // No store now (turned off): kept for when one is configured again.
            held_alerts_.push_back(std::move(alert));
        }
    }

    void stopAll(std::chrono::milliseconds drain) {
        std::vector<std::unique_ptr<SinkWorker>> stopping;
        {
            std::lock_guard lock(mutex_);
            stopping.swap(workers_);
            tsdb_ = nullptr;
        }
        for (auto& worker : stopping) worker->stop(drain);
    }

    const std::optional<SinksConfig>& current() const { return current_; }

private:
    TimeseriesStoreConfig tsdb_config_;
    Spool& spool_;
    const shared::Clock& clock_;
    shared::MetricsRegistry& metrics_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<SinkWorker>> workers_;
    TimeseriesSink* tsdb_ = nullptr;
    // Latest sensor table per gateway, for a tsdb sink created after the birth arrived.
    std::map<std::string, std::vector<shared::SensorInfo>> births_;
    std::optional<SinksConfig> current_;
    static constexpr std::size_t kMaxHeldAlerts = 100;
    std::vector<shared::Alert> held_alerts_;
};

void reload(IngestConfig& config, const std::string& path, Sinks& sinks) {
    auto loaded = shared::reloadConfig<IngestConfig>(path, configSchema(), validateIngestConfig);
    if (!loaded) return;
    const IngestConfig& next = *loaded;
    shared::reloadLogging(config.log, next.log, "tern-ingest");
    if (next.sinks == config.sinks) {
        spdlog::info("SIGHUP: reloaded {}: [sinks] unchanged", path);
        return;
    }
    if (auto applied = sinks.apply(next.sinks); !applied) {
        spdlog::error("SIGHUP: sinks not reloaded: {}", applied.error().message());
        return;
    }
    config.sinks = next.sinks;
    spdlog::info(
        "SIGHUP: reloaded {}: sinks restarted (tsdb {}); changes outside [sinks] and "
        "[log] take effect at the next restart",
        path, config.sinks.tsdb ? "on" : "off");
}

int run(IngestConfig config, const std::string& config_path) {
    shared::SystemClock clock;
    shared::MetricsRegistry metrics;

    std::string token;
    if (!config.api.token_file.empty()) {
        auto read = readToken(config.api.token_file);
        if (!read) {
            spdlog::error("api: {}", read.error().message());
            return shared::kConfigErrorExitStatus;
        }
        token = std::move(read.value());
    }

    auto verifier = Verifier::create(config.verify, metrics);
    if (!verifier) {
        spdlog::error("verify: {}", verifier.error().message());
        return shared::kConfigErrorExitStatus;
    }
    SpoolOptions spool_options;
    spool_options.max_bytes = config.spool.max_bytes;
    spool_options.high_water = config.spool.high_water;
    spool_options.max_disk_bytes = config.spool.max_disk_bytes;
    auto spool = Spool::open(config.spool.path, spool_options, clock, metrics);
    if (!spool) {
        spdlog::error("spool: {}", spool.error().message());
        return 1;
    }
    // The API's own read-only handle on the store (WAL: its queries never block the writer).
    auto query_store = TimeseriesStore::open(config.tsdb, clock, metrics);
    if (!query_store) {
        spdlog::error("tsdb: {}", query_store.error().message());
        return 1;
    }
    Quarantine quarantine(config.quarantine, metrics);
    FleetState fleet(metrics);

    Sinks sinks(config, *spool.value(), clock, metrics);
    if (auto applied = sinks.apply(config.sinks); !applied) {
        spdlog::error("sinks: {}", applied.error().message());
        return 1;
    }

    std::unique_ptr<MqttLink> link;
    IntakeHooks hooks;
    hooks.publish = [&link](const std::string& topic, const shared::Bytes& payload, int qos) {
        return link->publish(topic, payload, qos);
    };
    hooks.spooled = [&sinks] { sinks.notify(); };
    hooks.birth = [&sinks](const std::string& gateway,
                           const std::vector<shared::SensorInfo>& sensors) {
        sinks.birth(gateway, sensors);
    };
    std::uint64_t high_water_incidents = 0;
    hooks.high_water = [&sinks, &clock, &high_water_incidents](bool above,
                                                               const SpoolStats& stats) {
        if (above) high_water_incidents += 1;
        shared::Alert alert;
        alert.gateway_id = "tern-ingest";
        alert.incident_id = high_water_incidents;
        alert.rule = "spool-high-water";
        alert.severity = shared::Severity::Critical;
        alert.state = above ? shared::AlertState::Firing : shared::AlertState::Resolved;
        alert.value = stats.max_bytes == 0
                          ? 0.0
                          : static_cast<double>(stats.bytes) / static_cast<double>(stats.max_bytes);
        alert.time_ms = shared::toUnixMillis(clock.wallNow());
        alert.clock_synced = true;
        alert.message = above ? "spool above its high-water mark: a sink is behind; at the limit "
                                "the ingest stops receipting and gateways keep their data"
                              : "spool back below its high-water mark";
        sinks.ingestAlert(std::move(alert));
    };
    Intake intake(config.intake, config.mqtt, verifier.value(), *spool.value(), quarantine, fleet,
                  clock, std::move(hooks), metrics);

    MqttLinkHandlers handlers;
    handlers.on_message = [&intake](MqttMessage&& message) { intake.push(std::move(message)); };
    handlers.on_subscribed = [&intake] { intake.receiptAllSoon(); };
    auto created = MqttLink::create(config.mqtt, verifier.value().topics(), clock,
                                    std::move(handlers), metrics);
    if (!created) {
        spdlog::error("mqtt: {}", created.error().message());
        return shared::kConfigErrorExitStatus;
    }
    link = std::move(created.value());
    intake.start();
    // Before the HTTP server exists: Paho's select() needs the MQTT socket below descriptor 1024.
    if (!link->start(config.mqtt.connect_timeout)) {
        spdlog::warn("mqtt: not connected to {} yet; retrying in the background",
                     config.mqtt.broker);
    }

    boost::asio::io_context io;
    IngestApi api(ApiSources{
        .fleet = &fleet,
        .quarantine = &quarantine,
        .spool = spool.value().get(),
        .series = query_store.value().get(),
        .metrics = &metrics,
        .clock = &clock,
        .subscribed = [&link] { return link->subscribed(); },
        .spool_writable = [&intake] { return intake.spoolWritable(); },
        .send_command =
            [&intake](const std::string& gateway, const std::string& name, std::uint64_t epoch,
                      std::vector<shared::SeqRange> ranges) {
                return intake.sendCommand(gateway, name, epoch, std::move(ranges));
            },
        .token = token,
    });
    std::unique_ptr<shared::HttpServer> server;
    if (!config.api.listen.empty()) {
        const auto address = shared::parseListenAddress(config.api.listen);
        shared::HttpServerOptions options;
        options.name = "api";
        options.address = address->first;
        options.port = address->second;
        options.max_connections = static_cast<std::size_t>(config.api.max_connections);
        auto started = shared::HttpServer::start(
            io, options, [&api](const shared::HttpRequest& request) { return api.handle(request); },
            metrics);
        if (!started) {
            spdlog::error("api: {}", started.error().message());
            intake.stop();
            link->stop(1s);
            sinks.stopAll(0ms);
            return 1;
        }
        server = std::move(started.value());
        spdlog::info("api: listening on http://{}:{}", address->first, server->port());
    }

    std::optional<boost::asio::steady_timer> watchdog_timer;
    std::function<void()> watchdog;
    if (auto period = shared::sdWatchdogPeriod()) {
        watchdog_timer.emplace(io);
        watchdog = [&, period = *period] {
            shared::sdNotify("WATCHDOG=1");
            watchdog_timer->expires_after(period);
            watchdog_timer->async_wait([&](const boost::system::error_code& ec) {
                if (!ec) watchdog();
            });
        };
        watchdog();
    }

    bool stopping = false;
    auto shutdown = [&](int signal_number) {
        if (stopping) return;
        stopping = true;
        spdlog::info("signal {}: stopping", signal_number);
        shared::sdNotify("STOPPING=1");
        if (server) server->stop();
        if (watchdog_timer) watchdog_timer->cancel();
        // Spool what has arrived and send its receipts while the link is still up; what arrives
        // after this is not receipted and the gateways send it again.
        intake.stop();
        link->stop(2s);
        sinks.stopAll(config.sinks.drain_timeout);
        io.stop();
    };
    boost::asio::signal_set terminate(io, SIGTERM, SIGINT);
    terminate.async_wait([&](const boost::system::error_code& ec, int signal_number) {
        if (!ec) shutdown(signal_number);
    });
    boost::asio::signal_set hangup(io, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hangup =
        [&](const boost::system::error_code& ec, int) {
            if (ec) return;
            reload(config, config_path, sinks);
            hangup.async_wait(on_hangup);
        };
    hangup.async_wait(on_hangup);

    shared::sdNotify("READY=1");
    spdlog::info("tern-ingest {} running: broker {}, spool {}, tsdb {}", shared::projectVersion(),
                 config.mqtt.broker, config.spool.path,
                 config.sinks.tsdb ? config.tsdb.path : "off");
    io.run();
    const auto stats = spool.value()->stats();
    spdlog::info("stopped; {} records ({} bytes) wait in the spool", stats.records, stats.bytes);
    return 0;
}

}  // namespace

int runMain(int argc, const char* const* argv) {
    const shared::ProgramInfo info{"tern-ingest",
                                   "Tern ingest: verifies, deduplicates and spools gateway "
                                   "telemetry, and fans it out to sinks",
                                   "/etc/tern/ingest.toml"};
    return shared::runProgram<IngestConfig>(
        info, argc, argv, configSchema(),
        [](const IngestConfig& config, const std::string& path) { return run(config, path); },
        validateIngestConfig);
}

}  // namespace tern::ingest
