#include "worker.h"

#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>

#include "tern/edge/agent/clock_sync.h"
#include "tern/edge/agent/gateway.h"
#include "tern/edge/store/store.h"
#include "tern/shared/every.h"
#include "tern/shared/metrics.h"

namespace tern::sim {

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto kProgressInterval = 1s;
constexpr auto kDrainPoll = 200ms;
constexpr auto kStopTimeout = 2s;

std::int64_t nowUnixMs() { return shared::toUnixMillis(std::chrono::system_clock::now()); }

// A board's clock: true time plus an offset the timeline sets (skew, a boot in 1970).
class BoardClock final : public shared::Clock {
public:
    WallTime wallNow() const override {
        return std::chrono::system_clock::now() +
               std::chrono::milliseconds(offset_ms_.load(std::memory_order_relaxed));
    }
    MonoTime monoNow() const override { return std::chrono::steady_clock::now(); }
    void setOffset(std::chrono::milliseconds offset) {
        offset_ms_.store(offset.count(), std::memory_order_relaxed);
    }

private:
    std::atomic<std::int64_t> offset_ms_{0};
};

struct VirtualGateway {
    explicit VirtualGateway(const GatewayPlan& p) : plan(p) {}

    const GatewayPlan& plan;
    BoardClock board_clock;
    edge::FixedSyncSource sync{true};
    std::unique_ptr<edge::SyncAwareClock> clock;
    std::chrono::milliseconds skew{0};  // the clock's offset once it is set
    shared::MetricsRegistry metrics;
    std::unique_ptr<edge::Store> store;
    std::unique_ptr<edge::EdgeGateway> running;
    unsigned boots = 0;
    edge::GatewayCounts finished;  // of boots that ended
    edge::UplinkCounters finished_uplink;
    std::string error;
};

void writeLine(const json& line) {
    std::string text = line.dump();
    text.push_back('\n');
    std::size_t written = 0;
    while (written < text.size()) {
        const auto n = ::write(STDOUT_FILENO, text.data() + written, text.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // the supervisor is gone; SIGPIPE or its death signal ends us
        }
        written += static_cast<std::size_t>(n);
    }
}

class Worker {
public:
    Worker(const SimConfig& config, const FleetPlan& plan, const WorkerSlice& slice)
        : config_(config),
          progress_(io_, kProgressInterval, [this] { reportProgress(); }),
          signals_(io_, SIGTERM, SIGINT) {
        const auto since_zero = std::chrono::milliseconds(nowUnixMs() - slice.run_start_unix_ms);
        zero_ = std::chrono::steady_clock::now() - since_zero;
        for (std::size_t i = 0; i < slice.count; ++i) {
            gateways_.push_back(
                std::make_unique<VirtualGateway>(plan.gateways.at(slice.first - plan.first + i)));
        }
    }

    int run() {
        for (auto& gw : gateways_) schedule(*gw);
        if (config_.fleet.duration > 0ms) at(config_.fleet.duration, [this] { finish(); });
        signals_.async_wait([this](const boost::system::error_code& ec, int) {
            if (!ec) finish();
        });
        progress_.start();
        io_.run();
        for (auto& gw : gateways_) writeLine(reportOf(*gw));
        writeLine(json{{"type", "done"}});
        return 0;
    }

private:
    void at(std::chrono::milliseconds since_zero, std::function<void()> work) {
        auto& timer = timers_.emplace_back(io_);
        timer.expires_at(zero_ + since_zero);
        timer.async_wait([this, work = std::move(work)](const boost::system::error_code& ec) {
            if (!ec && !finishing_) work();
        });
    }

    void schedule(VirtualGateway& gw) {
        const auto& plan = gw.plan;
        at(plan.power_on, [this, &gw, when = plan.power_on] { boot(gw, when); });
        for (const auto& reboot : plan.reboots) {
            at(reboot.at, [this, &gw] { shutDown(gw); });
            at(reboot.end(), [this, &gw, when = reboot.end()] { boot(gw, when); });
        }
        for (const auto& outage : plan.network_outages) {
            at(outage.at, [&gw, outage] {
                if (gw.running) gw.running->uplink().cutOff(outage.duration);
            });
        }
        for (const auto& step : plan.clock_steps) {
            at(step.at, [&gw, step] {
                gw.skew = step.offset;
                if (gw.sync.synced()) gw.board_clock.setOffset(step.offset);
            });
        }
        if (plan.clock_sync_at) {
            at(*plan.clock_sync_at, [&gw] {
                gw.board_clock.setOffset(gw.skew);
                gw.sync.set(true);
            });
        }
    }

    std::chrono::milliseconds sinceZero() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - zero_);
    }

    // `planned` is the boot's time on the timeline, not when its timer fired: a sensor fault due at
    // that very moment must not be lost to a few milliseconds of timer latency.
    edge::EdgeConfig configFor(const VirtualGateway& gw, std::chrono::milliseconds planned) const {
        auto config = bootConfig(gw.plan, planned, gw.boots);
        config.store.max_bytes = config_.fleet.store_max_bytes;
        config.store.max_age = config_.fleet.store_max_age;
        auto& up = config.uplink;
        up.broker = config_.broker.url;
        up.ca_file = (std::filesystem::path(config_.broker.pki_dir) / "ca.crt").string();
        up.cert_file = gatewayCertFile(config_, gw.plan.id);
        up.key_file = gatewayKeyFile(config_, gw.plan.id);
        up.keepalive = config_.broker.keepalive;
        up.reconnect_min = config_.broker.reconnect_min;
        up.reconnect_max = config_.broker.reconnect_max;
        up.inflight_window = config_.broker.inflight_window;
        up.receipt_timeout = config_.broker.receipt_timeout;
        config.agent.status_listen.clear();
        return config;
    }

    void boot(VirtualGateway& gw, std::chrono::milliseconds planned) {
        if (gw.running || !gw.error.empty()) return;
        const auto config = configFor(gw, planned);
        if (!gw.clock) {
            // Power-on: a board without a clock reads 1970 until it syncs.
            const bool synced = !gw.plan.clock_sync_at;
            if (!synced) gw.board_clock.setOffset(std::chrono::milliseconds(-nowUnixMs()));
            gw.sync.set(synced);
            gw.clock = std::make_unique<edge::SyncAwareClock>(gw.board_clock, synced);
        }
        if (!gw.store) {
            const auto path = config_.fleet.store == "memory"
                                  ? std::string(":memory:")
                                  : (std::filesystem::path(config_.fleet.state_dir) / "stores" /
                                     (gw.plan.id + ".db"))
                                        .string();
            auto opened = edge::Store::open(
                path, edge::storeOptions(config, mixSeed(gw.plan.index, 0xb007) | 1), *gw.clock,
                gw.metrics);
            if (!opened) {
                fail(gw, "store: " + opened.error().message());
                return;
            }
            gw.store = std::move(opened.value());
        }
        auto created =
            edge::EdgeGateway::create(io_, config, *gw.store, *gw.clock, gw.sync, gw.metrics);
        if (!created) {
            fail(gw, created.error().message());
            return;
        }
        gw.running = std::move(created.value());
        gw.boots += 1;
        gw.running->start();
        // Powered on in the middle of a network outage: the link is down for what is left of it.
        const auto now = sinceZero();
        for (const auto& outage : gw.plan.network_outages) {
            if (now >= outage.at && now < outage.end()) {
                gw.running->uplink().cutOff(outage.end() - now);
            }
        }
    }

    void fail(VirtualGateway& gw, std::string why) {
        spdlog::error("{}: cannot run: {}", gw.plan.id, why);
        gw.error = std::move(why);
    }

    // A clean reboot (systemd stops the agent): the open batch is sealed into the store, the
    // death status published.
    void shutDown(VirtualGateway& gw) {
        if (!gw.running) return;
        gw.running->stop(kStopTimeout);
        keepCounts(gw);
        gw.running.reset();
    }

    void keepCounts(VirtualGateway& gw) {
        const auto counts = gw.running->counts();
        gw.finished.batches_stored += counts.batches_stored;
        gw.finished.readings_stored += counts.readings_stored;
        gw.finished.readings_failed += counts.readings_failed;
        gw.finished.alerts_stored += counts.alerts_stored;
        const auto uplink = gw.running->uplink().counters();
        gw.finished_uplink.connects += uplink.connects;
        gw.finished_uplink.published += uplink.published;
        gw.finished_uplink.receipts += uplink.receipts;
        gw.finished_uplink.acknowledged += uplink.acknowledged;
    }

    // The end of the run: sensors stop, gateways that are off come back and outages end, so that
    // everything stored can be receipted; then every gateway disconnects.
    void finish() {
        if (finishing_) return;
        finishing_ = true;
        for (auto& timer : timers_) timer.cancel();
        signals_.cancel();
        const auto now = sinceZero();
        for (auto& gw : gateways_) {
            if (!gw->running && gw->boots > 0) boot(*gw, now);
            if (!gw->running) continue;
            gw->running->stopSources();
            for (const auto& outage : gw->plan.network_outages) {
                if (now >= outage.at && now < outage.end()) gw->running->uplink().cutOff(0ms);
            }
            if (gw->plan.clock_sync_at && !gw->sync.synced()) {
                gw->board_clock.setOffset(gw->skew);
                gw->sync.set(true);
            }
        }
        drain_deadline_ = std::chrono::steady_clock::now() + config_.fleet.drain_timeout;
        spdlog::info("run over: waiting up to {} ms for receipts",
                     config_.fleet.drain_timeout.count());
        drainPoll();
    }

    void drainPoll() {
        std::uint64_t backlog = 0;
        for (auto& gw : gateways_) {
            if (gw->store) backlog += gw->store->backlog().messages;
        }
        if (backlog > 0 && std::chrono::steady_clock::now() < drain_deadline_) {
            drain_timer_.expires_after(kDrainPoll);
            drain_timer_.async_wait([this](const boost::system::error_code& ec) {
                if (!ec) drainPoll();
            });
            return;
        }
        if (backlog > 0) spdlog::warn("{} messages not receipted at the end", backlog);
        for (auto& gw : gateways_) shutDown(*gw);
        progress_.cancel();
        reportProgress();
        io_.stop();
    }

    void reportProgress() {
        std::uint64_t running = 0, connected = 0, produced = 0, backlog = 0, alerts = 0;
        for (auto& gw : gateways_) {
            produced += gw->finished.readings_stored + gw->finished.readings_failed;
            alerts += gw->finished.alerts_stored;
            if (gw->store) backlog += gw->store->backlog().messages;
            if (!gw->running) continue;
            running += 1;
            if (gw->running->uplink().connected()) connected += 1;
            const auto counts = gw->running->counts();
            produced += counts.readings_stored + counts.readings_failed;
            alerts += counts.alerts_stored;
        }
        writeLine(json{{"type", "progress"},
                       {"gateways", gateways_.size()},
                       {"running", running},
                       {"connected", connected},
                       {"produced", produced},
                       {"backlog", backlog},
                       {"alerts", alerts}});
    }

    json reportOf(const VirtualGateway& gw) const {
        std::uint64_t evicted = 0;
        std::uint64_t backlog = 0;
        if (gw.store) {
            for (const auto& drop : gw.store->dropCounters()) evicted += drop.readings;
            backlog = gw.store->backlog().messages;
        }
        return json{{"type", "gateway"},
                    {"id", gw.plan.id},
                    {"produced", gw.finished.readings_stored + gw.finished.readings_failed},
                    {"evicted", evicted},
                    {"sent", gw.finished_uplink.published},
                    {"receipted", gw.finished_uplink.acknowledged},
                    {"backlog", backlog},
                    {"alerts", gw.finished.alerts_stored},
                    {"connects", gw.finished_uplink.connects},
                    {"boots", gw.boots},
                    {"error", gw.error}};
    }

    const SimConfig& config_;
    boost::asio::io_context io_;
    std::chrono::steady_clock::time_point zero_;
    std::vector<std::unique_ptr<VirtualGateway>> gateways_;
    std::list<boost::asio::steady_timer> timers_;
    shared::Every progress_;
    boost::asio::signal_set signals_;
    bool finishing_ = false;
    std::chrono::steady_clock::time_point drain_deadline_;
    boost::asio::steady_timer drain_timer_{io_};
};

}  // namespace

std::string gatewayCertFile(const SimConfig& config, const std::string& id) {
    return (std::filesystem::path(config.broker.pki_dir) / "clients" / (id + ".crt")).string();
}

std::string gatewayKeyFile(const SimConfig& config, const std::string& id) {
    return (std::filesystem::path(config.broker.pki_dir) / "clients" / (id + ".key")).string();
}

int runWorker(const SimConfig& config, const FleetPlan& plan, const WorkerSlice& slice) {
    // A worker outlives no supervisor: its gateways would run on unobserved.
    const pid_t supervisor = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != supervisor) return 1;
    if (config.fleet.store == "disk") {
        std::error_code ec;
        std::filesystem::create_directories(
            std::filesystem::path(config.fleet.state_dir) / "stores", ec);
    }
    Worker worker(config, plan, slice);
    return worker.run();
}

}  // namespace tern::sim
