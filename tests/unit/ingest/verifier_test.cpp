#include "tern/ingest/verifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../shared/sample_messages.h"
#include "tern/schema/alert_generated.h"
#include "tern/shared/codec.h"

namespace tern::ingest {
namespace {

using shared::Bytes;
using shared::testing::kT0;
namespace reason = shared::codec_reason;

constexpr std::int64_t kYearMs = 365LL * 24 * 3600 * 1000;
// The samples' times lie in [kT0, kT0 + 10 s]; they arrive a little later.
constexpr std::int64_t kReceivedMs = kT0 + 20'000;
const std::string kGateway = "gw-building-a-01";

std::string topicFor(const std::string& kind, const std::string& gateway = kGateway) {
    return "tern/v1/gw/" + gateway + "/" + kind;
}

class VerifierTest : public ::testing::Test {
protected:
    Verifier make(VerifyConfig config = {}) {
        auto verifier = Verifier::create(config, metrics_);
        EXPECT_TRUE(verifier) << (verifier ? "" : verifier.error().message());
        return std::move(verifier).value();
    }

    // The value of one series in the exposition; -1 when it is not there.
    double metric(const std::string& series) const {
        std::istringstream in(metrics_.exposition());
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        }
        return -1;
    }

    // The reason of a rejection, or "" when the message was accepted.
    static std::string reasonOf(const Verified& verified) {
        const auto* rejection = std::get_if<Rejection>(&verified);
        return rejection == nullptr ? "" : rejection->reason;
    }

    shared::MetricsRegistry metrics_;
};

Bytes encoded(const shared::TelemetryBatch& batch,
              shared::Compression compression = shared::Compression::None) {
    return shared::encodeBatch(batch, {compression}).value();
}

Bytes encoded(const shared::Alert& alert) {
    return shared::encodeAlert(alert, {shared::Compression::None}).value();
}

// An alert as a FlatBuffer built by hand, for what the encoders refuse to write.
Bytes handBuiltAlert(std::uint16_t schema_version, double value) {
    flatbuffers::FlatBufferBuilder builder;
    const wire::Sequence sequence(3, 42);
    const auto gateway_id = builder.CreateString(kGateway);
    const auto rule = builder.CreateString("temp-high");
    const auto message = builder.CreateString("too hot");
    const auto root = wire::CreateAlert(builder, schema_version, gateway_id, &sequence, 7, rule, 0,
                                        wire::Severity::Critical, wire::AlertState::Firing, value,
                                        kT0, true, message);
    builder.Finish(root, wire::AlertIdentifier());
    return Bytes(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
}

TEST_F(VerifierTest, AcceptsTelemetryAsReceived) {
    const auto verifier = make();
    for (const auto compression : {shared::Compression::None, shared::Compression::Zstd}) {
        const Bytes payload = encoded(shared::testing::sampleBatch(), compression);
        const Verified verified = verifier.verify(topicFor("telemetry"), payload, kReceivedMs);
        ASSERT_EQ(reasonOf(verified), "");
        const auto& telemetry = std::get<VerifiedTelemetry>(verified);
        EXPECT_EQ(telemetry.batch,
                  shared::testing::groupedBySensor(shared::testing::sampleBatch()));
        EXPECT_EQ(telemetry.clamped, 0u);
        EXPECT_EQ(telemetry.incoming.gateway_id, kGateway);
        EXPECT_EQ(telemetry.incoming.sequence, (shared::Sequence{3, 41}));
        EXPECT_EQ(telemetry.incoming.kind, Kind::Telemetry);
        EXPECT_EQ(telemetry.incoming.readings, 42u);
        EXPECT_EQ(telemetry.incoming.received_ms, kReceivedMs);
        // The bytes as received, compressed or not: the sinks decode them again.
        EXPECT_EQ(telemetry.incoming.payload, payload);
    }
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"telemetry\"}"), 2);
    EXPECT_EQ(metric("tern_ingest_timestamps_clamped_total"), 0);
}

TEST_F(VerifierTest, AcceptsAlert) {
    const auto verifier = make();
    const Bytes payload = encoded(shared::testing::sampleAlert());
    const Verified verified = verifier.verify(topicFor("alerts"), payload, kReceivedMs);
    ASSERT_EQ(reasonOf(verified), "");
    const auto& alert = std::get<VerifiedAlert>(verified);
    EXPECT_EQ(alert.alert, shared::testing::sampleAlert());
    EXPECT_FALSE(alert.clamped);
    EXPECT_EQ(alert.incoming.gateway_id, kGateway);
    EXPECT_EQ(alert.incoming.sequence, (shared::Sequence{3, 42}));
    EXPECT_EQ(alert.incoming.kind, Kind::Alert);
    EXPECT_EQ(alert.incoming.readings, 0u);
    EXPECT_EQ(alert.incoming.received_ms, kReceivedMs);
    EXPECT_EQ(alert.incoming.payload, payload);
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"alerts\"}"), 1);
}

TEST_F(VerifierTest, AcceptsStatusWithItsClockSkew) {
    const auto verifier = make();
    const auto status = shared::testing::sampleStatus();  // sent at kT0
    const Verified verified =
        verifier.verify(topicFor("status"), shared::encodeStatus(status).value(), kT0 + 1'500);
    ASSERT_EQ(reasonOf(verified), "");
    const auto& out = std::get<VerifiedStatus>(verified);
    EXPECT_EQ(out.gateway_id, kGateway);
    EXPECT_EQ(out.status, status);
    EXPECT_EQ(out.received_ms, kT0 + 1'500);
    EXPECT_EQ(out.clock_skew_ms, 1'500);

    // A gateway clock ahead of the ingest's gives a negative skew.
    const auto ahead = std::get<VerifiedStatus>(
        verifier.verify(topicFor("status"), shared::encodeStatus(status).value(), kT0 - 700));
    EXPECT_EQ(ahead.clock_skew_ms, -700);
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"status\"}"), 2);
}

TEST_F(VerifierTest, AcceptsCommandAck) {
    const auto verifier = make();
    const auto ack = shared::testing::sampleCommandAck();
    const Verified verified =
        verifier.verify(topicFor("cmd-ack"), shared::encodeCommandAck(ack).value(), kReceivedMs);
    ASSERT_EQ(reasonOf(verified), "");
    const auto& out = std::get<VerifiedCommandAck>(verified);
    EXPECT_EQ(out.gateway_id, kGateway);
    EXPECT_EQ(out.ack, ack);
    EXPECT_EQ(out.received_ms, kReceivedMs);
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"cmd-ack\"}"), 1);
}

TEST_F(VerifierTest, TruncatedPayloadsAreRejectedWithTheGatewayFromTheTopic) {
    const auto verifier = make();
    const Bytes payload = encoded(shared::testing::sampleBatch());
    for (std::size_t length = 0; length < payload.size(); ++length) {
        // A heap block of exactly `length` bytes, so ASan sees any read past the end.
        const Bytes truncated(payload.begin(), payload.begin() + static_cast<long>(length));
        const Verified verified = verifier.verify(topicFor("telemetry"), truncated, kReceivedMs);
        const auto* rejection = std::get_if<Rejection>(&verified);
        ASSERT_NE(rejection, nullptr) << "truncated to " << length;
        EXPECT_EQ(rejection->gateway_id, kGateway);
        EXPECT_FALSE(rejection->reason.empty());
    }
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), Bytes{}, kReceivedMs)),
              reason::kEmpty);
    // Not a whole number of 4-byte words: cut inside the padding or the data.
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"),
                                       Bytes(payload.begin(), payload.end() - 1), kReceivedMs)),
              reason::kTruncated);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"empty\"}"), 2);
}

TEST_F(VerifierTest, BitFlipsAreRejectedWithACodecReasonOrYieldAValidBatch) {
    const auto verifier = make();
    const std::set<std::string> expected_reasons = {std::string(reason::kTruncated),
                                                    std::string(reason::kWrongIdentifier),
                                                    std::string(reason::kVerifyFailed),
                                                    std::string(reason::kSchemaVersion),
                                                    std::string(reason::kInvalidGatewayId),
                                                    std::string(reason::kNonFiniteValue),
                                                    std::string(reason::kBadEncoding),
                                                    std::string(reason::kCountMismatch),
                                                    std::string(reason::kTooManyItems),
                                                    std::string(reason::kDuplicateItem),
                                                    std::string(reason::kTimestampOutOfWindow),
                                                    std::string(reason::kBadEnum),
                                                    std::string(reason::kBadRange),
                                                    "gateway_mismatch"};
    const Bytes payload = encoded(shared::testing::sampleBatch());
    std::size_t rejected = 0;
    for (std::size_t bit = 0; bit < payload.size() * 8; ++bit) {
        Bytes flipped = payload;
        flipped[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        const Verified verified = verifier.verify(topicFor("telemetry"), flipped, kReceivedMs);
        if (const auto* rejection = std::get_if<Rejection>(&verified)) {
            ++rejected;
            EXPECT_TRUE(expected_reasons.contains(rejection->reason))
                << "bit " << bit << ": " << rejection->reason;
            if (bit / 8 >= 4 && bit / 8 < 8) {
                EXPECT_EQ(rejection->reason, reason::kWrongIdentifier) << "bit " << bit;
            }
        } else {
            // A flip in a value may make another valid batch; it must still be one.
            const auto& telemetry = std::get<VerifiedTelemetry>(verified);
            EXPECT_TRUE(shared::validate(telemetry.batch)) << "bit " << bit;
            EXPECT_EQ(telemetry.batch.gateway_id, kGateway) << "bit " << bit;
        }
    }
    EXPECT_GT(rejected, payload.size());
}

TEST_F(VerifierTest, AnotherMessageTypeOnTheTopicIsTheWrongIdentifier) {
    const auto verifier = make();
    const Bytes receipt = shared::encodeReceipt(shared::testing::sampleReceipt()).value();
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), receipt, kReceivedMs)),
              reason::kWrongIdentifier);
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("status"), encoded(shared::testing::sampleAlert()),
                                       kReceivedMs)),
              reason::kWrongIdentifier);
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("alerts"), encoded(shared::testing::sampleBatch()),
                                       kReceivedMs)),
              reason::kWrongIdentifier);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"wrong_identifier\"}"), 3);
}

TEST_F(VerifierTest, SchemaVersionZeroIsRejectedAndANewerOneRead) {
    const auto verifier = make();
    ASSERT_EQ(reasonOf(verifier.verify(topicFor("alerts"), handBuiltAlert(1, 1.5), kReceivedMs)),
              "");
    // Writers only append fields, so a newer version is read with what this build knows.
    const Verified newer = verifier.verify(topicFor("alerts"), handBuiltAlert(7, 1.5), kReceivedMs);
    ASSERT_EQ(reasonOf(newer), "");
    EXPECT_EQ(std::get<VerifiedAlert>(newer).alert.value, 1.5);
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("alerts"), handBuiltAlert(0, 1.5), kReceivedMs)),
              reason::kSchemaVersion);
}

TEST_F(VerifierTest, NonFiniteValuesAreRejected) {
    const auto verifier = make();
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("alerts"),
                                       handBuiltAlert(1, std::numeric_limits<double>::quiet_NaN()),
                                       kReceivedMs)),
              reason::kNonFiniteValue);

    // The sample's pi has no decimal form, so the encoder stores it as a raw double: overwrite
    // those eight bytes with a NaN.
    Bytes payload = encoded(shared::testing::sampleBatch());
    const double pi = M_PI;
    std::uint8_t pattern[sizeof(double)];
    std::memcpy(pattern, &pi, sizeof(pi));
    const auto at =
        std::search(payload.begin(), payload.end(), std::begin(pattern), std::end(pattern));
    ASSERT_NE(at, payload.end());
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::memcpy(&*at, &nan, sizeof(nan));
    const Verified verified = verifier.verify(topicFor("telemetry"), payload, kReceivedMs);
    EXPECT_EQ(reasonOf(verified), reason::kNonFiniteValue);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"non_finite_value\"}"), 2);
}

TEST_F(VerifierTest, PayloadNamingAnotherGatewayIsAMismatch) {
    const auto verifier = make();
    const std::string other = "gw-building-b-07";
    const auto check = [&](const std::string& kind, const Bytes& payload) {
        const Verified verified = verifier.verify(topicFor(kind, other), payload, kReceivedMs);
        const auto* rejection = std::get_if<Rejection>(&verified);
        ASSERT_NE(rejection, nullptr) << kind;
        EXPECT_EQ(rejection->reason, "gateway_mismatch") << kind;
        // The topic is the authenticated identity, so the rejection is filed under it.
        EXPECT_EQ(rejection->gateway_id, other) << kind;
    };
    check("telemetry", encoded(shared::testing::sampleBatch()));
    check("alerts", encoded(shared::testing::sampleAlert()));
    check("status", shared::encodeStatus(shared::testing::sampleStatus()).value());
    check("cmd-ack", shared::encodeCommandAck(shared::testing::sampleCommandAck()).value());
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"gateway_mismatch\"}"), 4);

    // Checked before the timestamps: a batch that is both is reported as the mismatch.
    auto late = shared::testing::sampleBatch();
    late.readings[0].time_ms = kT0 - 50 * kYearMs;
    check("telemetry", encoded(late));
}

TEST_F(VerifierTest, OversizePayloadIsRejected) {
    VerifyConfig config;
    config.max_message_bytes = shared::kKiB;
    const auto verifier = make(config);
    auto batch = shared::testing::sampleBatch();
    for (int i = 0; i < 400; ++i) {
        batch.readings.push_back({3, kT0 + i * 1000, 0.5 * i, shared::Quality::Good});
    }
    const Bytes payload = encoded(batch);
    ASSERT_GT(payload.size(), shared::kKiB);
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), payload, kReceivedMs)),
              reason::kOversize);
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"),
                                       encoded(shared::testing::sampleBatch()), kReceivedMs)),
              "");
}

shared::TelemetryBatch batchFiftyYearsOff() {
    auto batch = shared::testing::sampleBatch();
    batch.readings.clear();
    batch.readings.push_back({0, kT0 - 50 * kYearMs, 1.0, shared::Quality::Good});
    batch.readings.push_back({0, kT0 + 1000, 2.0, shared::Quality::Good});
    batch.readings.push_back({1, kT0 + 50 * kYearMs, 3.0, shared::Quality::Bad});
    batch.aggregates = {
        {5, kT0 - 50 * kYearMs, 60'000, 60, 1.0, 2.0, 1.5, 2.0, shared::Quality::Good},
        {6, kT0, 60'000, 60, 1.0, 2.0, 1.5, 2.0, shared::Quality::Good}};
    return batch;
}

TEST_F(VerifierTest, RejectPolicyRefusesTimestampsFiftyYearsOff) {
    const auto verifier = make();
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), encoded(batchFiftyYearsOff()),
                                       kReceivedMs)),
              reason::kTimestampOutOfWindow);

    // Each kind of timestamp alone is enough.
    auto future_reading = shared::testing::sampleBatch();
    future_reading.readings[5].time_ms = kReceivedMs + 50 * kYearMs;
    EXPECT_EQ(
        reasonOf(verifier.verify(topicFor("telemetry"), encoded(future_reading), kReceivedMs)),
        reason::kTimestampOutOfWindow);
    auto old_aggregate = shared::testing::sampleBatch();
    old_aggregate.aggregates[0].start_ms = kReceivedMs - 50 * kYearMs;
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), encoded(old_aggregate), kReceivedMs)),
              reason::kTimestampOutOfWindow);
    auto old_alert = shared::testing::sampleAlert();
    old_alert.time_ms = kReceivedMs - 50 * kYearMs;
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("alerts"), encoded(old_alert), kReceivedMs)),
              reason::kTimestampOutOfWindow);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"timestamp_out_of_window\"}"), 4);

    // The window's edges are inside it: max_future ahead and max_past behind.
    const VerifyConfig defaults;
    auto edges = shared::testing::sampleBatch();
    edges.readings.front().time_ms = kReceivedMs + defaults.max_future.count();
    edges.readings.back().time_ms = kReceivedMs - defaults.max_past.count();
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), encoded(edges), kReceivedMs)), "");
    edges.readings.front().time_ms += 1;
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), encoded(edges), kReceivedMs)),
              reason::kTimestampOutOfWindow);
}

TEST_F(VerifierTest, ClampPolicyMovesTimestampsToTheWindowAndReencodes) {
    VerifyConfig config;
    config.timestamp_policy = "clamp";
    const auto verifier = make(config);
    const std::int64_t min_ms = kReceivedMs - config.max_past.count();
    const std::int64_t max_ms = kReceivedMs + config.max_future.count();

    const Bytes payload = encoded(batchFiftyYearsOff());
    const Verified verified = verifier.verify(topicFor("telemetry"), payload, kReceivedMs);
    ASSERT_EQ(reasonOf(verified), "");
    const auto& telemetry = std::get<VerifiedTelemetry>(verified);
    EXPECT_EQ(telemetry.clamped, 3u);
    using shared::Quality;
    EXPECT_EQ(telemetry.batch.readings,
              (std::vector<shared::Reading>{{0, min_ms, 1.0, Quality::TimeUncertain},
                                            {0, kT0 + 1000, 2.0, Quality::Good},
                                            {1, max_ms, 3.0, Quality::TimeUncertain}}));
    ASSERT_EQ(telemetry.batch.aggregates.size(), 2u);
    EXPECT_EQ(telemetry.batch.aggregates[0].start_ms, min_ms);
    EXPECT_EQ(telemetry.batch.aggregates[0].quality, Quality::TimeUncertain);
    EXPECT_EQ(telemetry.batch.aggregates[1].start_ms, kT0);
    EXPECT_EQ(telemetry.batch.aggregates[1].quality, Quality::Good);

    // The spool gets the clamped message, which passes a decoder that enforces the window.
    EXPECT_NE(telemetry.incoming.payload, payload);
    EXPECT_EQ(telemetry.incoming.readings, 3u);
    shared::DecodeLimits windowed;
    windowed.time_window = shared::TimeWindow{min_ms, max_ms};
    const auto decoded = shared::decodeBatch(telemetry.incoming.payload, windowed);
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(decoded.value(), telemetry.batch);

    auto alert = shared::testing::sampleAlert();
    alert.time_ms = kReceivedMs + 50 * kYearMs;
    const Verified clamped_alert = verifier.verify(topicFor("alerts"), encoded(alert), kReceivedMs);
    ASSERT_EQ(reasonOf(clamped_alert), "");
    const auto& out = std::get<VerifiedAlert>(clamped_alert);
    EXPECT_TRUE(out.clamped);
    EXPECT_EQ(out.alert.time_ms, max_ms);
    EXPECT_FALSE(out.alert.clock_synced);
    const auto decoded_alert = shared::decodeAlert(out.incoming.payload, windowed);
    ASSERT_TRUE(decoded_alert) << decoded_alert.error().message();
    EXPECT_EQ(decoded_alert.value(), out.alert);

    EXPECT_EQ(metric("tern_ingest_timestamps_clamped_total"), 4);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"timestamp_out_of_window\"}"),
              -1);

    // Nothing outside the window: nothing moved, the bytes kept as received.
    const Bytes good = encoded(shared::testing::sampleBatch());
    const auto untouched =
        std::get<VerifiedTelemetry>(verifier.verify(topicFor("telemetry"), good, kReceivedMs));
    EXPECT_EQ(untouched.clamped, 0u);
    EXPECT_EQ(untouched.incoming.payload, good);
    EXPECT_EQ(metric("tern_ingest_timestamps_clamped_total"), 4);
}

TEST_F(VerifierTest, HundredThousandReadingsPassAtTheLimitAndNotBelowIt) {
    shared::TelemetryBatch batch = shared::testing::sampleBatch();
    batch.readings.clear();
    batch.aggregates.clear();
    for (int i = 0; i < 100'000; ++i) {
        const std::uint16_t sensor = static_cast<std::uint16_t>(i % 10);
        batch.readings.push_back(
            {sensor, kT0 + (i / 10) * 100, 20.0 + (i % 7) * 0.25, shared::Quality::Good});
    }
    const Bytes payload = shared::encodeBatch(batch).value();
    ASSERT_LE(payload.size(), VerifyConfig{}.max_message_bytes);
    const std::int64_t received = kT0 + 10'000'000;

    const auto at_limit = make();
    const Verified verified = at_limit.verify(topicFor("telemetry"), payload, received);
    ASSERT_EQ(reasonOf(verified), "");
    EXPECT_EQ(std::get<VerifiedTelemetry>(verified).incoming.readings, 100'000u);
    EXPECT_EQ(std::get<VerifiedTelemetry>(verified).batch.readings.size(), 100'000u);

    VerifyConfig lower;
    lower.max_readings = 99'999;
    const auto below = make(lower);
    EXPECT_EQ(reasonOf(below.verify(topicFor("telemetry"), payload, received)),
              reason::kTooManyItems);
}

TEST_F(VerifierTest, TopicsGatewaysDoNotPublishOnAreUnexpected) {
    const auto verifier = make();
    const Bytes batch = encoded(shared::testing::sampleBatch());
    const auto rejected = [&](const std::string& topic) {
        const Verified verified = verifier.verify(topic, batch, kReceivedMs);
        const auto* rejection = std::get_if<Rejection>(&verified);
        return rejection == nullptr ? Rejection{"", "accepted", ""} : *rejection;
    };
    // Parsed, but receipts and commands are what the ingest publishes.
    EXPECT_EQ(rejected(topicFor("receipt")).reason, "unexpected_topic");
    EXPECT_EQ(rejected(topicFor("receipt")).gateway_id, kGateway);
    EXPECT_EQ(rejected(topicFor("cmd/resend")).reason, "unexpected_topic");
    // Not parsed: no gateway to name.
    for (const std::string& topic :
         {"tern/v2/gw/" + kGateway + "/telemetry", topicFor("bogus"), topicFor("telemetry/extra"),
          std::string("tern/v1/gw/a+b/telemetry"), std::string("tern/v1"), std::string()}) {
        const Rejection rejection = rejected(topic);
        EXPECT_EQ(rejection.reason, "unexpected_topic") << topic;
        EXPECT_EQ(rejection.gateway_id, "") << topic;
        EXPECT_FALSE(rejection.detail.empty()) << topic;
    }
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"other\"}"), 9);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"unexpected_topic\"}"), 9);
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"telemetry\"}"), 0);
}

TEST_F(VerifierTest, TheTopicPrefixIsConfigurable) {
    VerifyConfig config;
    config.topic_prefix = "acme/tern";
    const auto verifier = make(config);
    const Bytes batch = encoded(shared::testing::sampleBatch());
    EXPECT_EQ(
        reasonOf(verifier.verify("acme/tern/gw/" + kGateway + "/telemetry", batch, kReceivedMs)),
        "");
    EXPECT_EQ(reasonOf(verifier.verify(topicFor("telemetry"), batch, kReceivedMs)),
              "unexpected_topic");
    EXPECT_EQ(verifier.topics().prefix(), "acme/tern");
}

TEST_F(VerifierTest, VerifiesFromSeveralThreadsAtOnce) {
    const auto verifier = make();
    const Bytes good = encoded(shared::testing::sampleBatch());
    const Bytes bad(good.begin(), good.begin() + 20);
    const std::string bad_reason =
        reasonOf(verifier.verify(topicFor("telemetry"), bad, kReceivedMs));
    ASSERT_NE(bad_reason, "");
    constexpr int kThreads = 4;
    constexpr int kPerThread = 200;
    std::atomic<int> accepted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const bool odd = (i + t) % 2 == 1;
                const Verified verified =
                    verifier.verify(topicFor("telemetry"), odd ? bad : good, kReceivedMs);
                if (std::holds_alternative<VerifiedTelemetry>(verified)) accepted.fetch_add(1);
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(accepted.load(), kThreads * kPerThread / 2);
    EXPECT_EQ(metric("tern_ingest_messages_received_total{kind=\"telemetry\"}"),
              kThreads * kPerThread + 1);
    EXPECT_EQ(metric("tern_ingest_messages_rejected_total{reason=\"" + bad_reason + "\"}"),
              kThreads * kPerThread / 2 + 1);
}

TEST_F(VerifierTest, CreateRefusesABadConfig) {
    const auto code = [&](VerifyConfig config) {
        auto verifier = Verifier::create(config, metrics_);
        if (verifier) return std::string();
        EXPECT_EQ(verifier.error().action, shared::ErrorAction::Stop);
        return verifier.error().code;
    };
    EXPECT_EQ(code({}), "");
    VerifyConfig prefix;
    prefix.topic_prefix = "$SYS/tern";
    EXPECT_EQ(code(prefix), "bad_topic_prefix");
    VerifyConfig policy;
    policy.timestamp_policy = "ignore";
    EXPECT_EQ(code(policy), "bad_timestamp_policy");
    VerifyConfig no_readings;
    no_readings.max_readings = 0;
    EXPECT_EQ(code(no_readings), "bad_limits");
    VerifyConfig too_many_readings;
    too_many_readings.max_readings = 100'001;
    EXPECT_EQ(code(too_many_readings), "bad_limits");
    VerifyConfig no_bytes;
    no_bytes.max_message_bytes = 0;
    EXPECT_EQ(code(no_bytes), "bad_limits");
    VerifyConfig negative;
    negative.max_future = std::chrono::milliseconds{-1};
    EXPECT_EQ(code(negative), "bad_limits");
}

struct Root {
    VerifyConfig verify;
};

shared::ConfigTable<Root> rootTable() {
    return shared::ConfigTable<Root>("", "test").table(&Root::verify, verifyTable());
}

TEST(VerifyTable, LoadsEveryKey) {
    const auto loaded = shared::loadConfigString<Root>(R"(
[verify]
topic_prefix = "acme/tern"
max_message_bytes = "1MiB"
max_readings = 5000
max_past = "30d"
max_future = "1m"
timestamp_policy = "clamp"
)",
                                                       "ingest.toml", rootTable());
    ASSERT_TRUE(loaded) << shared::formatConfigErrors(loaded.error());
    const VerifyConfig& config = loaded.value().verify;
    EXPECT_EQ(config.topic_prefix, "acme/tern");
    EXPECT_EQ(config.max_message_bytes, shared::kMiB);
    EXPECT_EQ(config.max_readings, 5000);
    EXPECT_EQ(config.max_past, std::chrono::hours{24 * 30});
    EXPECT_EQ(config.max_future, std::chrono::minutes{1});
    EXPECT_EQ(config.timestamp_policy, "clamp");
}

TEST(VerifyTable, DefaultsMatchTheStruct) {
    const auto loaded = shared::loadConfigString<Root>("", "ingest.toml", rootTable());
    ASSERT_TRUE(loaded);
    const VerifyConfig defaults;
    const VerifyConfig& config = loaded.value().verify;
    EXPECT_EQ(config.topic_prefix, defaults.topic_prefix);
    EXPECT_EQ(config.max_message_bytes, defaults.max_message_bytes);
    EXPECT_EQ(config.max_readings, defaults.max_readings);
    EXPECT_EQ(config.max_past, defaults.max_past);
    EXPECT_EQ(config.max_future, defaults.max_future);
    EXPECT_EQ(config.timestamp_policy, defaults.timestamp_policy);
}

TEST(VerifyTable, ReportsEveryBadKey) {
    const auto loaded = shared::loadConfigString<Root>(R"(
[verify]
topic_prefix = "tern/#"
max_readings = 100001
timestamp_policy = "drop"
max_futur = "1m"
)",
                                                       "ingest.toml", rootTable());
    ASSERT_FALSE(loaded);
    std::set<std::string> keys;
    for (const auto& error : loaded.error()) keys.insert(error.key);
    EXPECT_EQ(keys, (std::set<std::string>{"verify.topic_prefix", "verify.max_readings",
                                           "verify.timestamp_policy", "verify.max_futur"}));
}

}  // namespace
}  // namespace tern::ingest
