#include "edge_agent_process.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "net.h"
#include "process.h"

namespace tern::test {

EdgeAgentProcess::EdgeAgentProcess(MosquittoFixture& broker, EdgeAgentOptions options)
    : broker_(broker),
      options_(std::move(options)),
      dir_("tern-edge-agent"),
      config_(dir_.path() / "edge.toml"),
      log_(dir_.path() / "edge.log"),
      status_port_(freeTcpPort()) {
    writeConfig();
}

EdgeAgentProcess::~EdgeAgentProcess() {
    if (running()) kill();
}

void EdgeAgentProcess::writeConfig() { rewriteConfig(options_.extraToml); }

void EdgeAgentProcess::rewriteConfig(const std::string& extraToml) {
    const std::string cn =
        options_.certificateCn.empty() ? options_.gatewayId : options_.certificateCn;
    const auto ca = options_.caFile.value_or(broker_.caFile());
    std::ostringstream toml;
    toml << "[log]\nlevel = \"" << options_.logLevel << "\"\n\n";
    for (int i = 0; i < options_.sensors; ++i) {
        toml << "[[sensor]]\nname = \"s" << i << "\"\nunit = \"Cel\"\nkind = \"temperature\"\n"
             << "source = \"simulated\"\ninterval = \"" << options_.sampleInterval.count()
             << "ms\"\n[sensor.simulated]\nmodel = \"sine\"\nbase = 20.0\namplitude = 5.0\n"
             << "period = \"1m\"\nnoise = 0.1\nresolution = 0.01\nseed = " << (i + 1) << "\n\n";
    }
    toml << "[batch]\nmax_age = \"" << options_.batchMaxAge.count() << "ms\"\n\n"
         << "[store]\npath = \"" << storePath().string() << "\"\nmax_disk_bytes = \""
         << options_.storeMaxDiskBytes << "\"\n\n"
         << "[uplink]\nbroker = \"" << broker_.uri() << "\"\ngateway_id = \"" << options_.gatewayId
         << "\"\nca_file = \"" << ca.string() << "\"\ncert_file = \""
         << broker_.clientCert(cn).string() << "\"\nkey_file = \"" << broker_.clientKey(cn).string()
         << "\"\nbacklog_rate = \"" << options_.backlogRate
         << "\"\ninflight_window = " << options_.inflightWindow
         << "\nreconnect_min = \"200ms\"\nreconnect_max = \"" << options_.reconnectMax
         << "\"\nreceipt_timeout = \"" << options_.receiptTimeout
         << "\"\nkeepalive = \"5s\"\nconnect_timeout = \"3s\"\n\n"
         << "[agent]\ntick_interval = \"" << options_.tickInterval << "\"\nclock_sync = \""
         << options_.clockSync << "\"\nstatus_listen = \"127.0.0.1:" << status_port_ << "\"\n\n"
         << extraToml << "\n";
    std::ofstream(config_) << toml.str();
}

bool EdgeAgentProcess::start(bool waitUntilRunning) {
    if (running()) throw std::logic_error("tern-edge already running");
    { std::ofstream(log_, std::ios::app) << "--- start\n"; }
    const auto offset = log().size();
    pid_ = spawnProcess({TERN_EDGE_BINARY, "--config", config_.string()}, log_);
    if (!waitUntilRunning) return true;
    // Until then its signal handlers may not be installed: a SIGTERM would kill it outright.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        if (log().find(" running: ", offset) != std::string::npos) return true;
        if (waitForExit(pid_, std::chrono::milliseconds(20))) {
            pid_ = -1;
            return false;
        }
    }
    return false;
}

void EdgeAgentProcess::signal(int number) {
    if (running()) ::kill(pid_, number);
}

int EdgeAgentProcess::stop(std::chrono::milliseconds timeout) {
    return terminateProcess(pid_, timeout);
}

void EdgeAgentProcess::kill() { killProcess(pid_); }

std::optional<int> EdgeAgentProcess::waitExit(std::chrono::milliseconds timeout) {
    if (!running()) return std::nullopt;
    const auto status = waitForExit(pid_, timeout);
    if (!status) return std::nullopt;
    pid_ = -1;
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::string EdgeAgentProcess::log() const { return readFile(log_); }

std::map<std::uint64_t, std::uint32_t> EdgeAgentProcess::storedTelemetry() const {
    static const std::regex line(R"(stored telemetry epoch=(\d+) seq=(\d+) readings=(\d+))");
    std::map<std::uint64_t, std::uint32_t> out;
    const auto text = log();
    for (auto it = std::sregex_iterator(text.begin(), text.end(), line);
         it != std::sregex_iterator(); ++it) {
        out[std::stoull((*it)[2].str())] = static_cast<std::uint32_t>(std::stoul((*it)[3].str()));
    }
    return out;
}

bool EdgeAgentProcess::waitForLog(const std::string& text,
                                  std::chrono::milliseconds timeout) const {
    return waitForFileText(log_, text, timeout);
}

}  // namespace tern::test
