// The real tern-ingest daemon against a real mosquitto (TLS, client certificates, the deploy
// ACL), with real tern-edge agents as publishers, and crafted payloads through mosquitto_pub.

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "edge_agent_process.h"
#include "eventually.h"
#include "ingest_process.h"
#include "mosquitto_fixture.h"
#include "net.h"
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

// One integer a query returns from a SQLite file opened read-only; nullopt if it cannot.
std::optional<std::int64_t> sqliteInteger(const std::filesystem::path& file,
                                          const std::string& sql) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return std::nullopt;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* stmt = nullptr;
    std::optional<std::int64_t> value;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}

// Telemetry rows still in an agent's store (not yet receipted); SIZE_MAX if unreadable.
std::size_t unreceiptedTelemetry(const std::filesystem::path& store) {
    const auto rows = sqliteInteger(store, "SELECT count(*) FROM messages WHERE lane = 1");
    return rows ? static_cast<std::size_t>(*rows) : SIZE_MAX;
}

// Readings by (sensor name, time): what a gateway sent, or what an ingest stored.
using Readings = std::map<std::pair<std::string, std::int64_t>, double>;

// Every raw reading an ingest's store holds for the gateway's sensors s0 .. s<sensors - 1>.
Readings storedReadings(const IngestProcess& ingest, const std::string& gateway, int sensors) {
    Readings out;
    for (int s = 0; s < sensors; ++s) {
        const auto sensor = "s" + std::to_string(s);
        for (const auto& [time, value] : rawSeries(ingest, gateway, sensor))
            out[{sensor, time}] = value;
    }
    return out;
}

// What the gateway sent: the readings of the first delivery of each (epoch, seq) an observer saw.
Readings sentReadings(const ReceiptSubscriber& observer, const std::string& gateway) {
    Readings out;
    std::set<std::pair<std::uint64_t, std::uint64_t>> seqs;
    for (const auto& message : observer.messages(gateway)) {
        const auto* batch = message.batch();
        if (batch == nullptr ||
            !seqs.insert({message.sequence.epoch, message.sequence.seq}).second) {
            continue;
        }
        for (const auto& r : batch->readings)
            out[{"s" + std::to_string(r.sensor), r.time_ms}] = r.value;
    }
    return out;
}

// The seqs of the gateway's batches that carry any of these readings, for failure messages.
std::string seqsHolding(const ReceiptSubscriber& observer, const std::string& gateway,
                        const std::vector<std::pair<std::string, std::int64_t>>& keys) {
    const std::set<std::pair<std::string, std::int64_t>> wanted(keys.begin(), keys.end());
    std::set<std::uint64_t> seqs;
    for (const auto& message : observer.messages(gateway)) {
        const auto* batch = message.batch();
        if (batch == nullptr) continue;
        for (const auto& r : batch->readings) {
            if (wanted.contains({"s" + std::to_string(r.sensor), r.time_ms})) {
                seqs.insert(message.sequence.seq);
            }
        }
    }
    std::string out;
    for (auto seq : seqs) out += (out.empty() ? "" : ",") + std::to_string(seq);
    return out;
}

// "seq x deliveries" of every seq the gateway sent more than once, for failure messages.
std::string resentSeqs(const ReceiptSubscriber& observer, const std::string& gateway) {
    std::string out;
    for (const auto& d : observer.duplicates(gateway)) {
        out += (out.empty() ? "" : ",") + std::to_string(d.sequence.seq) + "x" +
               std::to_string(d.deliveries);
    }
    return out;
}

// Readings in every batch the agent logged as stored, across its restarts.
std::size_t producedReadings(const EdgeAgentProcess& agent) {
    std::size_t produced = 0;
    for (const auto& [seq, readings] : agent.storedTelemetry()) produced += readings;
    return produced;
}

// Stops each agent, starts it again with sampling all but off (one reading an hour), so that it
// only sends what it still holds, and waits until none holds unreceipted telemetry. The sampling
// timers fire once at start, so each agent first seals one more batch (after its batch max_age):
// that one is waited for too, or it could be produced after the caller has counted.
void drainAgents(const std::vector<std::unique_ptr<EdgeAgentProcess>>& agents,
                 const std::function<std::string()>& diagnostics) {
    std::vector<std::size_t> restarted_at;
    for (const auto& agent : agents) {
        ASSERT_EQ(agent->stop(), 0) << agent->log();
        agent->options().sampleInterval = 1h;
        agent->rewriteConfig("");
        restarted_at.push_back(agent->log().size());
        ASSERT_TRUE(agent->start()) << agent->log();
    }
    for (std::size_t i = 0; i < agents.size(); ++i) {
        const auto& agent = agents[i];
        ASSERT_TRUE(eventually(
            [&] {
                return agent->log().find("stored telemetry", restarted_at[i]) !=
                           std::string::npos &&
                       unreceiptedTelemetry(agent->storePath()) == 0;
            },
            60s))
            << agent->options().gatewayId << " still holds unreceipted telemetry\n"
            << diagnostics();
    }
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
    drainAgents(agents, [&] { return ingest.log(); });
    if (HasFatalFailure()) return;
    for (auto& agent : agents) {
        const auto id = agent->options().gatewayId;
        const std::size_t produced = producedReadings(*agent);
        ASSERT_GT(produced, 1000u) << id;
        std::size_t stored = 0;
        EXPECT_TRUE(eventually(
            [&] {
                stored = storedReadings(ingest, id, 20).size();
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
    std::vector<std::unique_ptr<EdgeAgentProcess>> agents;
    agents.push_back(std::make_unique<EdgeAgentProcess>(
        broker_, EdgeAgentOptions{.gatewayId = "gw-1",
                                  .sensors = 50,
                                  .sampleInterval = 10ms,  // 5,000 readings/s
                                  .batchMaxAge = 200ms,
                                  .receiptTimeout = "3s"}));
    EdgeAgentProcess& agent = *agents.front();
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
    drainAgents(agents, [&] { return ingest.log(); });
    if (HasFatalFailure()) return;

    // Every reading, value for value, once; and as many as the agent logged as produced.
    const auto sent = sentReadings(observer, "gw-1");
    EXPECT_EQ(sent.size(), producedReadings(agent));
    Readings stored;
    EXPECT_TRUE(eventually(
        [&] {
            stored = storedReadings(ingest, "gw-1", 50);
            return stored.size() >= sent.size();
        },
        kTimeout));
    EXPECT_EQ(stored, sent);

    // The alert the ingest raised while no store was configured was kept and stored since.
    bool high_water_alert = false;
    const auto alerts = getJson(ingest, "/api/v1/alerts?gateway=tern-ingest");
    for (const auto& alert : alerts["alerts"]) {
        high_water_alert |= alert["rule"] == "spool-high-water" && alert["state"] == "firing";
    }
    EXPECT_TRUE(high_water_alert) << getJson(ingest, "/api/v1/alerts").dump();
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

TEST_F(IngestTest, TwoIngestProcessesSplitTheLoadAndStoreEverythingOnce) {
    // One share group, two sessions: the broker hands each message to one of them. Each has its
    // own spool and store (so its own dedupe state).
    IngestProcess first(broker_, {.clientId = "tern-ingest-1"});
    IngestProcess second(broker_, {.clientId = "tern-ingest-2"});
    ASSERT_TRUE(first.start()) << first.log();
    ASSERT_TRUE(second.start()) << second.log();
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    constexpr int kSensors = 10;
    std::vector<std::unique_ptr<EdgeAgentProcess>> agents;
    for (const char* id : {"gw-1", "gw-2", "gw-3"}) {
        agents.push_back(std::make_unique<EdgeAgentProcess>(
            broker_, EdgeAgentOptions{.gatewayId = id,
                                      .sensors = kSensors,
                                      .sampleInterval = 50ms,  // 200 readings/s per gateway
                                      // 5 batches/s: a few dozen per epoch, far below the
                                      // spool's 1,024 gap ranges even when every other seq of
                                      // a gateway goes to the other process.
                                      .batchMaxAge = 200ms,
                                      .receiptTimeout = "3s"}));
        ASSERT_TRUE(agents.back()->start()) << agents.back()->log();
    }
    std::this_thread::sleep_for(4s);
    ASSERT_NO_FATAL_FAILURE(
        drainAgents(agents, [&] { return first.log() + "\n---- second\n" + second.log(); }));

    std::size_t in_first = 0;
    std::size_t in_second = 0;
    for (const auto& agent : agents) {
        const auto id = agent->options().gatewayId;
        SCOPED_TRACE(id);
        const auto produced = producedReadings(*agent);
        ASSERT_GT(produced, 500u);
        Readings a, b;
        ASSERT_TRUE(eventually(
            [&] {
                a = storedReadings(first, id, kSensors);
                b = storedReadings(second, id, kSensors);
                return a.size() + b.size() >= produced;
            },
            kTimeout))
            << a.size() << " + " << b.size() << " of " << produced;
        in_first += a.size();
        in_second += b.size();

        std::vector<std::pair<std::string, std::int64_t>> in_both;
        Readings all = a;
        for (const auto& [key, value] : b) {
            if (!all.emplace(key, value).second) in_both.push_back(key);
        }
        EXPECT_TRUE(in_both.empty())
            << in_both.size() << " readings stored by both processes, in seqs "
            << seqsHolding(observer, id, in_both)
            << "; seqs the gateway sent more than once: " << resentSeqs(observer, id);
        EXPECT_EQ(all.size(), produced);
        EXPECT_EQ(a.size() + b.size(), produced);
        EXPECT_EQ(all, sentReadings(observer, id));
    }
    EXPECT_GT(in_first, 0u) << "the first process stored nothing";
    EXPECT_GT(in_second, 0u) << "the second process stored nothing";
    EXPECT_EQ(metric(first, "tern_ingest_spooled_readings_total") +
                  metric(second, "tern_ingest_spooled_readings_total"),
              in_first + in_second);
    EXPECT_EQ(first.stop(), 0) << first.log();
    EXPECT_EQ(second.stop(), 0) << second.log();
}

TEST_F(IngestTest, SigtermDrainsAndExitsCleanly) {
    IngestProcess ingest(broker_);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    std::vector<std::unique_ptr<EdgeAgentProcess>> agents;
    agents.push_back(
        std::make_unique<EdgeAgentProcess>(broker_, EdgeAgentOptions{.gatewayId = "gw-1",
                                                                     .sensors = 10,
                                                                     .sampleInterval = 20ms,
                                                                     .batchMaxAge = 200ms,
                                                                     .receiptTimeout = "3s"}));
    auto& agent = *agents.front();
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(eventually([&] { return !rawSeries(ingest, "gw-1", "s0").empty(); }, kTimeout))
        << ingest.log();
    std::this_thread::sleep_for(1500ms);

    // Mid-stream: the agent keeps publishing through the stop and while the ingest is away.
    const auto stopping = std::chrono::steady_clock::now();
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
    const auto stop_took = std::chrono::steady_clock::now() - stopping;
    EXPECT_LT(stop_took, 10s) << "the stop took longer than [sinks] drain_timeout";
    const auto log = ingest.log();
    EXPECT_NE(log.find("signal 15: stopping"), std::string::npos) << log;
    EXPECT_NE(log.find("stopped; "), std::string::npos) << log;
    EXPECT_EQ(log.find(" error tern-ingest: "), std::string::npos) << log;
    // The sink drained the spool before the exit: its cursor is at the newest record.
    const auto newest =
        sqliteInteger(ingest.spoolPath(), "SELECT value - 1 FROM meta WHERE key = 'next_offset'");
    const auto cursor =
        sqliteInteger(ingest.spoolPath(), "SELECT offset FROM cursors WHERE sink = 'tsdb'");
    ASSERT_TRUE(newest && cursor);
    EXPECT_GT(*newest, 0);
    EXPECT_EQ(*cursor, *newest);

    std::this_thread::sleep_for(1s);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    ASSERT_NO_FATAL_FAILURE(drainAgents(agents, [&] { return ingest.log(); }));

    const auto produced = producedReadings(agent);
    ASSERT_GT(produced, 1000u);
    Readings stored;
    ASSERT_TRUE(eventually(
        [&] {
            stored = storedReadings(ingest, "gw-1", 10);
            return stored.size() >= produced;
        },
        kTimeout))
        << stored.size() << " of " << produced << "\n"
        << ingest.log();
    EXPECT_EQ(stored.size(), produced);
    EXPECT_EQ(stored, sentReadings(observer, "gw-1"));
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

TEST_F(IngestTest, SighupReloadsSinks) {
    IngestProcess ingest(broker_);
    ASSERT_TRUE(ingest.start()) << ingest.log();
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    constexpr int kSensors = 4;
    std::vector<std::unique_ptr<EdgeAgentProcess>> agents;
    agents.push_back(
        std::make_unique<EdgeAgentProcess>(broker_, EdgeAgentOptions{.gatewayId = "gw-1",
                                                                     .sensors = kSensors,
                                                                     .sampleInterval = 50ms,
                                                                     .batchMaxAge = 200ms,
                                                                     .receiptTimeout = "3s"}));
    auto& agent = *agents.front();
    ASSERT_TRUE(agent.start()) << agent.log();
    const auto spool = [&] { return getJson(ingest, "/api/v1/spool"); };
    const auto cursorSinks = [&] {
        std::set<std::string> sinks;
        const auto stats = spool();
        for (const auto& c : stats["cursors"]) sinks.insert(c["sink"].get<std::string>());
        return sinks;
    };
    ASSERT_TRUE(
        eventually([&] { return storedReadings(ingest, "gw-1", kSensors).size() >= 50; }, kTimeout))
        << ingest.log();
    EXPECT_EQ(cursorSinks(), std::set<std::string>{"tsdb"}) << spool().dump();

    // Off: the worker stops and its cursor goes; the spool keeps taking (and receipting) data.
    ingest.rewriteConfig("[sinks]\ntsdb = false\n");
    ingest.signal(SIGHUP);
    ASSERT_TRUE(ingest.waitForLog("sinks restarted (tsdb off)", kTimeout)) << ingest.log();
    EXPECT_EQ(cursorSinks(), std::set<std::string>{});
    const auto stored_when_off = storedReadings(ingest, "gw-1", kSensors).size();
    const auto records_when_off = spool()["records"].get<std::uint64_t>();
    ASSERT_TRUE(eventually(
        [&] { return spool()["records"].get<std::uint64_t>() >= records_when_off + 10; }, kTimeout))
        << spool().dump();
    EXPECT_EQ(storedReadings(ingest, "gw-1", kSensors).size(), stored_when_off);

    // An invalid file is not applied: the running config (tsdb off) stays.
    for (const char* bad : {"[sinks]\ntsdb = \"maybe\"\n", "[sinks]\ntsdb = true\nbogus = 1\n",
                            "[sinks]\ntsdb = true\nbatch_records = 0\n"}) {
        SCOPED_TRACE(bad);
        const auto refusals = [&] {
            std::size_t count = 0;
            const auto log = ingest.log();
            for (auto at = log.find("not reloaded, the running config stays");
                 at != std::string::npos;
                 at = log.find("not reloaded, the running config stays", at + 1)) {
                count += 1;
            }
            return count;
        };
        const auto before = refusals();
        ingest.rewriteConfig(bad);
        ingest.signal(SIGHUP);
        ASSERT_TRUE(eventually([&] { return refusals() == before + 1; }, kTimeout)) << ingest.log();
        EXPECT_TRUE(ingest.running());
        EXPECT_EQ(cursorSinks(), std::set<std::string>{});
        EXPECT_EQ(storedReadings(ingest, "gw-1", kSensors).size(), stored_when_off);
    }
    EXPECT_EQ(ingest.get("/readyz")->first, 200);

    // On again: a new cursor at the beginning of what the spool still holds; the store catches up.
    ingest.rewriteConfig("[sinks]\ntsdb = true\n");
    ingest.signal(SIGHUP);
    ASSERT_TRUE(ingest.waitForLog("sinks restarted (tsdb on)", kTimeout)) << ingest.log();
    EXPECT_EQ(cursorSinks(), std::set<std::string>{"tsdb"});
    ASSERT_NO_FATAL_FAILURE(drainAgents(agents, [&] { return ingest.log(); }));
    const auto produced = producedReadings(agent);
    Readings stored;
    ASSERT_TRUE(eventually(
        [&] {
            stored = storedReadings(ingest, "gw-1", kSensors);
            return stored.size() >= produced;
        },
        kTimeout))
        << stored.size() << " of " << produced << "\n"
        << ingest.log();
    EXPECT_EQ(stored.size(), produced);
    EXPECT_EQ(stored, sentReadings(observer, "gw-1"));
    EXPECT_TRUE(eventually([&] { return spool()["cursors"][0]["lag"] == 0; }, kTimeout))
        << spool().dump();
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

TEST_F(IngestTest, ApiRequiresTheBearerTokenAndAnswersCommands) {
    const std::string token = "it-is-a-secret-0123456789";
    IngestProcess ingest(broker_, {.token = token});
    ASSERT_TRUE(ingest.start()) << ingest.log();
    ReceiptSubscriber observer(broker_, {.clientId = "observer", .receipting = false});
    EdgeAgentProcess agent(broker_, {.gatewayId = "gw-1",
                                     .sensors = 2,
                                     .sampleInterval = 100ms,
                                     .batchMaxAge = 300ms,
                                     .logLevel = "info"});
    ASSERT_TRUE(agent.start()) << agent.log();
    ASSERT_TRUE(eventually(
        [&] {
            const auto gateway = getJson(ingest, "/api/v1/gateways/gw-1");
            return gateway.is_object() && gateway["online"] == true &&
                   gateway["received"]["batches"].get<std::uint64_t>() > 0;
        },
        kTimeout))
        << ingest.log();

    // Without the token, or with a wrong one: 401 and a JSON error.
    for (const auto& path : {"/api/v1/gateways", "/api/v1/gateways/gw-1", "/api/v1/spool",
                             "/api/v1/series?gateway=gw-1&sensor=s0", "/api/v1/nope"}) {
        SCOPED_TRACE(path);
        const auto response = ingest.get(path, false);
        ASSERT_TRUE(response);
        EXPECT_EQ(response->first, 401);
        EXPECT_EQ(json::parse(response->second, nullptr, false)["error"], "unauthorized");
    }
    for (const std::string& authorization :
         {"Bearer " + token + "x", "Bearer " + token.substr(1), "Basic " + token, token}) {
        SCOPED_TRACE(authorization);
        const auto response = httpRequest(ingest.apiPort(), "GET", "/api/v1/gateways", {},
                                          {{"Authorization", authorization}});
        ASSERT_TRUE(response);
        EXPECT_EQ(response->first, 401);
    }
    // With it: 200.
    const auto gateways = ingest.get("/api/v1/gateways");
    ASSERT_TRUE(gateways);
    EXPECT_EQ(gateways->first, 200);
    EXPECT_EQ(json::parse(gateways->second)["gateways"][0]["gateway_id"], "gw-1");
    // Probes and the scraper need none.
    for (const auto& path : {"/healthz", "/readyz", "/metrics"}) {
        SCOPED_TRACE(path);
        const auto response = ingest.get(path, false);
        ASSERT_TRUE(response);
        EXPECT_EQ(response->first, 200);
    }

    // A command without the token is not sent.
    const auto refused =
        ingest.post("/api/v1/gateways/gw-1/commands", R"({"name":"rebirth"})", false);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->first, 401);

    // Rebirth: the agent publishes its birth again and acks the command as done.
    const auto births = [&] {
        std::size_t count = 0;
        for (const auto& s : observer.statuses("gw-1")) {
            if (!s.retained && s.status.kind == shared::StatusKind::Birth) count += 1;
        }
        return count;
    };
    const auto births_before = births();
    const auto rebirth = ingest.post("/api/v1/gateways/gw-1/commands", R"({"name":"rebirth"})");
    ASSERT_TRUE(rebirth);
    ASSERT_EQ(rebirth->first, 202) << rebirth->second;
    const auto rebirth_id = json::parse(rebirth->second)["command_id"].get<std::uint64_t>();
    EXPECT_EQ(json::parse(rebirth->second)["name"], "rebirth");
    json ack;
    ASSERT_TRUE(eventually(
        [&] {
            ack = getJson(ingest, "/api/v1/gateways/gw-1")["last_command_ack"];
            return ack.is_object() && ack["command_id"] == rebirth_id;
        },
        kTimeout))
        << ack.dump() << ingest.log();
    EXPECT_EQ(ack["result"], static_cast<int>(shared::CommandResult::Done));
    EXPECT_EQ(ack["detail"], "birth published");
    EXPECT_TRUE(observer.waitFor([&] { return births() > births_before; }, kTimeout));

    // A body that is not JSON: 400 with its code, and nothing is sent.
    const auto bad = ingest.post("/api/v1/gateways/gw-1/commands", R"({"name": "rebirth")");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->first, 400);
    EXPECT_EQ(json::parse(bad->second, nullptr, false)["error"], "invalid_body");
    const auto unknown = ingest.post("/api/v1/gateways/gw-1/commands", R"({"epoch":1})");
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->first, 400);

    // Resend of seqs the agent has long had receipted: it accepts the ranges (and finds nothing
    // left to send in them).
    const auto epoch = getJson(ingest, "/api/v1/gateways/gw-1")["epoch"].get<std::uint64_t>();
    ASSERT_GT(epoch, 0u);
    const auto resend = ingest.post(
        "/api/v1/gateways/gw-1/commands",
        R"({"name":"resend","epoch":)" + std::to_string(epoch) + R"(,"ranges":[[1,2]]})");
    ASSERT_TRUE(resend);
    ASSERT_EQ(resend->first, 202) << resend->second;
    const auto resend_id = json::parse(resend->second)["command_id"].get<std::uint64_t>();
    EXPECT_NE(resend_id, rebirth_id);
    EXPECT_EQ(json::parse(resend->second)["epoch"], epoch);
    ASSERT_TRUE(eventually(
        [&] {
            ack = getJson(ingest, "/api/v1/gateways/gw-1")["last_command_ack"];
            return ack.is_object() && ack["command_id"] == resend_id;
        },
        kTimeout))
        << ack.dump() << ingest.log();
    EXPECT_EQ(ack["result"], static_cast<int>(shared::CommandResult::Accepted)) << ack.dump();
    const auto acks = observer.commandAcks("gw-1");
    ASSERT_GE(acks.size(), 2u);
    EXPECT_EQ(acks.back().command_id, resend_id);

    ASSERT_EQ(agent.stop(), 0) << agent.log();
    EXPECT_EQ(ingest.stop(), 0) << ingest.log();
}

}  // namespace
}  // namespace tern::test
