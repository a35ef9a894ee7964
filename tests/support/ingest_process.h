#pragma once

// The real tern-ingest binary as a child process, for integration tests: writes its config into a
// temp dir (the broker fixture's PKI, the ACL's "tern-ingest" identity, spool and time-series
// store in the temp dir, the API on a free loopback port), starts, signals and kills it, and talks
// to its HTTP API.
//
// The spool and the store survive restarts (kill() then start() is a crash and a recovery).
// Not thread-safe: use from the test's thread.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "mosquitto_fixture.h"
#include "temp_dir.h"

namespace tern::test {

struct IngestOptions {
    std::string clientId = "tern-ingest-1";
    std::string shareGroup = "tern-ingest";
    std::string receiptInterval = "50ms";
    // [mqtt] receipt_batches; 0 leaves the daemon's default.
    int receiptBatches = 0;
    std::string logLevel = "info";
    std::string token{};      // "" requires none
    std::string extraToml{};  // appended to the config
};

class IngestProcess {
public:
    IngestProcess(MosquittoFixture& broker, IngestOptions options = {});
    ~IngestProcess();  // SIGKILL if still running
    IngestProcess(const IngestProcess&) = delete;
    IngestProcess& operator=(const IngestProcess&) = delete;

    // Starts it and waits (up to 30 s) until /readyz answers 200: subscribed, spool writable.
    // False if it exited or did not get ready in time (the log says why).
    bool start();
    bool running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    void signal(int number);
    // SIGTERM and wait; the exit status (128 + n if killed by signal n), -1 on timeout.
    int stop(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    void kill();

    std::uint16_t apiPort() const { return api_port_; }
    // (status, body) of a request to the API; nullopt if it did not answer. The token, if any, is
    // sent unless `authorize` is false.
    std::optional<std::pair<int, std::string>> get(const std::string& path,
                                                   bool authorize = true) const;
    std::optional<std::pair<int, std::string>> post(const std::string& path,
                                                    const std::string& body,
                                                    bool authorize = true) const;

    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path spoolPath() const { return dir_.path() / "spool.db"; }
    std::filesystem::path tsdbPath() const { return dir_.path() / "tsdb.db"; }
    const std::filesystem::path& configFile() const { return config_; }
    std::string log() const;
    bool waitForLog(const std::string& text, std::chrono::milliseconds timeout) const;
    // Rewrites the config with different extra TOML (for SIGHUP).
    void rewriteConfig(const std::string& extraToml);

private:
    MosquittoFixture& broker_;
    IngestOptions options_;
    TempDir dir_;
    std::filesystem::path config_;
    std::filesystem::path log_;
    std::uint16_t api_port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace tern::test
