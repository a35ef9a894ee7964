// The decoders face the network: every malformed payload must come back as an Error that names
// its reason, never a crash and never a partial read. Run under the asan-ubsan preset, an
// out-of-bounds read in any of these is a test failure.

#include <gtest/gtest.h>
#include <zstd.h>

#include <cstring>
#include <functional>

#include "sample_messages.h"
#include "tern/schema/batch_generated.h"
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
                const Bytes truncated(c.payload.begin(), c.payload.begin() + static_cast<long>(length));
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
    auto payload = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    const auto* batch = wire::GetBatch(payload.data());
    const auto* offsets = batch->series()->Get(0)->time_offsets();
    const auto length_at =
        reinterpret_cast<const std::uint8_t*>(offsets) - payload.data();  // the uint32 length prefix
    const std::uint32_t huge = 0x7FFFFFF0;
    std::memcpy(payload.data() + length_at, &huge, sizeof(huge));
    EXPECT_EQ(codeOf(decodeBatch(payload)), codec_reason::kVerifyFailed);

    // The series vector itself, claiming more offsets than the buffer holds.
    payload = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    const auto series_at = reinterpret_cast<const std::uint8_t*>(wire::GetBatch(payload.data())->series()) -
                           payload.data();
    const std::uint32_t many = static_cast<std::uint32_t>(payload.size());
    std::memcpy(payload.data() + series_at, &many, sizeof(many));
    EXPECT_EQ(codeOf(decodeBatch(payload)), codec_reason::kVerifyFailed);
}

Bytes finished(flatbuffers::FlatBufferBuilder& builder, flatbuffers::Offset<wire::Batch> root) {
    builder.Finish(root, wire::BatchIdentifier());
    return Bytes(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
}

flatbuffers::Offset<wire::Series> oneSeries(flatbuffers::FlatBufferBuilder& builder, std::uint16_t sensor,
                                            std::uint32_t count, const Bytes& times, const Bytes& values,
                                            const Bytes& quality = {}) {
    return wire::CreateSeries(builder, sensor, count, builder.CreateVector(times),
                              wire::ValueEncoding::DecimalDelta, -2, builder.CreateVector(values), 0,
                              quality.empty() ? 0 : builder.CreateVector(quality));
}

Bytes handBuiltBatch(const std::function<std::vector<flatbuffers::Offset<wire::Series>>(
                         flatbuffers::FlatBufferBuilder&)>& make_series,
                     std::uint16_t schema_version = 1) {
    flatbuffers::FlatBufferBuilder builder;
    const auto series = make_series(builder);
    const wire::Sequence sequence(1, 1);
    return finished(builder, wire::CreateBatch(builder, schema_version, builder.CreateString("gw-1"), &sequence,
                                               kT0, kT0, true, builder.CreateVector(series)));
}

Bytes varints(std::initializer_list<std::int64_t> values) {
    Bytes out;
    for (const auto v : values) varint::putSigned(out, v);
    return out;
}

// Many offsets to one table: a few kilobytes that would make the Verifier visit thousands of
// tables and the decoder produce a million readings.
TEST(CodecAdversarial, TableBombIsRejected) {
    const auto payload = handBuiltBatch([](auto& builder) {
        const auto shared = oneSeries(builder, 0, 3, varints({0, 1000, 0}), varints({2137, 1, -1}));
        return std::vector<flatbuffers::Offset<wire::Series>>(20'000, shared);
    });
    EXPECT_LT(payload.size(), 100'000u);
    EXPECT_EQ(codeOf(decodeBatch(payload)), codec_reason::kVerifyFailed);

    // With the table limit lifted, the item and duplicate checks still stop it.
    DecodeLimits lifted;
    lifted.max_tables = 1'000'000;
    EXPECT_EQ(codeOf(decodeBatch(payload, lifted)), codec_reason::kTooManyItems);
    lifted.max_items = 1'000'000;
    lifted.max_readings = 1'000'000;
    EXPECT_EQ(codeOf(decodeBatch(payload, lifted)), codec_reason::kDuplicateItem);
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
    const auto written = ZSTD_compress2(context, out.data(), out.size(), content.data(), content.size());
    ZSTD_freeCCtx(context);
    out.resize(written);
    return out;
}

TEST(CodecAdversarial, DecompressionBombIsRejected) {
    const Bytes zeros(64 * 1024 * 1024, 0);
    for (const bool declared : {true, false}) {
        const auto bomb = zstdFrame(zeros, declared);
        ASSERT_LT(bomb.size(), 16 * 1024u);
        EXPECT_EQ(codeOf(decodeBatch(bomb)), codec_reason::kDecompressionBomb) << "declared " << declared;
    }
    // A frame just inside the limit is decompressed and then judged on its content.
    EXPECT_EQ(codeOf(decodeBatch(zstdFrame(Bytes(1000, 0), false))), codec_reason::kWrongIdentifier);

    Bytes garbage = {0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x58, 0x01, 0x02, 0x03};
    EXPECT_EQ(codeOf(decodeBatch(garbage)), codec_reason::kDecompressFailed);
}

TEST(CodecAdversarial, UnalignedPayloadDecodes) {
    const auto payload = encodeBatch(testing::sampleBatch(), {Compression::None}).value();
    Bytes shifted(payload.size() + 1);
    std::memcpy(shifted.data() + 1, payload.data(), payload.size());
    const auto result = decodeBatch(std::span<const std::uint8_t>(shifted).subspan(1));
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(result.value(), testing::groupedBySensor(testing::sampleBatch()));
}

TEST(CodecAdversarial, SeriesThatDisagreeWithTheirCountAreRejected) {
    const auto decodeOne = [](const Bytes& times, const Bytes& values, std::uint32_t count,
                              const Bytes& quality = {}) {
        return codeOf(decodeBatch(handBuiltBatch([&](auto& builder) {
            return std::vector{oneSeries(builder, 0, count, times, values, quality)};
        })));
    };
    EXPECT_EQ(decodeOne(varints({0, 1000, 0}), varints({1, 1, 1}), 3), "");
    EXPECT_EQ(decodeOne(varints({0, 1000}), varints({1, 1, 1}), 3), codec_reason::kCountMismatch);
    EXPECT_EQ(decodeOne(varints({0, 1000, 0, 0}), varints({1, 1, 1}), 3), codec_reason::kCountMismatch);
    EXPECT_EQ(decodeOne(varints({0, 1000, 0}), varints({1, 1}), 3), codec_reason::kCountMismatch);
    EXPECT_EQ(decodeOne(varints({0, 1000, 0}), varints({1, 1, 1}), 0), codec_reason::kCountMismatch);
    EXPECT_EQ(decodeOne(varints({0, 1000, 0}), varints({1, 1, 1}), 0xFFFFFFFF), codec_reason::kTooManyItems);
    // An eleven-byte varint.
    EXPECT_EQ(decodeOne(Bytes(11, 0xFF), varints({1}), 1), codec_reason::kCountMismatch);
    // Mantissa and timestamp sums that overflow int64.
    EXPECT_EQ(decodeOne(varints({0, 1}), varints({INT64_MAX, 1}), 2), codec_reason::kBadEncoding);
    EXPECT_EQ(decodeOne(varints({INT64_MAX, 0}), varints({1, 1}), 2), codec_reason::kBadEncoding);
    EXPECT_EQ(decodeOne(varints({-kT0 - 1}), varints({1}), 1), codec_reason::kTimestampOutOfWindow);
    // Quality runs: unknown value, too long, too short.
    EXPECT_EQ(decodeOne(varints({0}), varints({1}), 1, Bytes{1, 9}), codec_reason::kBadEnum);
    EXPECT_EQ(decodeOne(varints({0}), varints({1}), 1, Bytes{2, 1}), codec_reason::kCountMismatch);
    EXPECT_EQ(decodeOne(varints({0, 0}), varints({1, 1}), 2, Bytes{1, 1}), codec_reason::kCountMismatch);
}

TEST(CodecAdversarial, SemanticErrorsAreNamed) {
    // Two series for one sensor.
    EXPECT_EQ(codeOf(decodeBatch(handBuiltBatch([](auto& builder) {
                  return std::vector{oneSeries(builder, 4, 1, varints({0}), varints({1})),
                                     oneSeries(builder, 4, 1, varints({5}), varints({1}))};
              }))),
              codec_reason::kDuplicateItem);
    // No schema version.
    EXPECT_EQ(codeOf(decodeBatch(handBuiltBatch([](auto&) { return std::vector<flatbuffers::Offset<wire::Series>>{}; },
                                                0))),
              codec_reason::kSchemaVersion);
    // A newer schema version is read: fields are only ever appended.
    EXPECT_EQ(codeOf(decodeBatch(handBuiltBatch([](auto&) { return std::vector<flatbuffers::Offset<wire::Series>>{}; },
                                                7))),
              "");
    // A NaN smuggled in through the raw encoding.
    flatbuffers::FlatBufferBuilder builder;
    const std::vector<double> raw = {1.5, std::nan("")};
    const auto series = wire::CreateSeries(builder, 0, 2, builder.CreateVector(varints({0, 10})),
                                           wire::ValueEncoding::Float64, 0, 0, builder.CreateVector(raw));
    const wire::Sequence sequence(1, 1);
    const auto payload = finished(builder, wire::CreateBatch(builder, 1, builder.CreateString("gw-1"), &sequence,
                                                             kT0, kT0, true, builder.CreateVector(&series, 1)));
    EXPECT_EQ(codeOf(decodeBatch(payload)), codec_reason::kNonFiniteValue);
}

}  // namespace
}  // namespace tern::shared
