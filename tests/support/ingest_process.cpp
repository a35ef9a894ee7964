#include "ingest_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "net.h"
#include "process.h"

namespace tern::test {

IngestProcess::IngestProcess(MosquittoFixture& broker, IngestOptions options)
    : broker_(broker),
      options_(std::move(options)),
      dir_("tern-ingest"),
      config_(dir_.path() / "ingest.toml"),
      log_(dir_.path() / "ingest.log"),
      api_port_(freeTcpPort()) {
    rewriteConfig(options_.extraToml);
}

IngestProcess::~IngestProcess() {
    if (running()) kill();
}

void IngestProcess::rewriteConfig(const std::string& extraToml) {
    std::string token_line;
    if (!options_.token.empty()) {
        const auto token_file = dir_.path() / "api.token";
        std::ofstream(token_file) << options_.token << "\n";
        token_line = "token_file = \"" + token_file.string() + "\"\n";
    }
    std::ostringstream toml;
    toml << "[log]\nlevel = \"" << options_.logLevel << "\"\n\n"
         << "[mqtt]\nbroker = \"" << broker_.uri() << "\"\nclient_id = \"" << options_.clientId
         << "\"\nca_file = \"" << broker_.caFile().string() << "\"\ncert_file = \""
         << broker_.clientCert("tern-ingest").string() << "\"\nkey_file = \""
         << broker_.clientKey("tern-ingest").string() << "\"\nshare_group = \""
         << options_.shareGroup << "\"\nreceipt_interval = \"" << options_.receiptInterval
         << "\"\nreconnect_min = \"1s\"\nreconnect_max = \"2s\"\nkeepalive = \"5s\"\n"
         << "connect_timeout = \"3s\"\n"
         << (options_.receiptBatches > 0
                 ? "receipt_batches = " + std::to_string(options_.receiptBatches) + "\n"
                 : std::string())
         << "\n"
         << "[spool]\npath = \"" << spoolPath().string() << "\"\n\n"
         << "[tsdb]\npath = \"" << tsdbPath().string() << "\"\n\n"
         << "[api]\nlisten = \"127.0.0.1:" << api_port_ << "\"\n"
         << token_line << "\n"
         << extraToml << "\n";
    std::ofstream(config_) << toml.str();
}

bool IngestProcess::start() {
    if (running()) throw std::logic_error("tern-ingest already running");
    { std::ofstream(log_, std::ios::app) << "--- start\n"; }
    pid_ = spawnProcess({TERN_INGEST_BINARY, "--config", config_.string()}, log_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto ready = httpGet(api_port_, "/readyz"); ready && ready->first == 200) return true;
        if (waitForExit(pid_, std::chrono::milliseconds(50))) {
            pid_ = -1;
            return false;
        }
    }
    return false;
}

void IngestProcess::signal(int number) {
    if (running()) ::kill(pid_, number);
}

int IngestProcess::stop(std::chrono::milliseconds timeout) {
    return terminateProcess(pid_, timeout);
}

void IngestProcess::kill() { killProcess(pid_); }

std::optional<std::pair<int, std::string>> IngestProcess::get(const std::string& path,
                                                              bool authorize) const {
    std::vector<std::pair<std::string, std::string>> headers;
    if (authorize && !options_.token.empty()) {
        headers.emplace_back("Authorization", "Bearer " + options_.token);
    }
    return httpRequest(api_port_, "GET", path, {}, headers);
}

std::optional<std::pair<int, std::string>> IngestProcess::post(const std::string& path,
                                                               const std::string& body,
                                                               bool authorize) const {
    std::vector<std::pair<std::string, std::string>> headers{{"Content-Type", "application/json"}};
    if (authorize && !options_.token.empty()) {
        headers.emplace_back("Authorization", "Bearer " + options_.token);
    }
    return httpRequest(api_port_, "POST", path, body, headers);
}

std::string IngestProcess::log() const { return readFile(log_); }

bool IngestProcess::waitForLog(const std::string& text, std::chrono::milliseconds timeout) const {
    return waitForFileText(log_, text, timeout);
}

}  // namespace tern::test
