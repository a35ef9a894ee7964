#pragma once

// Encoding and decoding of every Tern message (shared/schema/*.fbs).
//
// Decoding is the trust boundary: a payload is read only after (1) its size is checked against
// DecodeLimits, (2) a zstd frame, if that is what it is, is decompressed into a bounded buffer,
// (3) the FlatBuffers Verifier has accepted it at its exact length with tightened depth and table
// limits, and (4) every value has been validated (finite numbers, valid ids and strings, counts
// that agree, timestamps inside a window). Any failure returns an Error whose code names the
// reason (see codec_reason below); nothing is partially decoded, nothing throws.
//
// Encoders run the same value validation, so a message one Tern program encodes is never one
// another rejects for its values.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "tern/shared/messages.h"
#include "tern/shared/result.h"

namespace tern::shared {

using Bytes = std::vector<std::uint8_t>;

// The reasons a payload is rejected; stable strings, used as metric label values.
namespace codec_reason {
inline constexpr std::string_view kEmpty = "empty";
inline constexpr std::string_view kOversize = "oversize";
inline constexpr std::string_view kDecompressFailed = "decompress_failed";
inline constexpr std::string_view kDecompressionBomb = "decompression_bomb";
inline constexpr std::string_view kTruncated = "truncated";
inline constexpr std::string_view kWrongIdentifier = "wrong_identifier";
inline constexpr std::string_view kVerifyFailed = "verify_failed";
inline constexpr std::string_view kSchemaVersion = "bad_schema_version";
inline constexpr std::string_view kInvalidGatewayId = "invalid_gateway_id";
inline constexpr std::string_view kInvalidString = "invalid_string";
inline constexpr std::string_view kNonFiniteValue = "non_finite_value";
inline constexpr std::string_view kBadEncoding = "bad_encoding";
inline constexpr std::string_view kCountMismatch = "count_mismatch";
inline constexpr std::string_view kTooManyItems = "too_many_items";
inline constexpr std::string_view kDuplicateItem = "duplicate_item";
inline constexpr std::string_view kTimestampOutOfWindow = "timestamp_out_of_window";
inline constexpr std::string_view kBadEnum = "bad_enum";
inline constexpr std::string_view kBadRange = "bad_range";
}  // namespace codec_reason

// Event timestamps (Unix ms) outside [min_ms, max_ms] are rejected.
struct TimeWindow {
    std::int64_t min_ms = 0;
    std::int64_t max_ms = 0;
};

struct DecodeLimits {
    // As received: the MQTT payload, compressed or not. Match the broker's message_size_limit.
    std::size_t max_message_bytes = std::size_t{256} * 1024;
    // After decompression; a frame that declares more is a decompression bomb. Frames must
    // declare their size (Tern's encoders always do), so nothing is allocated on a guess.
    std::size_t max_decompressed_bytes = std::size_t{1024} * 1024;
    // The schema nests tables two deep (Status > SensorInfo, Command > Argument); one spare level.
    std::uint32_t max_depth = 3;
    // Tables visited by the Verifier, shared offsets counted each time they are reached. The
    // largest valid message is a Status with max_items sensors and max_items drop counters.
    std::uint32_t max_tables = 4096;
    std::size_t max_readings = 100'000;
    std::size_t max_items = 1024;  // series, aggregates, sensors, drops, ranges, arguments
    std::size_t max_string_bytes = 256;
    std::optional<TimeWindow> time_window;
};

enum class Compression {
    None,
    Zstd,
    // zstd when the payload has at least compress_min_bytes and zstd saves a quarter of them.
    // Small batches are already a few bytes a reading; decoding them skips zstd's per-frame cost.
    Auto,
};

struct EncodeOptions {
    Compression compression = Compression::Auto;
    int zstd_level = 3;
    std::size_t compress_min_bytes = 1024;
    // The largest message to produce: DecodeLimits' default, which the broker's limit matches.
    std::size_t max_message_bytes = DecodeLimits{}.max_message_bytes;
};

Result<Bytes> encodeBatch(const TelemetryBatch& batch, const EncodeOptions& options = {});
Result<Bytes> encodeAlert(const Alert& alert, const EncodeOptions& options = {});
Result<Bytes> encodeStatus(const GatewayStatus& status, const EncodeOptions& options = {});
Result<Bytes> encodeReceipt(const Receipt& receipt, const EncodeOptions& options = {});
Result<Bytes> encodeCommand(const Command& command, const EncodeOptions& options = {});
Result<Bytes> encodeCommandAck(const CommandAck& ack, const EncodeOptions& options = {});

Result<TelemetryBatch> decodeBatch(std::span<const std::uint8_t> payload,
                                   const DecodeLimits& limits = {});
Result<Alert> decodeAlert(std::span<const std::uint8_t> payload, const DecodeLimits& limits = {});
Result<GatewayStatus> decodeStatus(std::span<const std::uint8_t> payload,
                                   const DecodeLimits& limits = {});
Result<Receipt> decodeReceipt(std::span<const std::uint8_t> payload,
                              const DecodeLimits& limits = {});
Result<Command> decodeCommand(std::span<const std::uint8_t> payload,
                              const DecodeLimits& limits = {});
Result<CommandAck> decodeCommandAck(std::span<const std::uint8_t> payload,
                                    const DecodeLimits& limits = {});

// Value validation alone, as the decoders apply it after the Verifier; for code that builds
// messages from other input (a sensor, the HTTP API) and wants the wire's rules up front.
VoidResult validate(const TelemetryBatch& batch, const DecodeLimits& limits = {});
VoidResult validate(const Alert& alert, const DecodeLimits& limits = {});
VoidResult validate(const GatewayStatus& status, const DecodeLimits& limits = {});
VoidResult validate(const Receipt& receipt, const DecodeLimits& limits = {});
VoidResult validate(const Command& command, const DecodeLimits& limits = {});
VoidResult validate(const CommandAck& ack, const DecodeLimits& limits = {});

}  // namespace tern::shared
