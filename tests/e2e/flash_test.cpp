// End to end for a board: the rpi4 package (scripts/build-board, cross-built for aarch64) is
// flashed with scripts/flash --root into a Debian arm64 root, and the flashed tern-edge runs from
// that root under qemu-aarch64, as the unit's user, against the local TLS mosquitto and a real
// tern-ingest. Its sensor is the board profile's own sysfs channel (the SoC's cpu_thermal hwmon),
// given a value through a sysfs tree in the root; the readings must arrive in the embedded store.
//
// The first run in a fresh tree cross-builds tern-edge (minutes); scripts/test builds it before.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "eventually.h"
#include "ingest_process.h"
#include "mosquitto_fixture.h"
#include "process.h"
#include "temp_dir.h"

namespace tern::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kGateway = "gw-flash-1";

fs::path sourceDir() { return TERN_SOURCE_DIR; }

// Runs one of the repository's scripts; (exit status, output).
std::pair<int, std::string> runScript(const std::vector<std::string>& argv, const fs::path& log,
                                      std::chrono::minutes timeout = 2min) {
    fs::remove(log);
    const int status = runProcess(argv, log, timeout);
    return {status, readFile(log)};
}

std::string lastLine(const std::string& text) {
    std::istringstream in(text);
    std::string line, last;
    while (std::getline(in, line)) {
        if (!line.empty()) last = line;
    }
    return last;
}

void writeText(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
}

// An id's field in the root's /etc/passwd ("" if absent).
std::string passwdField(const fs::path& root, const std::string& user, int field) {
    std::ifstream in(root / "etc/passwd");
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> fields;
        std::stringstream row(line);
        for (std::string f; std::getline(row, f, ':');) fields.push_back(f);
        if (fields.size() > static_cast<std::size_t>(field) && fields[0] == user)
            return fields[field];
    }
    return "";
}

// The raw values the ingest stored for one sensor of the gateway, oldest first.
std::vector<double> storedValues(const IngestProcess& ingest, const std::string& sensor) {
    std::vector<double> values;
    const auto response = ingest.get(std::string("/api/v1/series?gateway=") + kGateway +
                                     "&sensor=" + sensor + "&from=0&to=4102444800000&step=0");
    if (!response || response->first != 200) return values;
    const auto body = nlohmann::json::parse(response->second, nullptr, false);
    if (!body.is_object() || !body.contains("points")) return values;
    for (const auto& point : body["points"]) values.push_back(point["v"].get<double>());
    return values;
}

class FlashTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "running the flashed root under chroot needs root";
        broker_ = std::make_unique<MosquittoFixture>(
            MosquittoOptions{.clientCns = {kGateway, "gw-flash-2", "tern-ingest"}});
        ingest_ = std::make_unique<IngestProcess>(*broker_);
        ASSERT_TRUE(ingest_->start()) << ingest_->log();

        // scripts/pki's layout, from the fixture's CA: the operator's PKI directory.
        pki_ = dir_.path() / "pki";
        fs::create_directories(pki_ / "clients");
        fs::copy_file(broker_->caFile(), pki_ / "ca.crt");
        fs::copy_file(broker_->pki().crl(), pki_ / "crl.pem");
        for (const std::string id : {kGateway, "gw-flash-2"}) {
            fs::copy_file(broker_->clientCert(id), pki_ / "clients" / (id + ".crt"));
            fs::copy_file(broker_->clientKey(id), pki_ / "clients" / (id + ".key"));
        }
    }

    void TearDown() override {
        if (agent_ > 0) terminateProcess(agent_, 15s);
        if (HasFailure()) {
            std::cerr << "flashed agent log:\n"
                      << readTail(dir_.path() / "agent.log", 8192) << "\n";
            if (ingest_) std::cerr << "ingest log:\n" << ingest_->log() << "\n";
        }
    }

    std::vector<std::string> flash(const std::string& id, const fs::path& root) const {
        return {(sourceDir() / "scripts/flash").string(),
                "rpi4",
                "--gateway-id",
                id,
                "--broker",
                broker_->uri(),
                "--root",
                root.string(),
                "--pki",
                pki_.string()};
    }

    TempDir dir_{"tern-flash"};
    fs::path pki_;
    std::unique_ptr<MosquittoFixture> broker_;
    std::unique_ptr<IngestProcess> ingest_;
    pid_t agent_ = -1;
};

TEST_F(FlashTest, AFlashedRpi4RootRunsUnderQemuAndItsReadingsArrive) {
    const fs::path log = dir_.path() / "script.log";
    const auto [built, build_output] =
        runScript({(sourceDir() / "scripts/build-board").string(), "rpi4"}, log, 20min);
    ASSERT_EQ(built, 0) << build_output;
    const fs::path package = lastLine(build_output);
    ASSERT_TRUE(fs::is_regular_file(package)) << build_output;
    const auto [made, sysroot_output] =
        runScript({(sourceDir() / "scripts/sysroot").string(), "rpi4"}, log);
    ASSERT_EQ(made, 0) << sysroot_output;

    // The target: a Debian arm64 root with the agent's runtime libraries and nothing of Tern's.
    const fs::path root = dir_.path() / "root";
    ASSERT_EQ(runProcess({"/bin/cp", "-a", lastLine(sysroot_output), root.string()}, log), 0)
        << readFile(log);

    // An id that is not the certificate's CN is refused before anything is written.
    fs::copy_file(pki_ / "clients" / (std::string(kGateway) + ".crt"),
                  pki_ / "clients/gw-impostor.crt");
    fs::copy_file(pki_ / "clients" / (std::string(kGateway) + ".key"),
                  pki_ / "clients/gw-impostor.key");
    const auto [refused, refusal] = runScript(flash("gw-impostor", root), log);
    EXPECT_NE(refused, 0);
    EXPECT_NE(refusal.find("is for 'gw-flash-1'"), std::string::npos) << refusal;
    EXPECT_FALSE(fs::exists(root / "usr/bin/tern-edge"));

    const auto [flashed, flash_output] = runScript(flash(kGateway, root), log);
    ASSERT_EQ(flashed, 0) << flash_output;
    EXPECT_EQ(flash_output.find("PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(readFile(root / "etc/tern/gateway.key"),
              readFile(pki_ / "clients" / (std::string(kGateway) + ".key")));
    EXPECT_EQ(fs::status(root / "etc/tern/gateway.key").permissions(),
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    EXPECT_TRUE(
        fs::is_symlink(root / "etc/systemd/system/multi-user.target.wants/tern-edge.service"));
    const std::string uid = passwdField(root, "tern", 2), gid = passwdField(root, "tern", 3);
    ASSERT_FALSE(uid.empty()) << readFile(root / "etc/passwd");

    // What this machine may already use: the status endpoint's and the line listener's fixed
    // ports. An operator's edit like this one survives a reflash (scripts/flash keeps edge.toml).
    {
        std::string config = readFile(root / "etc/tern/edge.toml");
        for (const auto& [from, to] :
             {std::pair<std::string, std::string>{"udp_port = 8094", "udp_port = 0"},
              {"status_listen = \"127.0.0.1:9464\"", "status_listen = \"\""}}) {
            const auto at = config.find(from);
            ASSERT_NE(at, std::string::npos) << from;
            config.replace(at, from.size(), to);
        }
        writeText(root / "etc/tern/edge.toml", config);
    }
    // The Raspberry Pi's SoC temperature as its kernel shows it: millidegrees in hwmon.
    const fs::path hwmon = root / "sys/class/hwmon/hwmon0";
    writeText(hwmon / "name", "cpu_thermal\n");
    writeText(hwmon / "temp1_input", "47500\n");

    fs::copy_file("/usr/bin/qemu-aarch64-static", root / "usr/bin/qemu-aarch64-static");
    agent_ = spawnProcess(
        {"/usr/sbin/chroot", "--userspec=" + uid + ":" + gid, root.string(),
         "/usr/bin/qemu-aarch64-static", "/usr/bin/tern-edge", "--config", "/etc/tern/edge.toml"},
        dir_.path() / "agent.log");

    EXPECT_TRUE(
        eventually([&] { return !storedValues(*ingest_, "cpu_temperature").empty(); }, 90s, 500ms));
    EXPECT_EQ(storedValues(*ingest_, "cpu_temperature"), std::vector<double>{47.5});

    // A change beyond the board config's deadband (0.5 °C) is read at the next poll and sent.
    writeText(hwmon / "temp1_input", "52000\n");
    EXPECT_TRUE(eventually([&] { return storedValues(*ingest_, "cpu_temperature").size() >= 2; },
                           90s, 500ms));
    EXPECT_EQ(storedValues(*ingest_, "cpu_temperature"), (std::vector<double>{47.5, 52.0}));

    const auto gateway = ingest_->get(std::string("/api/v1/gateways/") + kGateway);
    ASSERT_TRUE(gateway.has_value());
    EXPECT_EQ(gateway->first, 200) << gateway->second;
    EXPECT_EQ(terminateProcess(agent_, 15s), 0) << "SIGTERM must stop the agent cleanly";
}

}  // namespace
}  // namespace tern::test
