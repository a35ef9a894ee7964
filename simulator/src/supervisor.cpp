#include "supervisor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "tern/shared/every.h"
#include "tern/sim/identities.h"
#include "verify.h"
#include "worker.h"

extern char** environ;

namespace tern::sim {

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Time for the workers to start and plan before the timeline's zero.
constexpr auto kStartLead = 1500ms;
constexpr auto kQuietProgressInterval = 10s;

std::int64_t nowUnixMs() { return shared::toUnixMillis(std::chrono::system_clock::now()); }

struct WorkerProcess {
    explicit WorkerProcess(boost::asio::io_context& io) : output(io) {}
    pid_t pid = -1;
    std::size_t first = 0;
    std::size_t count = 0;
    boost::asio::posix::stream_descriptor output;
    boost::asio::streambuf buffer;
    json progress = json::object();
    bool done = false;  // sent {"type":"done"}
    bool open = true;   // its stdout is still open
    int exit_status = -1;
};

GatewayReport reportFrom(const json& line) {
    GatewayReport report;
    report.id = line.at("id").get<std::string>();
    report.produced = line.at("produced").get<std::uint64_t>();
    report.evicted = line.at("evicted").get<std::uint64_t>();
    report.sent = line.at("sent").get<std::uint64_t>();
    report.receipted = line.at("receipted").get<std::uint64_t>();
    report.backlog = line.at("backlog").get<std::uint64_t>();
    report.alerts = line.at("alerts").get<std::uint64_t>();
    report.connects = line.at("connects").get<std::uint64_t>();
    report.boots = line.at("boots").get<std::uint64_t>();
    report.error = line.at("error").get<std::string>();
    return report;
}

json reportJson(const GatewayReport& r) {
    json out{{"id", r.id},         {"produced", r.produced},   {"evicted", r.evicted},
             {"sent", r.sent},     {"receipted", r.receipted}, {"backlog", r.backlog},
             {"alerts", r.alerts}, {"connects", r.connects},   {"boots", r.boots}};
    if (!r.error.empty()) out["error"] = r.error;
    return out;
}

class Supervisor {
public:
    Supervisor(const SimConfig& config, const FleetPlan& plan, const RunOptions& options,
               std::string program)
        : config_(config),
          plan_(plan),
          options_(options),
          program_(std::move(program)),
          signals_(io_, SIGINT, SIGTERM),
          progress_(io_, 1s, [this] { showProgress(); }),
          terminal_(::isatty(STDOUT_FILENO) == 1) {}

    int run() {
        const auto started = std::chrono::steady_clock::now();
        std::vector<std::string> ids;
        for (const auto& gateway : plan_.gateways) ids.push_back(gateway.id);
        auto identities = ensureGatewayIdentities(config_.broker.pki_dir, ids);
        if (!identities) {
            spdlog::critical("certificates: {}", identities.error().message());
            return 1;
        }
        spdlog::info("{} gateway certificates ready in {} ms", ids.size(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count());

        run_start_ms_ = nowUnixMs() + std::chrono::milliseconds(kStartLead).count();
        const auto per = static_cast<std::size_t>(config_.fleet.gateways_per_worker);
        for (std::size_t first = 0; first < plan_.gateways.size(); first += per) {
            if (!spawn(first, std::min(per, plan_.gateways.size() - first))) {
                stopWorkers(SIGKILL);
                return 1;
            }
        }
        spdlog::info("{} gateways in {} worker processes; the run starts now{}",
                     plan_.gateways.size(), workers_.size(),
                     config_.fleet.duration > 0ms
                         ? fmt::format(" and lasts {} s", config_.fleet.duration.count() / 1000)
                         : std::string(" and lasts until Ctrl-C"));
        scheduleBrokerOutages();
        signals_.async_wait([this](const boost::system::error_code& ec, int number) {
            if (!ec) onSignal(number);
        });
        progress_.start();
        io_.run();
        continueBroker();
        if (terminal_) std::cout << '\n';
        return finish();
    }

private:
    bool spawn(std::size_t first, std::size_t count) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            spdlog::critical("pipe: {}", std::strerror(errno));
            return false;
        }
        std::vector<std::string> args{program_,
                                      "--config",
                                      options_.config_path,
                                      "--worker-first",
                                      std::to_string(first),
                                      "--worker-count",
                                      std::to_string(count),
                                      "--run-start",
                                      std::to_string(run_start_ms_)};
        args.insert(args.end(), options_.worker_args.begin(), options_.worker_args.end());
        std::vector<char*> argv;
        for (auto& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        pid_t pid = -1;
        const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        if (rc != 0) {
            ::close(fds[0]);
            spdlog::critical("cannot start a worker: {}", std::strerror(rc));
            return false;
        }
        auto& worker = workers_.emplace_back(io_);
        worker.pid = pid;
        worker.first = first;
        worker.count = count;
        worker.output.assign(fds[0]);
        readLine(worker);
        return true;
    }

    void readLine(WorkerProcess& worker) {
        boost::asio::async_read_until(
            worker.output, worker.buffer, '\n',
            [this, &worker](const boost::system::error_code& ec, std::size_t size) {
                if (ec) {
                    worker.open = false;
                    if (!worker.done) {
                        spdlog::error("worker {} (gateways {}..{}) ended without its report",
                                      worker.pid, worker.first + 1, worker.first + worker.count);
                    }
                    if (std::all_of(workers_.begin(), workers_.end(),
                                    [](const auto& w) { return !w.open; })) {
                        progress_.cancel();
                        signals_.cancel();
                        for (auto& timer : timers_) timer.cancel();
                    }
                    return;
                }
                std::string line(static_cast<const char*>(worker.buffer.data().data()), size);
                worker.buffer.consume(size);
                onLine(worker, line);
                readLine(worker);
            });
    }

    void onLine(WorkerProcess& worker, const std::string& line) {
        try {
            const auto message = json::parse(line);
            const auto type = message.at("type").get<std::string>();
            if (type == "progress") {
                worker.progress = message;
            } else if (type == "gateway") {
                reports_.push_back(reportFrom(message));
            } else if (type == "done") {
                worker.done = true;
            }
        } catch (const std::exception& e) {
            spdlog::error("worker {} wrote a line that is not its protocol ({}): {}", worker.pid,
                          e.what(), line.substr(0, 200));
        }
    }

    void onSignal(int number) {
        if (stopping_) {
            spdlog::warn("signal {} again: killing the workers", number);
            stopWorkers(SIGKILL);
            return;
        }
        stopping_ = true;
        spdlog::info("signal {}: ending the run (the gateways drain, then report)", number);
        continueBroker();
        stopWorkers(SIGTERM);
        signals_.async_wait([this](const boost::system::error_code& ec, int again) {
            if (!ec) onSignal(again);
        });
    }

    void stopWorkers(int number) {
        for (auto& worker : workers_) {
            if (worker.pid > 0) ::kill(worker.pid, number);
        }
    }

    pid_t brokerPid() const { return static_cast<pid_t>(config_.broker.pid); }

    void scheduleBrokerOutages() {
        for (const auto& outage : plan_.broker_outages) {
            if (brokerPid() <= 0) {
                spdlog::warn(
                    "broker_outage at {} s skipped: no broker pid ([broker] pid or "
                    "--broker-pid)",
                    outage.at.count() / 1000);
                continue;
            }
            at(outage.at, [this, outage] {
                if (stopping_) return;
                spdlog::info("broker outage: stopping broker process {} for {} s", brokerPid(),
                             outage.duration.count() / 1000);
                if (::kill(brokerPid(), SIGSTOP) == 0) broker_stopped_ = true;
            });
            at(outage.end(), [this] { continueBroker(); });
        }
    }

    void continueBroker() {
        if (!broker_stopped_) return;
        broker_stopped_ = false;
        ::kill(brokerPid(), SIGCONT);
        spdlog::info("broker outage over: broker process {} continues", brokerPid());
    }

    void at(std::chrono::milliseconds since_zero, std::function<void()> work) {
        auto& timer = timers_.emplace_back(io_);
        const auto wait = std::chrono::milliseconds(run_start_ms_ - nowUnixMs()) + since_zero;
        timer.expires_after(wait);
        timer.async_wait([work = std::move(work)](const boost::system::error_code& ec) {
            if (!ec) work();
        });
    }

    void showProgress() {
        std::uint64_t running = 0, connected = 0, produced = 0, backlog = 0, alerts = 0;
        for (const auto& worker : workers_) {
            const auto& p = worker.progress;
            if (!p.contains("produced")) continue;
            running += p.at("running").get<std::uint64_t>();
            connected += p.at("connected").get<std::uint64_t>();
            produced += p.at("produced").get<std::uint64_t>();
            backlog += p.at("backlog").get<std::uint64_t>();
            alerts += p.at("alerts").get<std::uint64_t>();
        }
        const auto now = std::chrono::steady_clock::now();
        const double seconds = std::chrono::duration<double>(now - last_progress_at_).count();
        const double rate = last_produced_ <= produced && seconds > 0
                                ? static_cast<double>(produced - last_produced_) / seconds
                                : 0.0;
        last_produced_ = produced;
        last_progress_at_ = now;
        const auto elapsed = std::max<std::int64_t>(0, (nowUnixMs() - run_start_ms_) / 1000);
        const auto line = fmt::format(
            "{:02}:{:02}  gateways {}/{} connected ({} running)  {:.0f} readings/s  backlog {} "
            "msgs  alerts {}  produced {}",
            elapsed / 60, elapsed % 60, connected, plan_.gateways.size(), running, rate, backlog,
            alerts, produced);
        if (terminal_) {
            std::cout << "\r\033[K" << line << std::flush;
        } else if (now - last_quiet_line_ >= kQuietProgressInterval) {
            last_quiet_line_ = now;
            spdlog::info("{}", line);
        }
    }

    int finish() {
        int failures = 0;
        for (auto& worker : workers_) {
            int status = 0;
            if (::waitpid(worker.pid, &status, 0) == worker.pid) {
                worker.exit_status =
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            if (worker.exit_status != 0 || !worker.done) failures += 1;
        }
        const auto ended_ms = nowUnixMs();
        json gateways = json::array();
        GatewayReport total;
        std::sort(reports_.begin(), reports_.end(),
                  [](const auto& a, const auto& b) { return a.id < b.id; });
        for (const auto& r : reports_) {
            gateways.push_back(reportJson(r));
            total.produced += r.produced;
            total.evicted += r.evicted;
            total.sent += r.sent;
            total.receipted += r.receipted;
            total.backlog += r.backlog;
            total.alerts += r.alerts;
            total.connects += r.connects;
            total.boots += r.boots;
        }
        json report{{"scenario", options_.config_path}, {"seed", config_.fleet.seed},
                    {"started_ms", run_start_ms_},      {"ended_ms", ended_ms},
                    {"workers", workers_.size()},       {"worker_failures", failures},
                    {"totals", reportJson(total)},      {"gateways", std::move(gateways)}};
        report["totals"].erase("id");
        report["totals"]["gateways"] = reports_.size();

        int exit_status = failures == 0 && reports_.size() == plan_.gateways.size() ? 0 : 1;
        if (!options_.verify_url.empty()) {
            VerifyOptions verify;
            verify.url = options_.verify_url;
            verify.token = options_.verify_token;
            // Exactly this run's readings: a gateway's clock may be behind or ahead by its skew,
            // and an earlier run with the same ids must not count.
            std::chrono::milliseconds behind{0}, ahead{0};
            for (const auto& gw : plan_.gateways) {
                for (const auto& step : gw.clock_steps) {
                    behind = std::max(behind, -step.offset);
                    ahead = std::max(ahead, step.offset);
                }
            }
            constexpr std::int64_t kMarginMs = 5'000;
            verify.from_ms = run_start_ms_ - behind.count() - kMarginMs;
            verify.to_ms = ended_ms + ahead.count() + kMarginMs;
            spdlog::info("verifying against {}", verify.url);
            const auto result = verifyRun(plan_, reports_, verify);
            json problems = json::array();
            std::uint64_t stored = 0, anomalies = 0, alerted = 0;
            for (const auto& verdict : result.verdicts) {
                stored += verdict.stored_readings;
                anomalies += verdict.anomalies_expected;
                alerted += verdict.anomalies_alerted;
                if (!verdict.problem.empty()) {
                    problems.push_back({{"id", verdict.id}, {"problem", verdict.problem}});
                }
            }
            report["verify"] = {{"url", verify.url},
                                {"ok", result.ok},
                                {"error", result.error},
                                {"stored_readings", stored},
                                {"anomalies_expected", anomalies},
                                {"anomalies_alerted", alerted},
                                {"problems", problems}};
            if (result.ok) {
                std::cout << fmt::format(
                    "verify: OK — {} gateways reconcile: {} readings stored = produced - evicted, "
                    "no duplicates, {} of {} injected anomalies alerted\n",
                    result.verdicts.size(), stored, alerted, anomalies);
            } else {
                std::cout << "verify: FAILED" << (result.error.empty() ? "" : " — " + result.error)
                          << '\n';
                std::size_t shown = 0;
                for (const auto& problem : problems) {
                    if (++shown > 20) break;
                    std::cout << "  " << problem.at("id").get<std::string>() << ": "
                              << problem.at("problem").get<std::string>() << '\n';
                }
                exit_status = 1;
            }
        }

        const auto path = options_.report_path.empty()
                              ? std::filesystem::path(config_.fleet.state_dir) / "report.json"
                              : std::filesystem::path(options_.report_path);
        std::error_code ec;
        if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
        std::ofstream out(path);
        out << report.dump(2) << '\n';
        if (!out) {
            spdlog::error("cannot write the report {}", path.string());
            exit_status = 1;
        }
        std::cout << fmt::format(
            "run: {} gateways, {} readings produced, {} evicted, {} messages sent, {} receipted, "
            "{} left in stores, {} alerts; report {}\n",
            reports_.size(), total.produced, total.evicted, total.sent, total.receipted,
            total.backlog, total.alerts, path.string());
        if (failures > 0) std::cout << failures << " worker processes failed\n";
        return exit_status;
    }

    const SimConfig& config_;
    const FleetPlan& plan_;
    const RunOptions& options_;
    std::string program_;
    boost::asio::io_context io_;
    std::list<WorkerProcess> workers_;
    std::list<boost::asio::steady_timer> timers_;
    std::vector<GatewayReport> reports_;
    boost::asio::signal_set signals_;
    shared::Every progress_;
    bool terminal_;
    bool stopping_ = false;
    bool broker_stopped_ = false;
    std::int64_t run_start_ms_ = 0;
    std::uint64_t last_produced_ = 0;
    std::chrono::steady_clock::time_point last_progress_at_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_quiet_line_{};
};

}  // namespace

int runSupervisor(const SimConfig& config, const FleetPlan& plan, const RunOptions& options,
                  const std::string& program) {
    Supervisor supervisor(config, plan, options, program);
    return supervisor.run();
}

}  // namespace tern::sim
