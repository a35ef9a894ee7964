#include "tern/shared/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "sample_messages.h"

namespace tern::shared {
namespace {

using testing::groupedBySensor;
using testing::kT0;

class CodecRoundTrip : public ::testing::TestWithParam<Compression> {
protected:
    EncodeOptions options() const { return EncodeOptions{GetParam(), 3, 16}; }
};

template <class T>
T valueOf(Result<T> result) {
    EXPECT_TRUE(result.has_value()) << result.error().message();
    return std::move(result).value();
}

TEST_P(CodecRoundTrip, Batch) {
    const auto batch = testing::sampleBatch();
    const auto bytes = valueOf(encodeBatch(batch, options()));
    EXPECT_EQ(valueOf(decodeBatch(bytes)), groupedBySensor(batch));
}

TEST_P(CodecRoundTrip, Alert) {
    const auto bytes = valueOf(encodeAlert(testing::sampleAlert(), options()));
    EXPECT_EQ(valueOf(decodeAlert(bytes)), testing::sampleAlert());
}

TEST_P(CodecRoundTrip, Status) {
    const auto bytes = valueOf(encodeStatus(testing::sampleStatus(), options()));
    EXPECT_EQ(valueOf(decodeStatus(bytes)), testing::sampleStatus());
}

TEST_P(CodecRoundTrip, Receipt) {
    const auto bytes = valueOf(encodeReceipt(testing::sampleReceipt(), options()));
    EXPECT_EQ(valueOf(decodeReceipt(bytes)), testing::sampleReceipt());
}

TEST_P(CodecRoundTrip, Command) {
    const auto bytes = valueOf(encodeCommand(testing::sampleCommand(), options()));
    EXPECT_EQ(valueOf(decodeCommand(bytes)), testing::sampleCommand());
}

TEST_P(CodecRoundTrip, CommandAck) {
    const auto bytes = valueOf(encodeCommandAck(testing::sampleCommandAck(), options()));
    EXPECT_EQ(valueOf(decodeCommandAck(bytes)), testing::sampleCommandAck());
}

TEST_P(CodecRoundTrip, EmptyListsAndDeathStatus) {
    TelemetryBatch batch;
    batch.gateway_id = "g";
    batch.sequence = {1, 1};
    EXPECT_EQ(valueOf(decodeBatch(valueOf(encodeBatch(batch, options())))), batch);

    Command rebirth;
    rebirth.gateway_id = "g";
    rebirth.name = "rebirth";
    EXPECT_EQ(valueOf(decodeCommand(valueOf(encodeCommand(rebirth, options())))), rebirth);

    Receipt first;
    first.gateway_id = "g";
    first.epoch = 1;
    EXPECT_EQ(valueOf(decodeReceipt(valueOf(encodeReceipt(first, options())))), first);

    GatewayStatus death;
    death.gateway_id = "g";
    death.kind = StatusKind::Death;
    EXPECT_EQ(valueOf(decodeStatus(valueOf(encodeStatus(death, options())))), death);
}

INSTANTIATE_TEST_SUITE_P(Compression, CodecRoundTrip,
                         ::testing::Values(Compression::None, Compression::Zstd, Compression::Auto),
                         [](const auto& param_info) {
                             switch (param_info.param) {
                                 case Compression::None:
                                     return std::string("None");
                                 case Compression::Zstd:
                                     return std::string("Zstd");
                                 case Compression::Auto:
                                     return std::string("Auto");
                             }
                             return std::string("Unknown");
                         });

TEST(Codec, CompressionIsChosenByOption) {
    const auto batch = testing::sampleBatch();
    const auto plain = valueOf(encodeBatch(batch, {Compression::None}));
    const auto packed = valueOf(encodeBatch(batch, {Compression::Zstd}));
    EXPECT_EQ(std::memcmp(plain.data() + 4, "TNB1", 4), 0);
    EXPECT_EQ(packed[0], 0x28);  // zstd magic
    EXPECT_NE(plain.size(), packed.size());
}

// Any decimal at any resolution the encoder tries must come back as the identical double.
TEST(Codec, DecimalValuesRoundTripBitForBit) {
    std::mt19937_64 random(20261120);
    for (int round = 0; round < 200; ++round) {
        const int digits = static_cast<int>(random() % 10);
        const double scale = std::pow(10.0, digits);
        TelemetryBatch batch;
        batch.gateway_id = "gw-1";
        batch.sequence = {1, 1};
        std::int64_t mantissa = static_cast<std::int64_t>(random() % 2'000'000) - 1'000'000;
        for (int i = 0; i < 50; ++i) {
            mantissa += static_cast<std::int64_t>(random() % 201) - 100;
            batch.readings.push_back(
                {0, kT0 + i * 1000, static_cast<double>(mantissa) / scale, Quality::Good});
        }
        const auto decoded = valueOf(decodeBatch(valueOf(encodeBatch(batch, {Compression::None}))));
        ASSERT_EQ(decoded.readings.size(), batch.readings.size());
        for (std::size_t i = 0; i < batch.readings.size(); ++i) {
            const double expected = batch.readings[i].value;
            const double actual = decoded.readings[i].value;
            ASSERT_EQ(std::memcmp(&expected, &actual, sizeof(double)), 0)
                << "digits " << digits << " value " << expected << " came back " << actual;
        }
    }
}

// A steady 1 Hz sensor at 0.01 resolution costs about two bytes a reading before compression.
TEST(Codec, SteadySeriesIsCompactBeforeCompression) {
    TelemetryBatch batch;
    batch.gateway_id = "gw-1";
    batch.sequence = {1, 1};
    for (int i = 0; i < 1000; ++i) {
        batch.readings.push_back({0, kT0 + i * 1000, 20.0 + 0.01 * (i % 50), Quality::Good});
    }
    const auto bytes = valueOf(encodeBatch(batch, {Compression::None}));
    EXPECT_LT(bytes.size(), 2.2 * 1000);
}

TEST(Codec, EncoderRejectsWhatDecoderWould) {
    auto batch = testing::sampleBatch();
    batch.readings[3].value = std::nan("");
    auto result = encodeBatch(batch);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kNonFiniteValue);

    batch = testing::sampleBatch();
    batch.gateway_id = "gw/other";
    result = encodeBatch(batch);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kInvalidGatewayId);

    batch = testing::sampleBatch();
    batch.sequence.seq = 0;
    result = encodeBatch(batch);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kBadRange);

    auto alert = testing::sampleAlert();
    alert.rule.clear();
    EXPECT_EQ(encodeAlert(alert).error().code, codec_reason::kInvalidString);

    auto status = testing::sampleStatus();
    status.sensors[1].index = status.sensors[0].index;
    EXPECT_EQ(encodeStatus(status).error().code, codec_reason::kDuplicateItem);

    auto receipt = testing::sampleReceipt();
    receipt.ranges = {{45, 50}, {48, 60}};  // overlapping
    EXPECT_EQ(encodeReceipt(receipt).error().code, codec_reason::kBadRange);

    auto command = testing::sampleCommand();
    command.name = "Re/send";
    EXPECT_EQ(encodeCommand(command).error().code, codec_reason::kInvalidString);
    command = testing::sampleCommand();
    command.epoch = 0;
    EXPECT_EQ(encodeCommand(command).error().code, codec_reason::kBadRange);

    receipt = testing::sampleReceipt();
    receipt.epoch = 0;
    EXPECT_EQ(encodeReceipt(receipt).error().code, codec_reason::kBadRange);
}

TEST(Codec, NegativeZeroKeepsItsSign) {
    TelemetryBatch batch;
    batch.gateway_id = "gw-1";
    batch.sequence = {1, 1};
    batch.readings = {{0, kT0, 1.5, Quality::Good}, {0, kT0 + 1000, -0.0, Quality::Good}};
    const auto decoded = valueOf(decodeBatch(valueOf(encodeBatch(batch))));
    ASSERT_EQ(decoded.readings.size(), 2u);
    EXPECT_TRUE(std::signbit(decoded.readings[1].value));
}

// A message larger than any decoder accepts is an error for the encoder's caller, who splits
// the batch; zstd is used when it is the only form that fits.
TEST(Codec, EncoderNeverProducesAnOversizeMessage) {
    TelemetryBatch batch;
    batch.gateway_id = "gw-1";
    batch.sequence = {1, 1};
    std::mt19937_64 random(7);
    for (int i = 0; i < 40'000; ++i) {  // random doubles: raw, 8 bytes each, barely compressible
        batch.readings.push_back({static_cast<std::uint16_t>(i % 10), kT0 + i,
                                  std::ldexp(static_cast<double>(random()), -40), Quality::Good});
    }
    const auto result = encodeBatch(batch);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kOversize);

    TelemetryBatch repetitive = batch;
    for (auto& reading : repetitive.readings) reading.value = reading.sensor == 0 ? M_PI : M_E;
    const auto packed = encodeBatch(repetitive, {Compression::Auto, 3, 1 << 30});
    ASSERT_TRUE(packed) << packed.error().message();
    EXPECT_EQ(packed.value()[0], 0x28);  // zstd, though compress_min_bytes was not reached
    EXPECT_EQ(valueOf(decodeBatch(packed.value())).readings.size(), repetitive.readings.size());
}

TEST(Codec, TimestampsOutsideTheWindowAreRejected) {
    const auto bytes = valueOf(encodeBatch(testing::sampleBatch()));
    DecodeLimits limits;
    limits.time_window = TimeWindow{kT0, kT0 + 60'000};
    EXPECT_TRUE(decodeBatch(bytes, limits));

    limits.time_window = TimeWindow{kT0 + 1, kT0 + 60'000};
    auto result = decodeBatch(bytes, limits);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kTimestampOutOfWindow);
    EXPECT_NE(result.error().detail.find("reading time"), std::string::npos);

    limits.time_window = TimeWindow{kT0, kT0 + 2000};
    EXPECT_EQ(decodeAlert(valueOf(encodeAlert(testing::sampleAlert())), limits).error().code,
              codec_reason::kTimestampOutOfWindow);
}

TEST(Codec, ReadingLimitIsEnforced) {
    const auto bytes = valueOf(encodeBatch(testing::sampleBatch()));
    DecodeLimits limits;
    limits.max_readings = 41;
    EXPECT_EQ(decodeBatch(bytes, limits).error().code, codec_reason::kTooManyItems);
    limits.max_readings = 42;
    EXPECT_TRUE(decodeBatch(bytes, limits));
}

}  // namespace
}  // namespace tern::shared
