// The decoders face the network: every malformed payload must come back as an Error that names
// its reason, never a crash and never a partial read. Run under the asan-ubsan preset, an
// out-of-bounds read in any of these is a test failure.

#include <gtest/gtest.h>
#include <zstd.h>

#include <cstring>
#include <functional>

#include "sample_messages.h"
#include "tern/schema/batch_generated.h"
#include "tern/schema/status_generated.h"
#include "tern/shared/codec.h"
#include "varint.h"

namespace tern::shared {
namespace {

using testing::kT0;

struct Case {
    const char* name;
    Bytes payload;
    // Decodes with default limits; returns the error code, or "" when the payload was accepted.
    std::function<std::string(std::span<const std::uint8_t>)> decode;
};

template <class T>
std::string codeOf(const Result<T>& result) {
    return result ? std::string() : result.error().code;
}

std::vector<Case> everyMessage(Compression compression) {
    const EncodeOptions options{compression, 3, 16};
    return {
        {"Batch", encodeBatch(testing::sampleBatch(), options).value(),
         [](auto bytes) { return codeOf(decodeBatch(bytes)); }},
        {"Alert", encodeAlert(testing::sampleAlert(), options).value(),
         [](auto bytes) { return codeOf(decodeAlert(bytes)); }},
        {"Status", encodeStatus(testing::sampleStatus(), options).value(),
         [](auto bytes) { return codeOf(decodeStatus(bytes)); }},
        {"Receipt", encodeReceipt(testing::sampleReceipt(), options).value(),
         [](auto bytes) { return codeOf(decodeReceipt(bytes)); }},
        {"Command", encodeCommand(testing::sampleCommand(), options).value(),
         [](auto bytes) { return codeOf(decodeCommand(bytes)); }},
        {"CommandAck", encodeCommandAck(testing::sampleCommandAck(), options).value(),
         [](auto bytes) { return codeOf(decodeCommandAck(bytes)); }},
    };
}

TEST(CodecAdversarial, TruncationAtEveryOffsetIsRejected) {
    for (const auto compression : {Compression::None, Compression::Zstd}) {
        for (const auto& c : everyMessage(compression)) {
            ASSERT_EQ(c.decode(c.payload), "") << c.name;
            for (std::size_t length = 0; length < c.payload.size(); ++length) {
                // A heap block of exactly `length` bytes, so ASan sees any read past the end.
                const Bytes truncated(c.payload.begin(),
                                      c.payload.begin() + static_cast<long>(length));
                EXPECT_NE(c.decode(truncated), "") << c.name << " truncated to " << length;
            }
        }
    }
}

TEST(CodecAdversarial, BitFlipsNeverCrashAndAcceptOnlyValidMessages) {
    for (const auto& c : everyMessage(Compression::None)) {
        std::size_t rejected = 0;
        for (std::size_t bit = 0; bit < c.payload.size() * 8; ++bit) {
            Bytes flipped = c.payload;
            flipped[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
            const std::string code = c.decode(flipped);
            if (!code.empty()) ++rejected;
            if (bit / 8 >= 4 && bit / 8 < 8) {
                EXPECT_EQ(code, codec_reason::kWrongIdentifier) << c.name << " bit " << bit;
            }
        }
        // Flips in values may still decode to a valid, different message; structure flips must not.
        EXPECT_GT(rejected, c.payload.size()) << c.name;
    }
}

// A flipped bit in an accepted batch yields a batch that passes validation again.
TEST(CodecAdversarial, AcceptedBitFlippedBatchesAreValid) {
    const auto payload = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    for (std::size_t bit = 0; bit < payload.size() * 8; ++bit) {
        Bytes flipped = payload;
        flipped[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        if (auto decoded = decodeBatch(flipped)) {
            EXPECT_TRUE(validate(decoded.value())) << "bit " << bit;
        }
    }
}

TEST(CodecAdversarial, WrongIdentifierIsNamed) {
    const auto alert = encodeAlert(testing::sampleAlert(), {Compression::None}).value();
    const auto result = decodeBatch(alert);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kWrongIdentifier);
    EXPECT_NE(result.error().detail.find("TNB1"), std::string::npos);
    EXPECT_EQ(codeOf(decodeReceipt(encodeStatus(testing::sampleStatus()).value())),
              codec_reason::kWrongIdentifier);
}

TEST(CodecAdversarial, VectorLongerThanTheBufferIsRejected) {
    const auto original = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    const auto* batch = wire::GetBatch(original.data());
    const std::vector<const void*> vectors = {batch->time_offsets(), batch->sensors(),
                                              batch->raw_values(), batch->aggregates(),
                                              batch->gateway_id()};
    for (const void* vector : vectors) {
        ASSERT_NE(vector, nullptr);
        auto payload = original;
        // Every vector and string starts with its uint32 length.
        const auto length_at = static_cast<const std::uint8_t*>(vector) - original.data();
        for (const std::uint32_t length :
             {0x7FFFFFF0u, static_cast<std::uint32_t>(original.size())}) {
            std::memcpy(payload.data() + length_at, &length, sizeof(length));
            EXPECT_EQ(codeOf(decodeBatch(payload)), codec_reason::kVerifyFailed)
                << "length at " << length_at;
        }
    }
}

Bytes varints(std::initializer_list<std::int64_t> values) {
    Bytes out;
    for (const auto v : values) varint::putSigned(out, v);
    return out;
}

// The time stream of one series: its first offset as stored (1 + zigzag), then the rest.
Bytes times(std::int64_t first_offset, std::initializer_list<std::int64_t> rest) {
    Bytes out;
    varint::put(out, varint::zigzag(first_offset) + 1);
    for (const auto v : rest) varint::putSigned(out, v);
    return out;
}

Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// The columns of a hand-built batch; by default one valid series of three readings.
struct Columns {
    std::vector<std::uint16_t> sensors = {0};
    std::vector<std::uint32_t> counts = {3};
    std::vector<std::int8_t> exponents = {-2};
    Bytes time_offsets = times(0, {1000, 0});
    Bytes values = varints({2137, 1, -1});
    std::vector<double> raw_values;
    Bytes quality_runs;
    std::uint16_t schema_version = 1;
};

Bytes handBuiltBatch(const Columns& c) {
    flatbuffers::FlatBufferBuilder builder;
    const wire::Sequence sequence(1, 1);
    const auto root = wire::CreateBatch(
        builder, c.schema_version, builder.CreateString("gw-1"), &sequence, kT0, kT0, true,
        builder.CreateVector(c.sensors), builder.CreateVector(c.counts),
        builder.CreateVector(c.exponents), builder.CreateVector(c.time_offsets),
        c.values.empty() ? 0 : builder.CreateVector(c.values),
        c.raw_values.empty() ? 0 : builder.CreateVector(c.raw_values),
        c.quality_runs.empty() ? 0 : builder.CreateVector(c.quality_runs));
    builder.Finish(root, wire::BatchIdentifier());
    return Bytes(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
}

std::string decodeColumns(const Columns& c, const DecodeLimits& limits = {}) {
    return codeOf(decodeBatch(handBuiltBatch(c), limits));
}

TEST(CodecAdversarial, HandBuiltBatchDecodes) {
    const auto decoded = decodeBatch(handBuiltBatch(Columns{}));
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(decoded.value().readings,
              (std::vector<Reading>{{0, kT0, 21.37, Quality::Good},
                                    {0, kT0 + 1000, 21.38, Quality::Good},
                                    {0, kT0 + 2000, 21.37, Quality::Good}}));
}

// A few kilobytes that claim tens of thousands of series: the item limit stops them before any
// reading is allocated, and one sensor listed twice is refused.
TEST(CodecAdversarial, SeriesBombIsRejected) {
    Columns c;
    c.sensors.assign(20'000, 0);
    c.counts.assign(20'000, 1);
    c.exponents.assign(20'000, 0);
    c.time_offsets = Bytes(20'000, 1);
    c.values = Bytes(20'000, 0);
    EXPECT_EQ(decodeColumns(c), codec_reason::kTooManyItems);
    DecodeLimits lifted;
    lifted.max_items = 1'000'000;
    EXPECT_EQ(decodeColumns(c, lifted), codec_reason::kDuplicateItem);
}

// Many offsets to one table: a status of a few kilobytes that would make the Verifier visit
// twenty thousand tables.
TEST(CodecAdversarial, TableBombIsRejected) {
    flatbuffers::FlatBufferBuilder builder;
    const auto sensor =
        wire::CreateSensorInfo(builder, 1, builder.CreateString("t"), builder.CreateString("Cel"),
                               wire::SensorKind::Temperature);
    const std::vector<flatbuffers::Offset<wire::SensorInfo>> sensors(20'000, sensor);
    const auto sensor_vector = builder.CreateVector(sensors);
    const auto gateway_id = builder.CreateString("gw-1");
    const auto root = wire::CreateStatus(builder, 1, gateway_id, wire::StatusKind::Birth, 1, 1, kT0,
                                         true, 0, sensor_vector);
    builder.Finish(root, wire::StatusIdentifier());
    const Bytes payload(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
    EXPECT_LT(payload.size(), 100'000u);
    EXPECT_EQ(codeOf(decodeStatus(payload)), codec_reason::kVerifyFailed);

    // With the table limit lifted, the item and duplicate checks still stop it.
    DecodeLimits lifted;
    lifted.max_tables = 1'000'000;
    EXPECT_EQ(codeOf(decodeStatus(payload, lifted)), codec_reason::kTooManyItems);
    lifted.max_items = 1'000'000;
    EXPECT_EQ(codeOf(decodeStatus(payload, lifted)), codec_reason::kDuplicateItem);
}

// The schema has no recursive tables, so nesting is bounded by the schema itself (two levels);
// the Verifier's depth limit is still set, and enforced.
TEST(CodecAdversarial, DepthLimitIsEnforced) {
    const auto payload = encodeStatus(testing::sampleStatus(), {Compression::None}).value();
    DecodeLimits limits;
    limits.max_depth = 2;
    EXPECT_EQ(codeOf(decodeStatus(payload, limits)), "");
    limits.max_depth = 1;
    EXPECT_EQ(codeOf(decodeStatus(payload, limits)), codec_reason::kVerifyFailed);
}

TEST(CodecAdversarial, OversizeIsRejectedBeforeParsing) {
    auto payload = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    DecodeLimits limits;
    limits.max_message_bytes = payload.size() - 1;
    EXPECT_EQ(codeOf(decodeBatch(payload, limits)), codec_reason::kOversize);
    EXPECT_EQ(codeOf(decodeBatch(Bytes(300 * 1024, 0))), codec_reason::kOversize);
    EXPECT_EQ(codeOf(decodeBatch(Bytes{})), codec_reason::kEmpty);
}

Bytes zstdFrame(const Bytes& content, bool declare_size) {
    ZSTD_CCtx* context = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, declare_size ? 1 : 0);
    Bytes out(ZSTD_compressBound(content.size()));
    const auto written =
        ZSTD_compress2(context, out.data(), out.size(), content.data(), content.size());
    ZSTD_freeCCtx(context);
    out.resize(written);
    return out;
}

TEST(CodecAdversarial, DecompressionBombIsRejected) {
    const auto bomb = zstdFrame(Bytes(64 * 1024 * 1024, 0), true);
    ASSERT_LT(bomb.size(), 16 * 1024u);
    EXPECT_EQ(codeOf(decodeBatch(bomb)), codec_reason::kDecompressionBomb);
    // Without a declared size the decoder would have to allocate on a guess; refused.
    EXPECT_EQ(codeOf(decodeBatch(zstdFrame(Bytes(1000, 0), false))),
              codec_reason::kDecompressFailed);
    // A frame inside the limit is decompressed and then judged on its content.
    EXPECT_EQ(codeOf(decodeBatch(zstdFrame(Bytes(1000, 0), true))), codec_reason::kWrongIdentifier);

    const Bytes garbage = {0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x58, 0x01, 0x02, 0x03};
    EXPECT_EQ(codeOf(decodeBatch(garbage)), codec_reason::kDecompressFailed);
}

// One large string referenced by a thousand tables compresses to about a kilobyte; it must be
// refused where it lies, not after a thousand copies of it.
TEST(CodecAdversarial, SharedLargeStringIsRefusedBeforeItIsCopied) {
    flatbuffers::FlatBufferBuilder builder;
    const auto big = builder.CreateString(std::string(500'000, 'a'));
    const auto sensor = wire::CreateSensorInfo(builder, 1, big, big, wire::SensorKind::Temperature);
    const std::vector<flatbuffers::Offset<wire::SensorInfo>> sensors(1000, sensor);
    const auto sensor_vector = builder.CreateVector(sensors);
    const auto gateway_id = builder.CreateString("gw-1");
    builder.Finish(wire::CreateStatus(builder, 1, gateway_id, wire::StatusKind::Birth, 1, 1, kT0,
                                      true, 0, sensor_vector),
                   wire::StatusIdentifier());
    const auto payload = zstdFrame(
        Bytes(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()), true);
    ASSERT_LT(payload.size(), 4096u);
    const auto result = decodeStatus(payload);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, codec_reason::kInvalidString);
    EXPECT_NE(result.error().detail.find("sensor name"), std::string::npos);
}

// The largest status validation allows also passes the Verifier's table limit.
TEST(CodecAdversarial, LargestValidStatusDecodes) {
    GatewayStatus status = testing::sampleStatus();
    const DecodeLimits limits;
    status.sensors.clear();
    status.drops.clear();
    for (std::size_t i = 0; i < limits.max_items; ++i) {
        status.sensors.push_back(
            {static_cast<std::uint16_t>(i), "s" + std::to_string(i), "Cel", SensorKind::Other});
        status.drops.push_back({"reason-" + std::to_string(i), i, i});
    }
    const auto payload = encodeStatus(status);
    ASSERT_TRUE(payload) << payload.error().message();
    const auto decoded = decodeStatus(payload.value());
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(decoded.value(), status);
}

TEST(CodecAdversarial, UnalignedPayloadDecodes) {
    const auto payload = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    Bytes shifted(payload.size() + 1);
    std::memcpy(shifted.data() + 1, payload.data(), payload.size());
    const auto result = decodeBatch(std::span<const std::uint8_t>(shifted).subspan(1));
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(result.value(), testing::groupedBySensor(testing::sampleBatch()));
}

TEST(CodecAdversarial, ColumnsThatDisagreeWithTheirCountsAreRejected) {
    const auto with = [](auto change) {
        Columns c;
        change(c);
        return decodeColumns(c);
    };
    EXPECT_EQ(with([](Columns&) {}), "");
    EXPECT_EQ(with([](Columns& c) { c.counts = {3, 1}; }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.exponents = {}; }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.counts = {0}; }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.counts = {0xFFFFFFFF}; }), codec_reason::kTooManyItems);
    // Counts whose sum wraps a 32-bit size_t (on armhf) are still summed and refused in 64 bits.
    EXPECT_EQ(with([](Columns& c) {
                  c.sensors = {0, 1, 2};
                  c.counts = {0x80000000, 0x80000000, 16};
                  c.exponents = {0, 0, 0};
              }),
              codec_reason::kTooManyItems);
    // A count the value columns cannot hold is refused before readings are allocated for it.
    EXPECT_EQ(with([](Columns& c) { c.counts = {100'000}; }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.time_offsets = times(0, {1000}); }),
              codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) {
                  c.time_offsets = times(0, {1000, 0, 0});
              }),
              codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.values = varints({1, 1}); }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) {
                  c.values = varints({1, 1, 1, 1});
              }),
              codec_reason::kCountMismatch);
    // Raw doubles: too few, too many.
    EXPECT_EQ(with([](Columns& c) {
                  c.exponents = {-128};
                  c.values.clear();
                  c.raw_values = {1.0, 2.0};
              }),
              codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) {
                  c.exponents = {-128};
                  c.values.clear();
                  c.raw_values = {1.0, 2.0, 3.0, 4.0};
              }),
              codec_reason::kCountMismatch);
    // An eleven-byte varint.
    EXPECT_EQ(with([](Columns& c) { c.time_offsets = Bytes(11, 0xFF); }),
              codec_reason::kCountMismatch);
    // Mantissa and timestamp sums that overflow int64.
    EXPECT_EQ(with([](Columns& c) {
                  c.values = varints({INT64_MAX, 1, 0});
              }),
              codec_reason::kBadEncoding);
    EXPECT_EQ(with([](Columns& c) {
                  c.time_offsets = times(INT64_MAX / 2, {INT64_MAX, 0});
              }),
              codec_reason::kBadEncoding);
    EXPECT_EQ(with([](Columns& c) {
                  c.time_offsets = times(-kT0 - 1, {1, 0});
              }),
              codec_reason::kTimestampOutOfWindow);
    EXPECT_EQ(with([](Columns& c) { c.exponents = {40}; }), codec_reason::kBadEncoding);
    // Sharing the times of a series that is not there, or of another length.
    EXPECT_EQ(with([](Columns& c) { c.time_offsets = {0}; }), codec_reason::kBadEncoding);
    EXPECT_EQ(with([](Columns& c) {
                  c.sensors = {0, 1};
                  c.counts = {3, 2};
                  c.exponents = {-2, -2};
                  c.time_offsets = concat(times(0, {1000, 0}), {0});
                  c.values = varints({1, 1, 1, 1, 1});
              }),
              codec_reason::kBadEncoding);
    // Quality runs: unknown value, too long, too short, cut short.
    EXPECT_EQ(with([](Columns& c) { c.quality_runs = {3, 9}; }), codec_reason::kBadEnum);
    EXPECT_EQ(with([](Columns& c) { c.quality_runs = {4, 1}; }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.quality_runs = {2, 1}; }), codec_reason::kCountMismatch);
    EXPECT_EQ(with([](Columns& c) { c.quality_runs = {3}; }), codec_reason::kBadEncoding);
}

TEST(CodecAdversarial, SemanticErrorsAreNamed) {
    Columns two_series_one_sensor;
    two_series_one_sensor.sensors = {4, 4};
    two_series_one_sensor.counts = {1, 1};
    two_series_one_sensor.exponents = {0, 0};
    two_series_one_sensor.time_offsets = concat(times(0, {}), times(5, {}));
    two_series_one_sensor.values = varints({1, 1});
    EXPECT_EQ(decodeColumns(two_series_one_sensor), codec_reason::kDuplicateItem);

    Columns descending = two_series_one_sensor;
    descending.sensors = {5, 4};
    EXPECT_EQ(decodeColumns(descending), codec_reason::kBadEncoding);

    Columns unversioned;
    unversioned.schema_version = 0;
    EXPECT_EQ(decodeColumns(unversioned), codec_reason::kSchemaVersion);

    // A newer schema version is read: fields are only ever appended.
    Columns newer;
    newer.schema_version = 7;
    EXPECT_EQ(decodeColumns(newer), "");

    // A NaN smuggled in through the raw doubles.
    Columns nan;
    nan.exponents = {-128};
    nan.values.clear();
    nan.raw_values = {1.5, std::nan(""), 2.0};
    EXPECT_EQ(decodeColumns(nan), codec_reason::kNonFiniteValue);
}

}  // namespace
}  // namespace tern::shared
