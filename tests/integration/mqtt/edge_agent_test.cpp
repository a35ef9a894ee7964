// The real tern-edge daemon against a real mosquitto (TLS, client certificates, the deploy ACL),
// with a receipt-sending subscriber standing in for the ingest.

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "edge_agent_process.h"
#include "mosquitto_fixture.h"
#include "receipt_subscriber.h"
#include "temp_dir.h"
#include "test_pki.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 20s;

// Opens a store read-only: seqs of its telemetry rows, and PRAGMA integrity_check's verdict.
struct StoreContents {
    std::set<std::uint64_t> seqs;
    std::string integrity;
};

StoreContents readStore(const std::filesystem::path& path) {
    StoreContents out;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        out.integrity = std::string("cannot open: ") + sqlite3_errmsg(db);
        sqlite3_close(db);
        return out;
    }
    sqlite3_busy_timeout(db, 5000);  // the agent may be writing
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr);
    if (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
        out.integrity = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_prepare_v2(db, "SELECT seq FROM messages WHERE lane = 1", -1, &stmt, nullptr);
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
        out.seqs.insert(static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

std::set<std::uint64_t> receivedTelemetry(const ReceiptSubscriber& ingest,
                                          const std::string& gateway) {
    std::set<std::uint64_t> seqs;
    for (const auto& m : ingest.messages(gateway)) {
        if (m.batch() != nullptr) seqs.insert(m.sequence.seq);
    }
    return seqs;
}

bool includes(const std::set<std::uint64_t>& all,
              const std::map<std::uint64_t, std::uint32_t>& some) {
    return std::all_of(some.begin(), some.end(),
                       [&](const auto& entry) { return all.contains(entry.first); });
}

class EdgeAgentTest : public ::testing::Test {
protected:
    MosquittoFixture broker_{MosquittoOptions{{"gw-1", "gw-2", "tern-ingest"}}};
};

TEST_F(EdgeAgentTest, PublishesBirthAndBatchesAndDeletesOnlyOnReceipt) {
    ReceiptSubscriber ingest(broker_, ReceiptSubscriberOptions{.receipting = false});
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.batchMaxAge = 300ms});
    ASSERT_TRUE(agent.start()) << agent.log();

    ASSERT_TRUE(
        ingest.waitFor([&] { return receivedTelemetry(ingest, "gw-1").size() >= 5; }, kTimeout))
        << agent.log();
    const auto birth = ingest.latestStatus("gw-1");
    ASSERT_TRUE(birth);
    EXPECT_EQ(birth->kind, shared::StatusKind::Birth);
    ASSERT_EQ(birth->sensors.size(), 10u);
    EXPECT_EQ(birth->sensors[3].name, "s3");

    // PUBACKs came back for all of these, but no receipt: every one is still stored.
    ASSERT_EQ(agent.stop(), 0) << agent.log();
    const auto received = receivedTelemetry(ingest, "gw-1");

    const auto stored = readStore(agent.storePath());
    EXPECT_EQ(stored.integrity, "ok");
    for (auto seq : received) EXPECT_TRUE(stored.seqs.contains(seq)) << "seq " << seq;
    // SIGTERM sealed the open batch into the store and published the death status.
    EXPECT_TRUE(ingest.waitFor(
        [&] {
            auto last = ingest.latestStatus("gw-1");
            return last && last->kind == shared::StatusKind::Death;
        },
        kTimeout));

    // With receipts, the restarted agent sends its backlog and the store empties.
    ingest.setReceipting(true);
    ASSERT_TRUE(agent.start()) << agent.log();
    // Everything stored by the first run was received already; now its receipts delete it.
    const auto logged = agent.storedTelemetry();
    auto backlogLeft = [&] {
        const auto now_stored = readStore(agent.storePath());
        return std::any_of(logged.begin(), logged.end(), [&](const auto& entry) {
            return now_stored.seqs.contains(entry.first);
        });
    };
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (backlogLeft() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_FALSE(backlogLeft()) << "receipted batches are still stored";
    ASSERT_EQ(agent.stop(), 0);
    EXPECT_EQ(readStore(agent.storePath()).integrity, "ok");
    for (const auto& d : ingest.duplicates("gw-1")) EXPECT_TRUE(d.identicalPayloads);
}

TEST_F(EdgeAgentTest, ServesHealthAndMetricsOnLoopback) {
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(broker_);
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(
        ingest.waitFor([&] { return !receivedTelemetry(ingest, "gw-1").empty(); }, kTimeout))
        << agent.log();
    const auto health = httpGet(agent.statusPort(), "/healthz");
    ASSERT_TRUE(health) << agent.log();
    EXPECT_EQ(health->first, 200);
    EXPECT_NE(health->second.find("\"uplink_connected\":true"), std::string::npos)
        << health->second;
    const auto metrics = httpGet(agent.statusPort(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->first, 200);
    EXPECT_NE(metrics->second.find("tern_edge_uplink_connected 1"), std::string::npos);
    EXPECT_NE(metrics->second.find("tern_edge_store_stored_total{lane=\"telemetry\"}"),
              std::string::npos);
    const auto missing = httpGet(agent.statusPort(), "/nope");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->first, 404);
}

TEST_F(EdgeAgentTest, RefusesACertificateForAnotherGateway) {
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.gatewayId = "gw-2", .certificateCn = "gw-1"});
    agent.start(false);
    const auto status = agent.waitExit(kTimeout);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 1);
    EXPECT_NE(agent.log().find("is for 'gw-1', not gateway 'gw-2'"), std::string::npos)
        << agent.log();
}

TEST_F(EdgeAgentTest, RefusesABrokerSignedByAnUnknownCa) {
    TempDir other("tern-other-ca");
    TestPki stranger(other.path(), "Stranger CA");
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.caFile = stranger.caCert()});
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(agent.waitForLog("connect failed", kTimeout)) << agent.log();
    ASSERT_TRUE(agent.waitForLog("stored telemetry", kTimeout));
    EXPECT_TRUE(agent.running());
    EXPECT_TRUE(ingest.messages("gw-1").empty());
    const auto metrics = httpGet(agent.statusPort(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->second.find("tern_edge_uplink_connected 0"), std::string::npos);
    EXPECT_EQ(metrics->second.find("tern_edge_uplink_connects_total 1"), std::string::npos);
}

TEST_F(EdgeAgentTest, AnswersRebirthAndResendCommands) {
    ReceiptSubscriber ingest(broker_, ReceiptSubscriberOptions{.receipting = false});
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.batchMaxAge = 200ms});
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(
        ingest.waitFor([&] { return receivedTelemetry(ingest, "gw-1").size() >= 3; }, kTimeout))
        << agent.log();
    const auto births = [&] {
        std::size_t n = 0;
        for (const auto& s : ingest.statuses("gw-1"))
            n += s.status.kind == shared::StatusKind::Birth;
        return n;
    };
    const auto births_before = births();
    const auto epoch = ingest.messages("gw-1").front().sequence.epoch;

    shared::Command rebirth;
    rebirth.gateway_id = "gw-1";
    rebirth.command_id = 7;
    rebirth.name = "rebirth";
    ASSERT_TRUE(ingest.sendCommand(rebirth));
    ASSERT_TRUE(ingest.waitFor([&] { return births() > births_before; }, kTimeout));

    shared::Command resend;
    resend.gateway_id = "gw-1";
    resend.command_id = 8;
    resend.name = "resend";
    resend.epoch = epoch;
    resend.resend_ranges = {{1, 2}};
    ASSERT_TRUE(ingest.sendCommand(resend));
    ASSERT_TRUE(ingest.waitFor(
        [&] {
            for (const auto& d : ingest.duplicates("gw-1")) {
                if (d.sequence.seq == 2 && d.identicalPayloads) return true;
            }
            return false;
        },
        kTimeout));
    ASSERT_TRUE(ingest.waitFor(
        [&] {
            std::set<std::uint64_t> acked;
            for (const auto& a : ingest.commandAcks("gw-1")) {
                if (a.command_id == 7 && a.result == shared::CommandResult::Done) acked.insert(7);
                if (a.command_id == 8 && a.result == shared::CommandResult::Accepted)
                    acked.insert(8);
            }
            return acked.size() == 2;
        },
        kTimeout));

    shared::Command unknown = rebirth;
    unknown.command_id = 9;
    unknown.name = "selfdestruct";
    ASSERT_TRUE(ingest.sendCommand(unknown));
    ASSERT_TRUE(ingest.waitFor(
        [&] {
            for (const auto& a : ingest.commandAcks("gw-1")) {
                if (a.command_id == 9) return a.result == shared::CommandResult::Rejected;
            }
            return false;
        },
        kTimeout));
    const auto metrics = httpGet(agent.statusPort(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(
        metrics->second.find("tern_edge_uplink_commands_total{name=\"rebirth\",result=\"done\"} 1"),
        std::string::npos)
        << metrics->second;
    EXPECT_NE(metrics->second.find(
                  "tern_edge_uplink_commands_total{name=\"other\",result=\"rejected\"} 1"),
              std::string::npos);
}

TEST_F(EdgeAgentTest, SighupReloadsRulesAndKeepsRunning) {
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(broker_);
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(agent.waitForLog("running:", kTimeout)) << agent.log();
    agent.rewriteConfig(
        "[[rule]]\nid = \"hot\"\nsensor = \"s0\"\ntype = \"threshold\"\nabove = 1000.0\n");
    agent.signal(SIGHUP);
    ASSERT_TRUE(agent.waitForLog("SIGHUP: reloaded", kTimeout)) << agent.log();
    EXPECT_NE(agent.log().find("1 rules active"), std::string::npos);
    agent.rewriteConfig("[[rule]]\nid = \"broken\"\nsensor = \"nope\"\ntype = \"threshold\"\n");
    agent.signal(SIGHUP);
    ASSERT_TRUE(agent.waitForLog("not reloaded, the running config stays", kTimeout));
    EXPECT_TRUE(agent.running());
    EXPECT_EQ(agent.stop(), 0);
}

TEST_F(EdgeAgentTest, ATinyDiskEvictsOldestAndRaisesAnAlert) {
    ReceiptSubscriber ingest(broker_, ReceiptSubscriberOptions{.receipting = false});
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.sensors = 20,
                                                     .sampleInterval = 10ms,
                                                     .batchMaxAge = 100ms,
                                                     .storeMaxDiskBytes = "128KiB"});
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(ingest.waitFor(
        [&] {
            for (const auto& m : ingest.messages("gw-1")) {
                if (m.alert() != nullptr && m.alert()->rule == "store.disk_full") return true;
            }
            return false;
        },
        60s))
        << agent.log();
    EXPECT_TRUE(agent.running());
    const auto metrics = httpGet(agent.statusPort(), "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->second.find(
                  "tern_edge_store_evicted_total{lane=\"telemetry\",reason=\"disk_full\"}"),
              std::string::npos);
    EXPECT_EQ(agent.stop(), 0);
    EXPECT_EQ(readStore(agent.storePath()).integrity, "ok");
}

TEST_F(EdgeAgentTest, ACorruptStoreIsMovedAsideWithANewEpochAndAnAlert) {
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.batchMaxAge = 200ms});
    {
        std::ofstream garbage(agent.storePath(), std::ios::binary);
        for (int i = 0; i < 4096; ++i) garbage << "not a database ";
    }
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(ingest.waitFor(
        [&] {
            for (const auto& m : ingest.messages("gw-1")) {
                if (m.alert() != nullptr && m.alert()->rule == "store.recovered") return true;
            }
            return false;
        },
        kTimeout))
        << agent.log();
    bool moved_aside = false;
    for (const auto& entry : std::filesystem::directory_iterator(agent.dir())) {
        moved_aside =
            moved_aside || entry.path().filename().string().starts_with("edge.db.corrupt-");
    }
    EXPECT_TRUE(moved_aside);
    // The new file's epoch is above 1 (from the wall clock), so its seqs never collide.
    const auto messages = ingest.messages("gw-1");
    ASSERT_FALSE(messages.empty());
    EXPECT_GT(messages.front().sequence.epoch, 1u);
    EXPECT_EQ(agent.stop(), 0);
}

TEST_F(EdgeAgentTest, ReadingsFromAnUnsynchronisedClockAreFlagged) {
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.batchMaxAge = 200ms, .clockSync = "never"});
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(
        ingest.waitFor([&] { return receivedTelemetry(ingest, "gw-1").size() >= 2; }, kTimeout));
    for (const auto& m : ingest.messages("gw-1")) {
        ASSERT_NE(m.batch(), nullptr);
        EXPECT_FALSE(m.batch()->clock_synced) << "seq " << m.sequence.seq;
    }
    const auto birth = ingest.latestStatus("gw-1");
    ASSERT_TRUE(birth);
    EXPECT_FALSE(birth->clock_synced);
    EXPECT_EQ(agent.stop(), 0);
}

// The broker dies for 60 s while the agent goes on reading 100 values a second.
TEST_F(EdgeAgentTest, BrokerOutageOf60sLosesNothingAndSendsLiveDataFirst) {
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(broker_, EdgeAgentOptions{.backlogRate = "2KiB", .reconnectMax = "3s"});
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(
        ingest.waitFor([&] { return receivedTelemetry(ingest, "gw-1").size() >= 3; }, kTimeout))
        << agent.log();

    broker_.kill();
    std::this_thread::sleep_for(60s);
    const auto stored_during_outage = agent.storedTelemetry();
    const std::uint64_t last_backlog_seq = stored_during_outage.rbegin()->first;
    broker_.restart();

    // Everything logged as stored up to now arrives.
    const auto logged = agent.storedTelemetry();
    ASSERT_TRUE(
        ingest.waitFor([&] { return includes(receivedTelemetry(ingest, "gw-1"), logged); }, 60s))
        << agent.log();
    ASSERT_EQ(agent.stop(), 0);

    // Every reading arrived: each stored batch with its reading count, and duplicates are only
    // retransmissions of the same (epoch, seq) with the same bytes.
    std::map<std::uint64_t, std::size_t> readings;
    for (const auto& m : ingest.messages("gw-1")) {
        if (m.batch() != nullptr && !m.duplicate)
            readings[m.sequence.seq] = m.batch()->readings.size();
    }
    std::size_t total = 0;
    for (const auto& [seq, count] : logged) {
        ASSERT_TRUE(readings.contains(seq)) << "seq " << seq;
        EXPECT_EQ(readings[seq], count) << "seq " << seq;
        total += count;
    }
    EXPECT_GE(total, 6000u);  // 100 readings/s for more than 60 s
    for (const auto& d : ingest.duplicates("gw-1")) {
        EXPECT_TRUE(d.identicalPayloads) << "seq " << d.sequence.seq;
    }

    // Live first: a batch stored after the reconnect arrived before the backlog was drained.
    std::uint64_t first_live_arrival = UINT64_MAX;
    std::uint64_t last_backlog_arrival = 0;
    for (const auto& m : ingest.messages("gw-1")) {
        if (m.batch() == nullptr || m.duplicate) continue;
        if (m.sequence.seq > last_backlog_seq + 2) {
            first_live_arrival = std::min(first_live_arrival, m.arrival);
        } else if (m.sequence.seq > stored_during_outage.begin()->first) {
            last_backlog_arrival = std::max(last_backlog_arrival, m.arrival);
        }
    }
    EXPECT_LT(first_live_arrival, last_backlog_arrival)
        << "live data waited behind the whole backlog";
}

// SIGKILL at random points while batches are being committed: the store stays intact and every
// batch the agent logged as committed is still stored or was delivered.
TEST_F(EdgeAgentTest, HundredSigkillsLoseNoCommittedBatch) {
    ReceiptSubscriber ingest(broker_);
    EdgeAgentProcess agent(
        broker_,
        EdgeAgentOptions{
            .sensors = 20, .sampleInterval = 10ms, .batchMaxAge = 100ms, .tickInterval = "20ms"});
    std::mt19937 rng(20261121);
    std::uniform_int_distribution<int> delay_ms(50, 500);
    for (int round = 0; round < 100; ++round) {
        agent.start(false);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        agent.kill();
        if (!std::filesystem::exists(agent.storePath())) continue;  // killed before creating it
        const auto stored = readStore(agent.storePath());
        ASSERT_EQ(stored.integrity, "ok") << "round " << round;
    }
    const auto logged = agent.storedTelemetry();
    ASSERT_GT(logged.size(), 100u) << agent.log();
    const auto stored = readStore(agent.storePath());
    const auto received = receivedTelemetry(ingest, "gw-1");
    for (const auto& [seq, readings] : logged) {
        EXPECT_TRUE(stored.seqs.contains(seq) || received.contains(seq)) << "seq " << seq;
    }
}

}  // namespace
}  // namespace tern::test
