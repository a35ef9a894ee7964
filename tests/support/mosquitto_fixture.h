#pragma once

// A real mosquitto broker for integration tests, configured from deploy/mosquitto/ (the same
// config the demo uses) with a test PKI generated at construction.
//
// Owns one mosquitto child process listening with TLS on 127.0.0.1:<free port>. The broker is
// always stopped by the destructor. Everything (PKI, config, persistence, log) lives in a temp
// dir removed on destruction; read log() for diagnosis before that.
//
// Not thread-safe: use from the test's thread.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "test_pki.h"

namespace tern::test {

struct MosquittoOptions {
    // Client identities (certificate CNs) generated up front; more via clientCert()/clientKey().
    std::vector<std::string> clientCns;
    // Seconds between persistence snapshots (autosave_interval).
    int autosaveIntervalSeconds = 1;
    // How long start()/restart() wait for the broker to accept connections.
    std::chrono::milliseconds startTimeout = std::chrono::seconds(10);
};

class MosquittoFixture {
public:
    // Generates the PKI, starts the broker and waits until it accepts connections.
    // Throws std::runtime_error (with the broker log) if it does not start in time.
    explicit MosquittoFixture(MosquittoOptions options = {});
    ~MosquittoFixture();
    MosquittoFixture(const MosquittoFixture&) = delete;
    MosquittoFixture& operator=(const MosquittoFixture&) = delete;

    std::uint16_t port() const { return port_; }
    std::string host() const { return "127.0.0.1"; }
    std::string uri() const;  // "ssl://127.0.0.1:<port>"
    const std::filesystem::path& caFile() const { return pki_.caCert(); }
    std::filesystem::path clientCert(const std::string& cn) { return pki_.client(cn).cert; }
    std::filesystem::path clientKey(const std::string& cn) { return pki_.client(cn).key; }
    TestPki& pki() { return pki_; }

    const std::filesystem::path& dir() const { return dir_.path(); }
    const std::filesystem::path& configFile() const { return config_; }
    const std::filesystem::path& dataDir() const { return dataDir_; }
    const std::filesystem::path& logFile() const { return log_; }
    std::string log() const;  // tail of the broker log, for failure messages

    bool running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    // SIGKILL, as a crash would: no final persistence snapshot.
    void kill();
    // SIGTERM and wait (then SIGKILL if it does not exit within 10 s); writes a snapshot.
    void stop();
    // Stops if running, then starts again on the same port with the same persistence dir.
    void restart();

    // Waits until mosquitto has written a persistence snapshot whose mtime is after `after`
    // (take it with std::filesystem::file_time_type::clock::now() once the data is acknowledged).
    bool waitForSnapshot(std::filesystem::file_time_type after, std::chrono::milliseconds timeout);

private:
    void writeConfig();
    // Starts the broker on port_; returns false if the port was taken (the caller picks another).
    bool startOnce();

    MosquittoOptions options_;
    TempDir dir_;
    TestPki pki_;
    std::filesystem::path config_;
    std::filesystem::path dataDir_;
    std::filesystem::path log_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace tern::test
