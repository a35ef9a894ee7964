// Scale benchmark: how many virtual gateways one mosquitto and one tern-ingest hold on this
// machine, each gateway the real edge pipeline with ten sensors at 1 Hz publishing a batch every
// second over its own TLS connection (simulator/scenarios/scale.toml), with --verify clean.
//
// For each fleet size on the ladder: a fresh broker (the deploy config) and a fresh tern-ingest,
// then tern-sim for the scenario's duration; the steady window starts once every gateway has
// powered on and ends when the run does. Measured from outside, in the same run:
//   connected   the fewest gateways connected in any progress line of the steady window
//   readings/s  readings the fleet produced per second over the steady window (target: N x 10)
//   CPU         each process group's CPU over the steady window, in cores (1.0 = one core)
//   RSS         tern-sim's processes at the end of the window, and per gateway
// A size holds when every gateway stayed connected, the rate is at least 95% of the target and
// --verify reconciled every reading; the ladder stops at the first size that does not hold and the
// table says why.
//
// Usage: sim_scale_bench [--gateways 1000,2500,5000,10000] [--duration 150s]

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ingest_process.h"
#include "mosquitto_fixture.h"
#include "proc_stats.h"
#include "process.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using tern::bench::childrenOf;
using tern::bench::cpuSecondsOf;
using tern::bench::rssKibOf;

constexpr int kSensors = 10;
constexpr auto kStartSpread = 30s;  // as in scale.toml
constexpr auto kSettle = 15s;       // after the last power-on, before the window opens
constexpr auto kSample = 2s;

struct Row {
    int gateways = 0;
    int min_connected = -1;
    double readings_per_s = 0;
    double sim_cores = 0, broker_cores = 0, ingest_cores = 0;
    double sim_rss_mb = 0;
    bool verified = false;
    int exit_status = -1;
    std::string why;
    bool holds() const { return why.empty(); }
};

// Everything tern-sim runs: the supervisor and its worker processes.
std::vector<pid_t> simTree(pid_t sim) {
    auto tree = childrenOf(sim);
    tree.push_back(sim);
    return tree;
}

double cpuOf(const std::vector<pid_t>& pids) {
    double total = 0;
    for (const auto pid : pids) total += cpuSecondsOf(pid);
    return total;
}

Row runOne(int gateways, std::chrono::seconds duration) {
    Row row;
    row.gateways = gateways;
    tern::test::MosquittoFixture broker(tern::test::MosquittoOptions{.clientCns = {"tern-ingest"}});
    tern::test::IngestProcess ingest(
        broker, tern::test::IngestOptions{.receiptInterval = "2s", .logLevel = "warn"});
    if (!ingest.start()) {
        row.why = "tern-ingest did not start";
        return row;
    }
    tern::test::TempDir dir("tern-sim-scale");
    const auto log = dir.path() / "sim.log";
    const auto report_file = dir.path() / "report.json";
    pid_t sim = tern::test::spawnProcess(
        {TERN_SIM_BINARY, "--config",
         std::string(TERN_SOURCE_DIR) + "/simulator/scenarios/scale.toml", "--gateways",
         std::to_string(gateways), "--duration", fmt::format("{}s", duration.count()), "--broker",
         broker.uri(), "--pki-dir", broker.caFile().parent_path().string(), "--state-dir",
         (dir.path() / "state").string(), "--report", report_file.string(), "--verify",
         "http://127.0.0.1:" + std::to_string(ingest.apiPort())},
        log);

    const auto started = std::chrono::steady_clock::now();
    const auto window_open = started + kStartSpread + kSettle;
    const auto window_close = started + duration;
    std::this_thread::sleep_until(window_open);
    auto tree = simTree(sim);
    const double sim_cpu0 = cpuOf(tree);
    const double broker_cpu0 = cpuSecondsOf(broker.pid());
    const double ingest_cpu0 = cpuSecondsOf(ingest.pid());
    const auto t0 = std::chrono::steady_clock::now();
    double rss_kib = 0;
    while (std::chrono::steady_clock::now() + kSample < window_close) {
        std::this_thread::sleep_for(kSample);
        tree = simTree(sim);
        double sum = 0;
        for (const auto pid : tree) sum += rssKibOf(pid);
        rss_kib = std::max(rss_kib, sum);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    row.sim_cores = (cpuOf(tree) - sim_cpu0) / seconds;
    row.broker_cores = (cpuSecondsOf(broker.pid()) - broker_cpu0) / seconds;
    row.ingest_cores = (cpuSecondsOf(ingest.pid()) - ingest_cpu0) / seconds;
    row.sim_rss_mb = rss_kib / 1024.0;

    // Drain and verification take their time at scale; bound them generously.
    const auto status = tern::test::waitForExit(sim, 20min);
    if (!status) {
        tern::test::killProcess(sim);
        row.why = "tern-sim did not finish within 20 minutes of the run's end";
        return row;
    }
    row.exit_status = *status;

    // Progress lines of the steady window: "mm:ss  gateways C/N connected (...)  R readings/s".
    const std::regex progress(R"((\d+):(\d+)  gateways (\d+)/\d+ connected .*?  (\d+) readings/s)");
    std::istringstream lines(tern::test::readFile(log));
    const auto open_s =
        std::chrono::duration_cast<std::chrono::seconds>(kStartSpread + kSettle).count();
    double rate_sum = 0;
    int rate_count = 0;
    for (std::string line; std::getline(lines, line);) {
        std::smatch m;
        if (!std::regex_search(line, m, progress)) continue;
        const auto at = std::stoi(m[1]) * 60 + std::stoi(m[2]);
        if (at < open_s || at >= duration.count()) continue;
        const int connected = std::stoi(m[3]);
        row.min_connected =
            row.min_connected < 0 ? connected : std::min(row.min_connected, connected);
        rate_sum += std::stod(m[4]);
        rate_count += 1;
    }
    row.readings_per_s = rate_count > 0 ? rate_sum / rate_count : 0;
    std::optional<json> report;
    try {
        report = json::parse(tern::test::readFile(report_file));
    } catch (const std::exception&) {
    }
    row.verified =
        report && report->contains("verify") && report->at("verify").at("ok").get<bool>();

    std::vector<std::string> why;
    if (row.min_connected != gateways) {
        why.push_back(
            fmt::format("only {} of {} connected", std::max(0, row.min_connected), gateways));
    }
    if (row.readings_per_s < 0.95 * gateways * kSensors) {
        why.push_back(
            fmt::format("{:.0f} readings/s < 95% of {}", row.readings_per_s, gateways * kSensors));
    }
    if (!row.verified) {
        std::string detail;
        if (report && report->contains("verify")) {
            const auto& v = report->at("verify");
            detail = v.at("error").get<std::string>();
            if (detail.empty() && !v.at("problems").empty()) {
                detail =
                    fmt::format("{} gateways do not reconcile, e.g. {}", v.at("problems").size(),
                                v.at("problems").at(0).at("problem").get<std::string>());
            }
        }
        why.push_back("--verify failed" + (detail.empty() ? "" : ": " + detail));
    }
    for (const auto& w : why) row.why += (row.why.empty() ? "" : "; ") + w;
    if (!row.holds()) {
        fmt::print(stderr, "--- tern-sim log tail ({} gateways)\n{}\n", gateways,
                   tern::test::readTail(log, 3000));
    }
    return row;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> ladder{1000, 2500, 5000, 10000};
    std::chrono::seconds duration{150};
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string option = argv[i];
        if (option == "--gateways") {
            ladder.clear();
            std::istringstream list(argv[i + 1]);
            for (std::string n; std::getline(list, n, ',');) ladder.push_back(std::stoi(n));
        } else if (option == "--duration") {
            duration = std::chrono::seconds(std::stoi(argv[i + 1]));
        } else {
            fmt::print(stderr,
                       "usage: sim_scale_bench [--gateways N,N,...] [--duration SECONDS]\n");
            return 2;
        }
    }
    if (duration <= kStartSpread + kSettle + 20s) {
        fmt::print(stderr,
                   "--duration must leave a steady window after {} s of power-on and settling\n",
                   (kStartSpread + kSettle).count());
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    fmt::print(
        "Scale: virtual gateways x {} sensors at 1 Hz, a batch per gateway per second, TLS with a "
        "certificate each,\none mosquitto and one tern-ingest (embedded store), {} s runs; steady "
        "window from {} s to the end.\n\n",
        kSensors, duration.count(), (kStartSpread + kSettle).count());
    std::vector<Row> rows;
    for (const int n : ladder) {
        fmt::print(stderr, "running {} gateways...\n", n);
        rows.push_back(runOne(n, duration));
        if (!rows.back().holds()) break;
    }
    fmt::print(
        "| gateways | connected (min) | readings/s | target | tern-sim CPU (cores) | broker CPU | "
        "ingest CPU | tern-sim RSS MB | KiB per gateway | verify | holds |\n");
    fmt::print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for (const auto& r : rows) {
        fmt::print(
            "| {} | {} | {:.0f} | {} | {:.2f} | {:.2f} | {:.2f} | {:.0f} | {:.0f} | {} | {} |\n",
            r.gateways, r.min_connected, r.readings_per_s, r.gateways * kSensors, r.sim_cores,
            r.broker_cores, r.ingest_cores, r.sim_rss_mb, r.sim_rss_mb * 1024.0 / r.gateways,
            r.verified ? "clean" : "FAILED", r.holds() ? "yes" : "no: " + r.why);
    }
    int largest = 0;
    for (const auto& r : rows) {
        if (r.holds()) largest = r.gateways;
    }
    fmt::print(
        "\nLargest fleet that holds on this machine ({} cores): {} gateways ({} readings/s). "
        "Target: 10000.\n",
        std::thread::hardware_concurrency(), largest, largest * kSensors);
    return 0;
}
