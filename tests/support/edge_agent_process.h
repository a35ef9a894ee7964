#pragma once

// The real tern-edge binary as a child process, for integration tests: writes its config into a
// temp dir (simulated sensors, the broker fixture's PKI), starts and signals it, and reads back
// what it logged and what its store holds.
//
// Not thread-safe: use from the test's thread.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "mosquitto_fixture.h"
#include "net.h"
#include "temp_dir.h"

namespace tern::test {

struct EdgeAgentOptions {
    std::string gatewayId = "gw-1";
    // The certificate's CN; differs from gatewayId only to test the identity check.
    std::string certificateCn{};
    int sensors = 10;
    std::chrono::milliseconds sampleInterval{100};  // per sensor
    std::chrono::milliseconds batchMaxAge{1000};
    std::string backlogRate = "0";  // [uplink] backlog_rate
    int inflightWindow = 16;        // [uplink] inflight_window
    std::string reconnectMax = "5s";
    std::string receiptTimeout = "30s";
    std::string storeMaxDiskBytes = "0";
    std::string clockSync = "always";
    std::string tickInterval = "100ms";
    std::string logLevel = "debug";
    std::optional<std::filesystem::path> caFile{};  // default: the broker's CA
    std::string extraToml{};                        // appended to the config
};

class EdgeAgentProcess {
public:
    // Writes the config; the store lives in dir()/edge.db and survives restarts.
    EdgeAgentProcess(MosquittoFixture& broker, EdgeAgentOptions options = {});
    ~EdgeAgentProcess();  // SIGKILL if still running
    EdgeAgentProcess(const EdgeAgentProcess&) = delete;
    EdgeAgentProcess& operator=(const EdgeAgentProcess&) = delete;

    // Starts it and (by default) waits until it logs that it is running; false if it exited
    // first or did not get there within 20 s.
    bool start(bool waitUntilRunning = true);
    bool running() const { return pid_ > 0; }
    // The running agent's process id (for /proc), -1 when it is not running.
    pid_t pid() const { return pid_; }
    // Sends a signal without waiting.
    void signal(int number);
    // SIGTERM and wait for exit (bounded); returns the exit status (128 + n if killed by signal
    // n, as a shell reports it), -1 if it did not exit in time.
    int stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
    // SIGKILL and reap.
    void kill();
    // Waits for the process to exit on its own; its status, or nullopt on timeout.
    std::optional<int> waitExit(std::chrono::milliseconds timeout);

    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path storePath() const { return dir_.path() / "edge.db"; }
    const std::filesystem::path& configFile() const { return config_; }
    const std::filesystem::path& logFile() const { return log_; }
    std::string log() const;  // the whole log so far
    std::uint16_t statusPort() const { return status_port_; }
    // Rewrites the config file (for SIGHUP tests): the same settings plus extra TOML.
    void rewriteConfig(const std::string& extraToml);
    // Changes the settings for the next start (the store stays): call rewriteConfig() after.
    EdgeAgentOptions& options() { return options_; }

    // seq -> readings of every "stored telemetry" line logged so far, across restarts.
    std::map<std::uint64_t, std::uint32_t> storedTelemetry() const;
    // Waits until the log contains `text`.
    bool waitForLog(const std::string& text, std::chrono::milliseconds timeout) const;

private:
    void writeConfig();

    MosquittoFixture& broker_;
    EdgeAgentOptions options_;
    TempDir dir_;
    std::filesystem::path config_;
    std::filesystem::path log_;
    std::uint16_t status_port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace tern::test
