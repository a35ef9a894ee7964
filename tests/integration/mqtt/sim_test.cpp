// tern-sim end to end: a small fleet of virtual gateways (the real edge pipeline, each with its
// own certificate) through a real mosquitto into a real tern-ingest, with a timeline of network
// outages, reboots, a broker outage, skewed clocks and boards booting in 1970; then --verify
// reconciles every gateway against the ingest's API.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "ingest_process.h"
#include "mosquitto_fixture.h"
#include "process.h"
#include "temp_dir.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kGateways = 12;

std::string scenario() {
    return R"(
[log]
level = "info"

[fleet]
gateways = 12
id_prefix = "e2e-gw-"
seed = 7
duration = "40s"
start_spread = "3s"
gateways_per_worker = 5
store = "disk"
drain_timeout = "60s"

[broker]
reconnect_min = "500ms"
reconnect_max = "2s"
receipt_timeout = "10s"

[gateway.batch]
max_age = "1s"

[[gateway.rule]]
id = "vibration-shock"
sensor = "vibration"
type = "rate_of_change"
max_rate = 0.2

[[fault]]
kind = "spike"
sensor = "vibration"
at = "8s"
magnitude = 0.5
count = 4

[[fault]]
kind = "network_outage"
at = "10s"
duration = "8s"
count = 4

[[fault]]
kind = "reboot"
at = "14s"
duration = "5s"
count = 3

[[fault]]
kind = "clock_skew"
skew = "45s"
count = 2

[[fault]]
kind = "clock_skew"
skew = "20s"
behind = true
count = 2

[[fault]]
kind = "boot_1970"
duration = "10s"
count = 2

[[fault]]
kind = "broker_outage"
at = "24s"
duration = "5s"
)";
}

TEST(SimulatorTest, ASmallFleetThroughOutagesRebootsAndWrongClocksReconcilesWithTheIngest) {
    MosquittoFixture broker(MosquittoOptions{.clientCns = {"tern-ingest"}});
    IngestProcess ingest(broker, IngestOptions{.receiptInterval = "100ms"});
    ASSERT_TRUE(ingest.start()) << ingest.log();
    TempDir dir("tern-sim-e2e");
    const auto scenario_file = dir.path() / "scenario.toml";
    std::ofstream(scenario_file) << scenario();
    const auto report_file = dir.path() / "report.json";
    const auto output = dir.path() / "sim.log";

    const int status = runProcess(
        {TERN_SIM_BINARY, "--config", scenario_file.string(), "--broker", broker.uri(), "--pki-dir",
         broker.caFile().parent_path().string(), "--state-dir", (dir.path() / "state").string(),
         "--broker-pid", std::to_string(broker.pid()), "--report", report_file.string(), "--verify",
         "http://127.0.0.1:" + std::to_string(ingest.apiPort())},
        output, 170s);
    const auto log = readTail(output, 6000);
    ASSERT_EQ(status, 0) << log << "\ningest:\n" << ingest.log();
    EXPECT_NE(log.find("broker outage: stopping broker process"), std::string::npos) << log;

    const auto report = json::parse(readFile(report_file));
    ASSERT_TRUE(report.contains("verify")) << report.dump(2);
    const auto& verify = report.at("verify");
    EXPECT_TRUE(verify.at("ok").get<bool>()) << verify.dump(2);
    // Four gateways got a spike while running (none is rebooting at 8 s): each raised its alert.
    EXPECT_EQ(verify.at("anomalies_expected").get<int>(), 4) << verify.dump(2);
    EXPECT_EQ(verify.at("anomalies_alerted").get<int>(), 4) << verify.dump(2);

    const auto& gateways = report.at("gateways");
    ASSERT_EQ(gateways.size(), static_cast<std::size_t>(kGateways));
    int rebooted = 0;
    std::uint64_t stored = 0;
    for (const auto& gw : gateways) {
        // Four sensors at 1 Hz for about 40 s, less a reboot's 5 s.
        EXPECT_GT(gw.at("produced").get<std::uint64_t>(), 100u) << gw.dump();
        EXPECT_EQ(gw.at("backlog").get<std::uint64_t>(), 0u) << gw.dump();
        EXPECT_EQ(gw.at("evicted").get<std::uint64_t>(), 0u) << gw.dump();
        if (gw.at("boots").get<int>() == 2) rebooted += 1;
        stored += gw.at("produced").get<std::uint64_t>();
    }
    EXPECT_EQ(rebooted, 3);
    EXPECT_EQ(verify.at("stored_readings").get<std::uint64_t>(), stored);
    // Outages and reboots mean more sessions than gateways.
    EXPECT_GE(report.at("totals").at("connects").get<int>(), kGateways + 4 + 3);
}

}  // namespace
}  // namespace tern::test
