#include "mosquitto_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "net.h"
#include "process.h"

#ifndef TERN_SOURCE_DIR
#error "TERN_SOURCE_DIR must be defined (the repository root, for deploy/mosquitto/)"
#endif

namespace tern::test {
namespace {

constexpr const char* kMosquitto = "/usr/sbin/mosquitto";
constexpr int kPortAttempts = 5;

std::filesystem::path deployDir() {
    return std::filesystem::path(TERN_SOURCE_DIR) / "deploy" / "mosquitto";
}

std::string currentUser() {
    const passwd* pw = ::getpwuid(::geteuid());
    if (pw == nullptr) throw std::runtime_error("no passwd entry for the current user");
    return pw->pw_name;
}

// The first "@NAME@" (NAME in [A-Z_]+) left in a filled template, if any.
std::optional<std::string> firstPlaceholder(const std::string& text) {
    for (auto start = text.find('@'); start != std::string::npos;
         start = text.find('@', start + 1)) {
        auto end = start + 1;
        while (end < text.size() && ((text[end] >= 'A' && text[end] <= 'Z') || text[end] == '_')) {
            ++end;
        }
        if (end > start + 1 && end < text.size() && text[end] == '@') {
            return text.substr(start, end - start + 1);
        }
    }
    return std::nullopt;
}

}  // namespace

MosquittoFixture::MosquittoFixture(MosquittoOptions options)
    : options_(std::move(options)),
      dir_("tern-mosquitto"),
      pki_(dir_.path() / "pki"),
      config_(dir_.path() / "mosquitto.conf"),
      dataDir_(dir_.path() / "data"),
      log_(dir_.path() / "mosquitto.log") {
    for (const auto& cn : options_.clientCns) pki_.client(cn);
    std::filesystem::create_directories(dataDir_);
    for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
        port_ = freeTcpPort();
        writeConfig();
        if (startOnce()) return;
    }
    throw std::runtime_error("mosquitto: no free port after retries\n" + log());
}

MosquittoFixture::~MosquittoFixture() {
    try {
        stop();
    } catch (...) {
        // A destructor must not throw; stop() escalates to SIGKILL so the child is gone anyway.
    }
}

std::string MosquittoFixture::uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }

std::string MosquittoFixture::log() const { return readTail(log_, 8192); }

void MosquittoFixture::writeConfig() {
    const auto template_file = deployDir() / "mosquitto.conf.in";
    if (!std::filesystem::is_regular_file(template_file)) {
        throw std::runtime_error("cannot read " + template_file.string());
    }
    std::string text = readFile(template_file);
    const std::vector<std::pair<std::string, std::string>> values{
        {"@USER@", currentUser()},
        {"@BIND_ADDRESS@", "127.0.0.1"},
        {"@PORT@", std::to_string(port_)},
        {"@CA_FILE@", pki_.caCert().string()},
        {"@CRL_FILE@", pki_.crl().string()},
        {"@CERT_FILE@", pki_.server().cert.string()},
        {"@KEY_FILE@", pki_.server().key.string()},
        {"@DATA_DIR@", dataDir_.string() + "/"},
        {"@ACL_FILE@", (deployDir() / "acl").string()},
        {"@AUTOSAVE_INTERVAL@", std::to_string(options_.autosaveIntervalSeconds)},
    };
    // Placeholders are filled in settings only; the template's comments mention them by name.
    std::istringstream in(text);
    std::string filled;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() != '#') {
            for (const auto& [key, value] : values) {
                for (auto pos = line.find(key); pos != std::string::npos;
                     pos = line.find(key, pos + value.size())) {
                    line.replace(pos, key.size(), value);
                }
            }
            if (const auto left = firstPlaceholder(line)) {
                throw std::runtime_error("mosquitto.conf.in: unfilled placeholder " + *left);
            }
        }
        filled += line + "\n";
    }
    std::ofstream out(config_, std::ios::trunc);
    out << filled;
    if (!out.flush()) throw std::runtime_error("cannot write " + config_.string());
}

bool MosquittoFixture::startOnce() {
    const auto logStart = std::filesystem::exists(log_) ? std::filesystem::file_size(log_) : 0;
    {
        std::ofstream mark(log_, std::ios::app);
        mark << "---- fixture: starting mosquitto on port " << port_ << " ----\n";
    }
    pid_ = spawnProcess({kMosquitto, "-c", config_.string()}, log_);
    const auto deadline = std::chrono::steady_clock::now() + options_.startTimeout;
    for (;;) {
        if (auto status = waitForExit(pid_, std::chrono::milliseconds(0))) {
            pid_ = -1;
            std::string text = readFile(log_);
            text = text.substr(std::min<std::size_t>(logStart, text.size()));
            if (text.find("Address already in use") != std::string::npos) return false;
            throw std::runtime_error("mosquitto exited during startup (status " +
                                     std::to_string(*status) + ")\n" + log());
        }
        // Mosquitto opens its listener only after loading the TLS context, so an accepted TCP
        // connection means TLS handshakes will be served.
        if (acceptsTcp(port_)) return true;
        if (std::chrono::steady_clock::now() >= deadline) {
            stop();
            throw std::runtime_error("mosquitto did not accept connections in time\n" + log());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval, bounded
    }
}

void MosquittoFixture::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitForExit(pid_, std::chrono::seconds(10));
    pid_ = -1;
}

void MosquittoFixture::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (!waitForExit(pid_, std::chrono::seconds(10))) {
        ::kill(pid_, SIGKILL);
        waitForExit(pid_, std::chrono::seconds(10));
    }
    pid_ = -1;
}

void MosquittoFixture::restart() {
    stop();
    // Same port: mosquitto sets SO_REUSEADDR, so connections in TIME_WAIT do not block the bind.
    if (!startOnce()) {
        throw std::runtime_error("mosquitto: port " + std::to_string(port_) +
                                 " was taken before restart\n" + log());
    }
}

bool MosquittoFixture::waitForSnapshot(std::filesystem::file_time_type after,
                                       std::chrono::milliseconds timeout) {
    // mosquitto writes mosquitto.db.new and renames it, so a newer mtime means a complete file.
    // File mtimes come from a coarse clock and may lag `after` by a few ms; the next snapshot
    // (autosave_interval later) is then the one that counts.
    const auto db = dataDir_ / "mosquitto.db";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::error_code ec;
        const auto mtime = std::filesystem::last_write_time(db, ec);
        if (!ec && mtime > after) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, bounded
    }
}

}  // namespace tern::test
