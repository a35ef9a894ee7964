#include "tern/sim/main.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>

#include "supervisor.h"
#include "tern/shared/program.h"
#include "tern/sim/config.h"
#include "tern/sim/plan.h"
#include "worker.h"

namespace tern::sim {

namespace {

struct CommandLine {
    RunOptions run;
    std::int64_t seed = -1;
    std::string duration;
    std::int64_t broker_pid = -1;
    std::int64_t gateways = 0;
    std::string broker_url;
    std::string pki_dir;
    std::string state_dir;
    // A worker's slice; set only by the supervisor.
    std::int64_t worker_first = -1;
    std::int64_t worker_count = 0;
    std::int64_t run_start_ms = 0;
};

void addOptions(CLI::App& app, CommandLine& line) {
    app.add_option("--seed", line.seed, "Overrides [fleet] seed")->check(CLI::NonNegativeNumber);
    app.add_option("--duration", line.duration, "Overrides [fleet] duration (\"90s\", \"10m\")");
    app.add_option("--broker-pid", line.broker_pid,
                   "Overrides [broker] pid: the broker process broker_outage stops")
        ->check(CLI::PositiveNumber);
    app.add_option("--gateways", line.gateways, "Overrides [fleet] gateways")
        ->check(CLI::Range(1, 100'000));
    app.add_option("--broker", line.broker_url, "Overrides [broker] url");
    app.add_option("--pki-dir", line.pki_dir, "Overrides [broker] pki_dir");
    app.add_option("--state-dir", line.state_dir, "Overrides [fleet] state_dir");
    app.add_option("--report", line.run.report_path,
                   "Where the final JSON report goes (default: <state_dir>/report.json)");
    app.add_option("--verify", line.run.verify_url,
                   "After the run, reconcile with tern-ingest's API at this URL "
                   "(http://127.0.0.1:8080); a bearer token is read from TERN_API_TOKEN. Exits 1 "
                   "on a mismatch");
    // The supervisor starts its workers with these; they are not for people.
    app.add_option("--worker-first", line.worker_first)->group("");
    app.add_option("--worker-count", line.worker_count)->group("");
    app.add_option("--run-start", line.run_start_ms)->group("");
}

int run(const SimConfig& loaded, const std::string& path, const CommandLine& line,
        const char* program) {
    SimConfig config = loaded;
    if (config.gateway.sensors.empty()) config.gateway.sensors = seedSensors();
    RunOptions options = line.run;
    options.config_path = path;
    // Workers get the overrides as they were given, so they plan the same fleet.
    auto pass = [&](const char* option, const std::string& value) {
        options.worker_args.insert(options.worker_args.end(), {option, value});
    };
    if (line.seed >= 0) {
        config.fleet.seed = line.seed;
        pass("--seed", std::to_string(line.seed));
    }
    if (line.gateways > 0) {
        config.fleet.gateways = line.gateways;
        pass("--gateways", std::to_string(line.gateways));
    }
    if (!line.broker_url.empty()) {
        config.broker.url = line.broker_url;
        pass("--broker", line.broker_url);
    }
    if (!line.pki_dir.empty()) {
        config.broker.pki_dir = line.pki_dir;
        pass("--pki-dir", line.pki_dir);
    }
    if (!line.state_dir.empty()) {
        config.fleet.state_dir = line.state_dir;
        pass("--state-dir", line.state_dir);
    }
    if (!line.duration.empty()) {
        const auto duration = shared::parseDuration(line.duration);
        if (!duration || duration->count() < 0) {
            spdlog::critical("--duration \"{}\" is not a duration such as 90s or 10m",
                             line.duration);
            return 2;
        }
        config.fleet.duration = *duration;
        pass("--duration", line.duration);
    }
    if (line.broker_pid > 0) config.broker.pid = line.broker_pid;
    if (!config.broker.url.starts_with("ssl://") && !config.broker.url.starts_with("mqtts://")) {
        spdlog::critical("--broker \"{}\" is not an ssl:// URL", config.broker.url);
        return 2;
    }
    if (line.worker_first >= 0) {
        spdlog::set_level(spdlog::level::from_str(config.fleet.gateway_log_level));
        const auto first = static_cast<std::size_t>(line.worker_first);
        const auto count = static_cast<std::size_t>(line.worker_count);
        const auto plan = planFleet(config, first, count);
        return runWorker(config, plan, WorkerSlice{first, plan.gateways.size(), line.run_start_ms});
    }
    if (const char* token = std::getenv("TERN_API_TOKEN")) options.verify_token = token;
    const auto plan = planFleet(config);
    return runSupervisor(config, plan, options, program);
}

}  // namespace

int runMain(int argc, const char* const* argv) {
    CommandLine line;
    shared::ProgramInfo info{
        "tern-sim",
        "Tern fleet simulator: runs many virtual gateways, each the real edge pipeline, against "
        "a real broker and tern-ingest",
        "simulator/scenarios/smart-building.toml"};
    info.add_options = [&line](CLI::App& app) { addOptions(app, line); };
    return shared::runProgram<SimConfig>(
        info, argc, argv, configSchema(),
        [&](const SimConfig& config, const std::string& path) {
            return run(config, path, line, argv[0]);
        },
        validateSimConfig);
}

}  // namespace tern::sim
