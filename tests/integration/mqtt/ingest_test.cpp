// The real tern-ingest daemon against a real mosquitto (TLS, client certificates, the deploy
// ACL), with real tern-edge agents as publishers, and crafted payloads through mosquitto_pub.

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "edge_agent_process.h"
#include "ingest_process.h"
#include "mosquitto_fixture.h"
#include "process.h"
#include "receipt_subscriber.h"
#include "tern/schema/batch_generated.h"
#include "tern/shared/codec.h"
#include "tern/shared/topics.h"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr auto kTimeout = 30s;

// Telemetry rows still in an agent's store (not yet receipted).
std::size_t unreceiptedTelemetry(const std::filesystem::path& store) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(store.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return SIZE_MAX;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* stmt = nullptr;
    std::size_t rows = SIZE_MAX;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE lane = 1", -1, &stmt,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        rows = static_cast<std::size_t>(sqlite3_column_int64(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return predicate();
}

json getJson(const IngestProcess& ingest, const std::string& path) {
    auto response = ingest.get(path);
    if (!response || response->first != 200) return json();
    return json::parse(response->second, nullptr, false);
}

// Every raw reading of one sensor, (time, value), over all time.
std::map<std::int64_t, double> rawSeries(const IngestProcess& ingest, const std::string& gateway,
                                         const std::string& sensor) {
    std::map<std::int64_t, double> points;
    const auto body = getJson(ingest, "/api/v1/series?gateway=" + gateway + "&sensor=" + sensor +
                                          "&from=0&to=4102444800000&step=0");
    if (!body.is_object()) return points;
    for (const auto& p : body["points"]) points[p["t"].get<std::int64_t>()] = p["v"].get<double>();
    return points;
}

std::uint64_t metric(const IngestProcess& ingest, const std::string& series) {
    auto response = ingest.get("/metrics");
    if (!response) return 0;
    const auto& text = response->second;
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::stoull(text.substr(at + series.size() + 2));
}

class IngestTest : public ::testing::Test {
protected:
    MosquittoFixture broker_{MosquittoOptions{{"gw-1", "gw-2", "gw-3", "gw-bad", "tern-ingest"}}};

    // Publishes payload as `cn` with mosquitto_pub (QoS 1, MQTT 5, TLS with cn's certificate).
    void publishAs(const std::string& cn, const std::string& kind, const shared::Bytes& payload) {
        const auto file = broker_.dir() / ("payload-" + std::to_string(published_++));
        std::ofstream(file, std::ios::binary)
            .write(reinterpret_cast<const char*>(payload.data()),
                   static_cast<std::streamsize>(payload.size()));
        const auto status = runProcess({"/usr/bin/mosquitto_pub",
                                        "-h",
                                        "127.0.0.1",
                                        "-p",
                                        std::to_string(broker_.port()),
                                        "--cafile",
                                        broker_.caFile().string(),
                                        "--cert",
                                        broker_.clientCert(cn).string(),
                                        "--key",
                                        broker_.clientKey(cn).string(),
                                        "-V",
                                        "mqttv5",
                                        "-q",
                                        "1",
                                        "-i",
                                        cn + "-pub",
                                        "-t",
                                        "tern/v1/gw/" + cn + "/" + kind,
                                        "-f",
                                        file.string()},
                                       broker_.dir() / "mosquitto_pub.log");
        ASSERT_EQ(status, 0) << readTail(broker_.dir() / "mosquitto_pub.log");
    }

    int published_ = 0;
};

// A valid batch of `gateway` with `readings` readings of sensor 0, one per millisecond from
// base_ms, values cycling through a few decimals (so it compresses well).
shared::TelemetryBatch makeBatch(const std::string& gateway, std::uint64_t seq,
                                 std::int64_t base_ms, std::size_t readings = 10) {
    shared::TelemetryBatch batch;
    batch.gateway_id = gateway;
    batch.sequence = {1, seq};
    batch.sent_at_ms = base_ms;
    batch.clock_synced = true;
    for (std::size_t i = 0; i < readings; ++i) {
        batch.readings.push_back({0, base_ms + static_cast<std::int64_t>(i),
                                  20.0 + 0.25 * static_cast<double>(i % 4), shared::Quality::Good});
    }
    return batch;
}

shared::Bytes encoded(const shared::TelemetryBatch& batch) {
    auto bytes = shared::encodeBatch(batch);
    EXPECT_TRUE(bytes) << bytes.error().message();
    return bytes ? bytes.value() : shared::Bytes{};
}

// A batch built by hand, past the encoder's checks: one series of three raw doubles.
shared::Bytes handBuiltBatch(const std::string& gateway, std::uint64_t seq, std::int64_t base_ms,
                             std::vector<double> values, std::uint16_t schema_version = 1) {
    flatbuffers::FlatBufferBuilder builder;
    const wire::Sequence sequence(1, seq);
    const std::vector<std::uint16_t> sensors{0};
    const std::vector<std::uint32_t> counts{static_cast<std::uint32_t>(values.size())};
    const std::vector<std::int8_t> exponents{-128};
    // First offset 0 (stored as 1 + zigzag(0)), then +1000 ms, then delta-of-delta 0.
    const std::vector<std::uint8_t> times{0x01, 0xD0, 0x0F, 0x00};
    const auto root =
        wire::CreateBatch(builder, schema_version, builder.CreateString(gateway), &sequence,
                          base_ms, base_ms, true, builder.CreateVector(sensors),
                          builder.CreateVector(counts), builder.CreateVector(exponents),
                          builder.CreateVector(times), 0, builder.CreateVector(values), 0);
    builder.Finish(root, wire::BatchIdentifier());
    return shared::Bytes(builder.GetBufferPointer(),
                         builder.GetBufferPointer() + builder.GetSize());
}

std::string rejectionOf(const shared::Bytes& payload) {
    auto decoded = shared::decodeBatch(payload);
    return decoded ? std::string("decodes") : decoded.error().code;
}

TEST_F(IngestTest, EndToEndTheSeriesApiReturnsExactlyWhatWasSent) {
    IngestProcess ingest(broker_);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    // Sees every message the agent publishes (a plain subscription next to the ingest's shared
    // one), without receipting.
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    EdgeAgentProcess agent(broker_, {.gatewayId = "gw-1",
                                     .sensors = 4,
                                     .sampleInterval = 100ms,
                                     .batchMaxAge = 500ms,
                                     .logLevel = "info"});
    ASSERT_TRUE(agent.start()) << agent.log();
    std::this_thread::sleep_for(4s);
    ASSERT_EQ(agent.stop(), 0) << agent.log();

    // What was sent: the first delivery of each batch the observer saw.
    std::map<std::string, std::map<std::int64_t, double>> sent;
    std::set<std::uint64_t> seqs;
    for (const auto& message : observer.messages("gw-1")) {
        const auto* batch = message.batch();
        if (batch == nullptr || !seqs.insert(message.sequence.seq).second) continue;
        for (const auto& r : batch->readings)
            sent["s" + std::to_string(r.sensor)][r.time_ms] = r.value;
    }
    ASSERT_EQ(sent.size(), 4u);
    std::size_t sent_readings = 0;
    for (const auto& [sensor, points] : sent) sent_readings += points.size();
    ASSERT_GT(sent_readings, 100u);

    ASSERT_TRUE(eventually(
        [&] {
            std::size_t stored = 0;
            for (const auto& [sensor, points] : sent)
                stored += rawSeries(ingest, "gw-1", sensor).size();
            return stored >= sent_readings;
        },
        kTimeout))
        << ingest.log();
    for (const auto& [sensor, points] : sent) {
        EXPECT_EQ(rawSeries(ingest, "gw-1", sensor), points) << sensor;
    }

    // The fleet view: the death will made it offline; it counted what it received.
    ASSERT_TRUE(eventually(
        [&] { return getJson(ingest, "/api/v1/gateways/gw-1")["online"] == false; }, kTimeout));
    const auto gateway = getJson(ingest, "/api/v1/gateways/gw-1");
    EXPECT_EQ(gateway["has_status"], true);
    EXPECT_EQ(gateway["sensors"].size(), 4u);
    EXPECT_EQ(gateway["received"]["readings"].get<std::size_t>(), sent_readings);
    EXPECT_FALSE(gateway["clock_skew_ms"].is_null());
    EXPECT_EQ(metric(ingest, "tern_ingest_spooled_readings_total"), sent_readings);
    EXPECT_EQ(getJson(ingest, "/api/v1/quarantine")["entries"].size(), 0u);

    // A rollup over the same data: one point per minute, counting every reading.
    const auto first = sent["s0"].begin()->first;
    const auto last = sent["s0"].rbegin()->first;
    const auto minutes =
        getJson(ingest, "/api/v1/series?gateway=gw-1&sensor=s0&from=" + std::to_string(first) +
                            "&to=" + std::to_string(last + 1) + "&step=1m");
    ASSERT_TRUE(minutes.is_object());
    EXPECT_EQ(minutes["tier"], "1m");
    std::size_t counted = 0;
    for (const auto& p : minutes["points"]) counted += p["count"].get<std::size_t>();
    EXPECT_EQ(counted, sent["s0"].size());

    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

TEST_F(IngestTest, KillNineMidStreamLosesNothingAndStoresEachReadingOnce) {
    IngestProcess ingest(broker_);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    std::vector<std::unique_ptr<EdgeAgentProcess>> agents;
    for (const char* id : {"gw-1", "gw-2", "gw-3"}) {
        agents.push_back(std::make_unique<EdgeAgentProcess>(
            broker_, EdgeAgentOptions{.gatewayId = id,
                                      .sensors = 20,
                                      .sampleInterval = 20ms,  // 1,000 readings/s per gateway
                                      .batchMaxAge = 200ms,
                                      .receiptTimeout = "3s"}));
        ASSERT_TRUE(agents.back()->start()) << agents.back()->log();
    }
    std::mt19937 rng(std::random_device{}());
    std::this_thread::sleep_for(std::chrono::milliseconds(2000 + rng() % 2000));
    ingest.kill();
    std::this_thread::sleep_for(1s);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    std::this_thread::sleep_for(3s);

    // Stop producing, then let each agent drain what it still holds.
    for (auto& agent : agents) {
        ASSERT_EQ(agent->stop(), 0) << agent->log();
        agent->options().sampleInterval = 1h;
        agent->rewriteConfig("");
        ASSERT_TRUE(agent->start()) << agent->log();
    }
    for (auto& agent : agents) {
        ASSERT_TRUE(eventually([&] { return unreceiptedTelemetry(agent->storePath()) == 0; }, 60s))
            << agent->options().gatewayId << " still holds unreceipted telemetry\n"
            << ingest.log();
    }
    for (auto& agent : agents) {
        const auto id = agent->options().gatewayId;
        std::size_t produced = 0;
        for (const auto& [seq, readings] : agent->storedTelemetry()) produced += readings;
        ASSERT_GT(produced, 1000u) << id;
        std::size_t stored = 0;
        ASSERT_TRUE(eventually(
            [&] {
                stored = 0;
                for (int s = 0; s < 20; ++s)
                    stored += rawSeries(ingest, id, "s" + std::to_string(s)).size();
                return stored >= produced;
            },
            kTimeout));
        EXPECT_EQ(stored, produced) << id;
    }
    EXPECT_GT(metric(ingest, "tern_ingest_spool_appended_total{kind=\"telemetry\"}"), 0u);
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

TEST_F(IngestTest, BadInputIsQuarantinedWithItsReasonAndGoodTrafficFlows) {
    IngestProcess ingest(broker_);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    EdgeAgentProcess agent(broker_, {.gatewayId = "gw-1",
                                     .sensors = 2,
                                     .sampleInterval = 100ms,
                                     .batchMaxAge = 300ms,
                                     .logLevel = "info"});
    ASSERT_TRUE(agent.start()) << agent.log();

    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    const auto good = encoded(makeBatch("gw-bad", 1, now));
    std::map<std::string, std::uint64_t> expected;  // reason -> count

    publishAs("gw-bad", "telemetry", good);

    auto truncated = encoded(makeBatch("gw-bad", 2, now + 100));
    truncated.resize(truncated.size() / 2);
    expected[rejectionOf(truncated)] += 1;
    publishAs("gw-bad", "telemetry", truncated);

    // Bit flips that the codec must catch (a flip inside a value may still decode: skip those).
    auto pristine = encoded(makeBatch("gw-bad", 3, now + 200));
    int flips = 0;
    for (std::size_t bit = 0; bit < pristine.size() * 8 && flips < 5; bit += 37) {
        auto flipped = pristine;
        flipped[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
        const auto reason = rejectionOf(flipped);
        if (reason == "decodes") continue;
        expected[reason] += 1;
        publishAs("gw-bad", "telemetry", flipped);
        flips += 1;
    }
    ASSERT_EQ(flips, 5);

    // A receipt where telemetry belongs: the wrong file identifier.
    auto receipt = shared::encodeReceipt(shared::Receipt{"gw-bad", 1, 5, {}, now});
    ASSERT_TRUE(receipt);
    expected["wrong_identifier"] += 1;
    publishAs("gw-bad", "telemetry", receipt.value());

    // Another gateway's id inside the payload: the topic (the certificate) wins.
    expected["gateway_mismatch"] += 1;
    publishAs("gw-bad", "telemetry", encoded(makeBatch("gw-other", 4, now + 300)));

    // NaN and Inf, smuggled past the encoder.
    expected["non_finite_value"] += 2;
    publishAs("gw-bad", "telemetry", handBuiltBatch("gw-bad", 5, now, {1.0, std::nan(""), 2.0}));
    publishAs("gw-bad", "telemetry", handBuiltBatch("gw-bad", 6, now, {1.0, HUGE_VAL, 2.0}));

    // Fifty years ahead.
    const std::int64_t fifty_years = 50LL * 365 * 24 * 3600 * 1000;
    expected["timestamp_out_of_window"] += 1;
    publishAs("gw-bad", "telemetry", encoded(makeBatch("gw-bad", 7, now + fifty_years)));

    // A newer schema version is read (writers only append fields) and stored.
    publishAs("gw-bad", "telemetry", handBuiltBatch("gw-bad", 8, now + 5000, {7.5, 8.5, 9.5}, 7));

    // 10^5 readings in one batch: the largest the codec accepts, stored whole.
    publishAs("gw-bad", "telemetry", encoded(makeBatch("gw-bad", 9, now + 10'000, 100'000)));

    // The same (epoch, seq) again, and an old one replayed after newer ones.
    publishAs("gw-bad", "telemetry", good);
    publishAs("gw-bad", "telemetry", encoded(makeBatch("gw-bad", 9, now + 10'000, 100'000)));
    publishAs("gw-bad", "telemetry", good);

    std::uint64_t quarantined = 0;
    for (const auto& [reason, count] : expected) quarantined += count;
    ASSERT_TRUE(eventually(
        [&] {
            return getJson(ingest, "/api/v1/quarantine?limit=1000")["entries"].size() ==
                       quarantined &&
                   metric(ingest, "tern_ingest_spool_duplicates_total") >= 3;
        },
        kTimeout))
        << getJson(ingest, "/api/v1/quarantine").dump(2) << ingest.log();
    const auto body = getJson(ingest, "/api/v1/quarantine?limit=1000");
    std::map<std::string, std::uint64_t> counts;
    for (const auto& [reason, count] : body["counts"].items())
        counts[reason] = count.get<std::uint64_t>();
    EXPECT_EQ(counts, expected);
    for (const auto& entry : body["entries"]) {
        EXPECT_EQ(entry["gateway_id"], "gw-bad");
        EXPECT_EQ(entry["topic"], "tern/v1/gw/gw-bad/telemetry");
        EXPECT_FALSE(entry["detail"].get<std::string>().empty());
    }
    EXPECT_EQ(metric(ingest, "tern_ingest_spool_duplicates_total"), 3u);

    // What was good is stored: seq 1, the newer-schema batch and the 10^5 readings, once each.
    const auto gateway = getJson(ingest, "/api/v1/gateways/gw-bad");
    EXPECT_EQ(gateway["received"]["batches"], 3);
    EXPECT_EQ(gateway["received"]["readings"], 10 + 3 + 100'000);
    EXPECT_EQ(gateway["received"]["rejected"], quarantined);

    // The daemon stayed up, and the real gateway's traffic in between all arrived.
    ASSERT_EQ(agent.stop(), 0) << agent.log();
    ASSERT_TRUE(ingest.running());
    std::set<std::uint64_t> seqs;
    std::size_t sent = 0;
    for (const auto& message : observer.messages("gw-1")) {
        if (message.batch() != nullptr && seqs.insert(message.sequence.seq).second) {
            sent += message.batch()->readings.size();
        }
    }
    ASSERT_GT(sent, 0u);
    EXPECT_TRUE(eventually(
        [&] { return getJson(ingest, "/api/v1/gateways/gw-1")["received"]["readings"] == sent; },
        kTimeout));
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

// A sink that is off lets the spool fill: above the high-water mark the ingest raises an alert,
// at the limit it stops receipting and the gateway keeps its data; once the sink is back
// (SIGHUP), the spool drains, receipts resume and every reading arrives.
TEST_F(IngestTest, AFullSpoolStopsReceiptingAndLosesNothing) {
    IngestProcess ingest(broker_, {.extraToml = "[sinks]\ntsdb = false\n"});
    // The spool's limits, set through the config the fixture writes.
    std::string config;
    {
        std::ifstream in(ingest.configFile());
        config.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const auto with_spool_limits = [&](const std::string& sinks) {
        std::string text = config;
        text.replace(text.find("[spool]\n"), 8,
                     "[spool]\nmax_bytes = \"64KiB\"\nhigh_water = 0.25\n");
        text.replace(text.find("[sinks]\ntsdb = false\n"), 20, sinks);
        std::ofstream(ingest.configFile()) << text;
    };
    with_spool_limits("[sinks]\ntsdb = false\n");
    ASSERT_TRUE(ingest.start()) << ingest.log();
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    EdgeAgentProcess agent(broker_, {.gatewayId = "gw-1",
                                     .sensors = 50,
                                     .sampleInterval = 10ms,  // 5,000 readings/s
                                     .batchMaxAge = 200ms,
                                     .receiptTimeout = "3s"});
    ASSERT_TRUE(agent.start()) << agent.log();

    ASSERT_TRUE(eventually(
        [&] { return metric(ingest, "tern_ingest_spool_full_rejections_total") > 0; }, 60s))
        << ingest.log();
    EXPECT_TRUE(ingest.waitForLog("spool above its high-water mark", 1s));
    // Not receipted, so still with the gateway.
    EXPECT_GT(unreceiptedTelemetry(agent.storePath()), 0u);

    // The sink comes back; stop producing so the drain has an end.
    with_spool_limits("[sinks]\ntsdb = true\n");
    ingest.signal(SIGHUP);
    ASSERT_TRUE(ingest.waitForLog("sinks restarted (tsdb on)", kTimeout)) << ingest.log();
    ASSERT_EQ(agent.stop(), 0) << agent.log();
    agent.options().sampleInterval = 1h;
    agent.rewriteConfig("");
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(eventually([&] { return unreceiptedTelemetry(agent.storePath()) == 0; }, 90s))
        << ingest.log();

    std::size_t produced = 0;
    for (const auto& [seq, readings] : agent.storedTelemetry()) produced += readings;
    std::size_t stored = 0;
    EXPECT_TRUE(eventually(
        [&] {
            stored = 0;
            for (int s = 0; s < 50; ++s)
                stored += rawSeries(ingest, "gw-1", "s" + std::to_string(s)).size();
            return stored >= produced;
        },
        kTimeout));
    EXPECT_EQ(stored, produced);
    if (stored != produced) {
        std::set<std::tuple<int, std::int64_t>> keys;
        std::set<std::uint64_t> seqs;
        std::size_t readings = 0;
        for (const auto& m : observer.messages("gw-1")) {
            if (m.batch() == nullptr || !seqs.insert(m.sequence.seq).second) continue;
            for (const auto& r : m.batch()->readings) {
                keys.insert({r.sensor, r.time_ms});
                readings += 1;
            }
        }
        ADD_FAILURE() << "observer: " << seqs.size() << " batches, " << readings << " readings, "
                      << keys.size() << " distinct (sensor, time)";
    }

    // The alert the ingest raised while no store was configured was kept and stored since.
    bool high_water_alert = false;
    const auto alerts = getJson(ingest, "/api/v1/alerts?gateway=tern-ingest");
    for (const auto& alert : alerts["alerts"]) {
        high_water_alert |= alert["rule"] == "spool-high-water" && alert["state"] == "firing";
    }
    EXPECT_TRUE(high_water_alert) << getJson(ingest, "/api/v1/alerts").dump();
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

}  // namespace
}  // namespace tern::test
