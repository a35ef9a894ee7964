#include "tern/shared/codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "compression.h"
#include "tern/schema/alert_generated.h"
#include "tern/schema/batch_generated.h"
#include "tern/schema/command_ack_generated.h"
#include "tern/schema/command_generated.h"
#include "tern/schema/receipt_generated.h"
#include "tern/schema/status_generated.h"
#include "tern/shared/topics.h"
#include "tern/shared/version.h"
#include "varint.h"

namespace tern::shared {
namespace {

namespace reason = codec_reason;
using flatbuffers::FlatBufferBuilder;

// Unix ms of 9999-12-31T23:59:59.999Z. Timestamps are checked against [0, kMaxTimeMs] before any
// arithmetic, so no difference of two checked timestamps can overflow.
constexpr std::int64_t kMaxTimeMs = 253'402'300'799'999;
// The decimal exponents a DecimalDelta series may carry; 10^|e| is exact in a double up to 22.
constexpr int kMinDecimalExponent = -15;
constexpr int kMaxDecimalExponent = 15;
// Encoders try exponents 0, -1, ... down to this: a billionth covers every real sensor.
constexpr int kFinestEncodedExponent = -9;
// A mantissa beyond 2^53 is no longer exact in a double.
constexpr double kMaxExactMantissa = 9007199254740992.0;

constexpr std::array<double, 23> kPowersOfTen = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

Error reject(std::string_view code, std::string detail) {
    return Error::drop(std::string(code), std::move(detail));
}

// Decoders and encoders must agree bit for bit, so both reconstruct through this one function:
// one correctly rounded IEEE operation on exact operands.
double fromDecimal(std::int64_t mantissa, int exponent) {
    const auto m = static_cast<double>(mantissa);
    return exponent >= 0 ? m * kPowersOfTen[static_cast<std::size_t>(exponent)]
                         : m / kPowersOfTen[static_cast<std::size_t>(-exponent)];
}

// The coarsest exponent at which every value round-trips exactly, if there is one.
std::optional<int> chooseDecimalExponent(const std::vector<double>& values) {
    for (int exponent = 0; exponent >= kFinestEncodedExponent; --exponent) {
        const double scale = kPowersOfTen[static_cast<std::size_t>(-exponent)];
        const bool exact = std::all_of(values.begin(), values.end(), [&](double value) {
            const double scaled = value * scale;
            if (!(std::fabs(scaled) < kMaxExactMantissa)) return false;
            // Bits, not ==: -0.0 would otherwise come back as +0.0.
            return std::bit_cast<std::uint64_t>(fromDecimal(std::llround(scaled), exponent)) ==
                   std::bit_cast<std::uint64_t>(value);
        });
        if (exact) return exponent;
    }
    return std::nullopt;
}

// ---- value validation, shared by encoders and decoders ------------------------------------

VoidResult checkString(std::string_view what, std::string_view text, const DecodeLimits& limits,
                       bool allow_empty) {
    if (!allow_empty && text.empty())
        return reject(reason::kInvalidString, fmt::format("{} is empty", what));
    if (text.size() > limits.max_string_bytes) {
        return reject(reason::kInvalidString, fmt::format("{} is {} bytes, over {}", what,
                                                          text.size(), limits.max_string_bytes));
    }
    if (text.find('\0') != std::string_view::npos || !isValidUtf8(text)) {
        return reject(reason::kInvalidString, fmt::format("{} is not NUL-free UTF-8", what));
    }
    return success();
}

VoidResult checkGatewayId(std::string_view id) {
    if (auto ok = validateGatewayId(id); !ok) {
        return reject(reason::kInvalidGatewayId, ok.error().detail);
    }
    return success();
}

VoidResult checkFinite(std::string_view what, double value) {
    if (!std::isfinite(value)) {
        return reject(reason::kNonFiniteValue, fmt::format("{} is {}", what, value));
    }
    return success();
}

// Any wall-clock time a message carries: inside [1970, 9999].
VoidResult checkClockTime(std::string_view what, std::int64_t ms) {
    if (ms < 0 || ms > kMaxTimeMs) {
        return reject(reason::kTimestampOutOfWindow,
                      fmt::format("{} {} ms is outside 1970..9999", what, ms));
    }
    return success();
}

// When something happened: also inside the configured window, if there is one.
VoidResult checkEventTime(std::string_view what, std::int64_t ms, const DecodeLimits& limits) {
    if (auto ok = checkClockTime(what, ms); !ok) return ok;
    if (limits.time_window &&
        (ms < limits.time_window->min_ms || ms > limits.time_window->max_ms)) {
        return reject(reason::kTimestampOutOfWindow,
                      fmt::format("{} {} ms is outside [{}, {}]", what, ms,
                                  limits.time_window->min_ms, limits.time_window->max_ms));
    }
    return success();
}

// The inclusive range checkEventTime accepts.
std::pair<std::int64_t, std::int64_t> eventTimeBounds(const DecodeLimits& limits) {
    if (!limits.time_window) return {0, kMaxTimeMs};
    return {std::max<std::int64_t>(0, limits.time_window->min_ms),
            std::min(kMaxTimeMs, limits.time_window->max_ms)};
}

VoidResult checkSequence(const Sequence& sequence) {
    if (sequence.epoch == 0 || sequence.seq == 0) {
        return reject(reason::kBadRange, "epoch and seq start at 1");
    }
    return success();
}

VoidResult checkCount(std::string_view what, std::uint64_t count, std::uint64_t limit) {
    if (count > limit) {
        return reject(reason::kTooManyItems,
                      fmt::format("{} {} over the limit of {}", count, what, limit));
    }
    return success();
}

template <class Enum>
VoidResult checkEnum(std::string_view what, Enum value, Enum last) {
    if (static_cast<unsigned>(value) > static_cast<unsigned>(last)) {
        return reject(reason::kBadEnum,
                      fmt::format("{} has unknown value {}", what, static_cast<unsigned>(value)));
    }
    return success();
}

// Stops at the first failure: `TERN_CHECK(expr)` returns expr's error from the enclosing function.
#define TERN_CHECK(expr)                                                                    \
    do {                                                                                    \
        if (auto tern_check_ = (expr); !tern_check_) return std::move(tern_check_).error(); \
    } while (false)

VoidResult checkAggregate(const Aggregate& aggregate, const DecodeLimits& limits) {
    TERN_CHECK(checkEventTime("aggregate start", aggregate.start_ms, limits));
    TERN_CHECK(checkFinite("aggregate min", aggregate.min));
    TERN_CHECK(checkFinite("aggregate max", aggregate.max));
    TERN_CHECK(checkFinite("aggregate mean", aggregate.mean));
    TERN_CHECK(checkFinite("aggregate last", aggregate.last));
    TERN_CHECK(checkEnum("aggregate quality", aggregate.quality, Quality::TimeUncertain));
    if (aggregate.count == 0 || aggregate.window_ms == 0 || aggregate.min > aggregate.max) {
        return reject(
            reason::kBadRange,
            fmt::format(
                "aggregate of sensor {} is inconsistent (count {}, window {} ms, min > max: {})",
                aggregate.sensor, aggregate.count, aggregate.window_ms,
                aggregate.min > aggregate.max));
    }
    return success();
}

VoidResult checkRanges(std::string_view what, const std::vector<SeqRange>& ranges,
                       std::uint64_t must_exceed, const DecodeLimits& limits) {
    TERN_CHECK(checkCount(what, ranges.size(), limits.max_items));
    std::uint64_t floor = must_exceed;
    for (const auto& range : ranges) {
        if (range.first > range.last || range.first <= floor) {
            return reject(reason::kBadRange,
                          fmt::format("{} [{}, {}] is not ascending, disjoint and above {}", what,
                                      range.first, range.last, must_exceed));
        }
        floor = range.last;
    }
    return success();
}

// ---- the trust boundary -------------------------------------------------------------------

// Size limits, bounded decompression, alignment: returns the bytes the Verifier will see, either
// the payload itself or a copy in `storage`.
Result<std::span<const std::uint8_t>> openPayload(std::span<const std::uint8_t> payload,
                                                  const DecodeLimits& limits, Bytes& storage) {
    if (payload.empty()) return reject(reason::kEmpty, "payload is empty");
    if (payload.size() > limits.max_message_bytes) {
        return reject(reason::kOversize, fmt::format("payload is {} bytes, limit {}",
                                                     payload.size(), limits.max_message_bytes));
    }
    if (compression::isZstdFrame(payload)) {
        auto inflated = compression::decompressBounded(payload, limits.max_decompressed_bytes);
        if (!inflated) return std::move(inflated).error();
        storage = std::move(inflated).value();
        return std::span<const std::uint8_t>(storage);
    }
    // FlatBuffers reads scalars in place; a payload at an odd address is copied to a heap block,
    // which is aligned for any scalar.
    if (reinterpret_cast<std::uintptr_t>(payload.data()) % alignof(std::max_align_t) != 0) {
        storage.assign(payload.begin(), payload.end());
        return std::span<const std::uint8_t>(storage);
    }
    return payload;
}

template <class Root>
Result<const Root*> verifiedRoot(std::span<const std::uint8_t> payload, const DecodeLimits& limits,
                                 const char* identifier, Bytes& storage) {
    auto opened = openPayload(payload, limits, storage);
    if (!opened) return std::move(opened).error();
    const auto buffer = opened.value();
    constexpr std::size_t kHeaderBytes =
        sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength;
    if (buffer.size() < kHeaderBytes) {
        return reject(reason::kTruncated,
                      fmt::format("{} bytes is shorter than a FlatBuffers header", buffer.size()));
    }
    // Every FlatBufferBuilder output is padded to a multiple of its root offset's size; a shorter
    // tail is a payload cut inside its padding, which would otherwise still verify.
    if (buffer.size() % sizeof(flatbuffers::uoffset_t) != 0) {
        return reject(reason::kTruncated,
                      fmt::format("{} bytes is not a whole number of 4-byte words", buffer.size()));
    }
    if (!flatbuffers::BufferHasIdentifier(buffer.data(), identifier)) {
        std::string seen;
        for (std::size_t i = 0; i < flatbuffers::kFileIdentifierLength; ++i) {
            seen += fmt::format("{:02x}", buffer[sizeof(flatbuffers::uoffset_t) + i]);
        }
        return reject(reason::kWrongIdentifier,
                      fmt::format("expected \"{}\", got 0x{}", identifier, seen));
    }
    flatbuffers::Verifier::Options options;
    options.max_depth = limits.max_depth;
    options.max_tables = limits.max_tables;
    options.check_alignment = true;
    flatbuffers::Verifier verifier(buffer.data(), buffer.size(), options);
    if (!verifier.VerifyBuffer<Root>(identifier)) {
        return reject(reason::kVerifyFailed,
                      fmt::format("{}-byte {} payload failed FlatBuffers verification",
                                  buffer.size(), identifier));
    }
    const Root* root = flatbuffers::GetRoot<Root>(buffer.data());
    if (root->schema_version() == 0) {
        return reject(reason::kSchemaVersion, "payload has no schema version");
    }
    // A newer schema_version is accepted: writers only append fields, which this reader ignores.
    return root;
}

std::string_view view(const flatbuffers::String* text) {
    return text == nullptr ? std::string_view{} : text->string_view();
}

// Many tables may point at one string, so a payload of a few kilobytes can reference a large
// string a thousand times: check each string where it lies and copy only what passes.
Result<std::string> takeString(std::string_view what, const flatbuffers::String* text,
                               const DecodeLimits& limits, bool allow_empty) {
    TERN_CHECK(checkString(what, view(text), limits, allow_empty));
    return std::string(view(text));
}

Result<std::string> takeGatewayId(const flatbuffers::String* text) {
    TERN_CHECK(checkGatewayId(view(text)));
    return std::string(view(text));
}

// Assigns a checked string to `target`, or returns the error from the enclosing function.
#define TERN_TAKE(target, expr)                                \
    do {                                                       \
        auto tern_take_ = (expr);                              \
        if (!tern_take_) return std::move(tern_take_).error(); \
        (target) = std::move(tern_take_).value();              \
    } while (false)

template <class T>
std::size_t sizeOf(const flatbuffers::Vector<T>* vector) {
    return vector == nullptr ? 0 : vector->size();
}

// FlatBuffers 2.0.8's Verifier checks a vector's length field for 4-byte alignment but not its
// elements for theirs, so a hostile offset can put doubles or 8-byte structs at an address that
// is 4 mod 8: undefined behaviour to read, and a fault on some ARM cores. The buffer starts at a
// max_align_t boundary (openPayload), so the absolute address tells.
template <class T>
VoidResult checkElementsAligned(std::string_view what, const flatbuffers::Vector<T>* vector,
                                std::size_t alignment) {
    // An empty vector has no elements to misread, and builders leave its data unaligned.
    if (vector != nullptr && vector->size() != 0 &&
        reinterpret_cast<std::uintptr_t>(vector->Data()) % alignment != 0) {
        return reject(reason::kVerifyFailed, fmt::format("{} are misaligned", what));
    }
    return success();
}

std::span<const std::uint8_t> bytesOf(const flatbuffers::Vector<std::uint8_t>* vector) {
    return vector == nullptr ? std::span<const std::uint8_t>{}
                             : std::span<const std::uint8_t>(vector->data(), vector->size());
}

// The builder's buffer, compressed when options say so and it pays, and never larger than a
// decoder accepts: a message that does not fit is an error (an edge splits its batch).
Result<Bytes> finish(const FlatBufferBuilder& builder, const EncodeOptions& options) {
    const std::span<const std::uint8_t> plain(builder.GetBufferPointer(), builder.GetSize());
    Bytes out;
    const bool try_zstd =
        options.compression == Compression::Zstd ||
        (options.compression == Compression::Auto &&
         (plain.size() >= options.compress_min_bytes || plain.size() > options.max_message_bytes));
    if (try_zstd) {
        auto packed = compression::compress(plain, options.zstd_level);
        if (!packed) return std::move(packed).error();
        const bool pays = packed.value().size() * 4 <= plain.size() * 3;
        const bool only_fit =
            plain.size() > options.max_message_bytes && packed.value().size() < plain.size();
        if (options.compression == Compression::Zstd || pays || only_fit)
            out = std::move(packed).value();
    }
    if (out.empty()) out.assign(plain.begin(), plain.end());
    if (out.size() > options.max_message_bytes) {
        return Error::drop(std::string(reason::kOversize),
                           fmt::format("message is {} bytes, over the {}-byte limit", out.size(),
                                       options.max_message_bytes));
    }
    return out;
}

wire::Sequence toWire(const Sequence& sequence) {
    return wire::Sequence(sequence.epoch, sequence.seq);
}
Sequence fromWire(const wire::Sequence* sequence) {
    return sequence == nullptr ? Sequence{} : Sequence{sequence->epoch(), sequence->seq()};
}

std::vector<wire::SeqRange> toWire(const std::vector<SeqRange>& ranges) {
    std::vector<wire::SeqRange> out;
    out.reserve(ranges.size());
    for (const auto& range : ranges) out.emplace_back(range.first, range.last);
    return out;
}
std::vector<SeqRange> fromWire(const flatbuffers::Vector<const wire::SeqRange*>* ranges) {
    std::vector<SeqRange> out;
    if (ranges == nullptr) return out;
    out.reserve(ranges->size());
    for (const auto* range : *ranges) out.push_back({range->first(), range->last()});
    return out;
}

// ---- Batch: the columns -----------------------------------------------------------------------

constexpr std::int8_t kRawDoubles = -128;  // decimal_exponents entry for a Float64 series

struct BatchColumns {
    std::vector<std::uint16_t> sensors;
    std::vector<std::uint32_t> counts;
    std::vector<std::int8_t> exponents;
    Bytes times;
    Bytes values;
    std::vector<double> raw_values;
};

bool sameTimes(std::span<const Reading* const> a, std::span<const Reading* const> b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](const Reading* x, const Reading* y) { return x->time_ms == y->time_ms; });
}

void appendSeries(BatchColumns& columns, std::int64_t base_ms,
                  std::span<const Reading* const> readings,
                  std::span<const Reading* const> previous) {
    columns.sensors.push_back(readings.front()->sensor);
    columns.counts.push_back(static_cast<std::uint32_t>(readings.size()));

    if (!previous.empty() && sameTimes(readings, previous)) {
        varint::put(columns.times, 0);
    } else {
        std::int64_t previous_time = base_ms;
        std::int64_t previous_delta = 0;
        for (std::size_t i = 0; i < readings.size(); ++i) {
            const std::int64_t delta = readings[i]->time_ms - previous_time;
            if (i == 0) {
                varint::put(columns.times, varint::zigzag(delta) + 1);
            } else {
                varint::putSigned(columns.times, i == 1 ? delta : delta - previous_delta);
            }
            previous_delta = i == 0 ? 0 : delta;
            previous_time = readings[i]->time_ms;
        }
    }

    std::vector<double> values;
    values.reserve(readings.size());
    for (const auto* reading : readings) values.push_back(reading->value);
    const auto exponent = chooseDecimalExponent(values);
    if (!exponent) {
        columns.exponents.push_back(kRawDoubles);
        columns.raw_values.insert(columns.raw_values.end(), values.begin(), values.end());
        return;
    }
    columns.exponents.push_back(static_cast<std::int8_t>(*exponent));
    const double scale = kPowersOfTen[static_cast<std::size_t>(-*exponent)];
    std::int64_t previous_mantissa = 0;
    for (const double value : values) {
        const std::int64_t mantissa = std::llround(value * scale);
        varint::putSigned(columns.values, mantissa - previous_mantissa);
        previous_mantissa = mantissa;
    }
}

Bytes qualityRuns(std::span<const Reading* const> readings) {
    Bytes runs;
    if (std::all_of(readings.begin(), readings.end(),
                    [](const Reading* r) { return r->quality == Quality::Good; })) {
        return runs;
    }
    std::size_t run_start = 0;
    for (std::size_t i = 1; i <= readings.size(); ++i) {
        if (i == readings.size() || readings[i]->quality != readings[run_start]->quality) {
            varint::put(runs, i - run_start);
            varint::put(runs, static_cast<std::uint64_t>(readings[run_start]->quality));
            run_start = i;
        }
    }
    return runs;
}

// Fills sensor, time and value of the readings of every series; `readings` is sized already.
VoidResult decodeColumns(const wire::Batch& root, std::span<Reading> readings) {
    const auto* sensors = root.sensors();
    const auto* counts = root.counts();
    const auto* exponents = root.decimal_exponents();
    const auto* raw = root.raw_values();
    varint::Reader times(bytesOf(root.time_offsets()));
    varint::Reader values(bytesOf(root.values()));
    std::size_t raw_next = 0;
    std::size_t next = 0;
    std::span<const Reading> previous;
    for (flatbuffers::uoffset_t s = 0; s < sizeOf(sensors); ++s) {
        const std::uint16_t sensor = sensors->Get(s);
        const std::uint32_t count = counts->Get(s);
        const auto fail = [&](std::string_view code, std::string_view what) {
            return reject(code, fmt::format("series of sensor {}: {}", sensor, what));
        };
        auto series = readings.subspan(next, count);
        next += count;

        std::uint64_t header = 0;
        if (!times.next(header)) return fail(reason::kCountMismatch, "no time offsets");
        if (header == 0) {
            if (previous.size() != count)
                return fail(reason::kBadEncoding, "shares the times of a series of another length");
            for (std::uint32_t i = 0; i < count; ++i) series[i].time_ms = previous[i].time_ms;
        } else {
            std::int64_t time = root.base_time_ms();
            std::int64_t delta = 0;
            for (std::uint32_t i = 0; i < count; ++i) {
                std::int64_t step = 0;
                if (i == 0) {
                    step = varint::unzigzag(header - 1);
                } else if (!times.nextSigned(step)) {
                    return fail(reason::kCountMismatch, "fewer time offsets than readings");
                }
                if (i >= 2 && __builtin_add_overflow(delta, step, &step))
                    return fail(reason::kBadEncoding, "time delta overflows");
                if (__builtin_add_overflow(time, step, &time))
                    return fail(reason::kBadEncoding, "timestamp overflows");
                delta = i == 0 ? 0 : step;
                series[i].time_ms = time;
            }
        }

        const std::int8_t stored_exponent = exponents->Get(s);
        const int exponent = stored_exponent;
        if (exponent == kRawDoubles) {
            if (sizeOf(raw) - raw_next < count)
                return fail(reason::kCountMismatch, "fewer raw values than readings");
            for (std::uint32_t i = 0; i < count; ++i)
                series[i].value = raw->Get(static_cast<flatbuffers::uoffset_t>(raw_next + i));
            raw_next += count;
        } else {
            if (exponent < kMinDecimalExponent || exponent > kMaxDecimalExponent) {
                return fail(reason::kBadEncoding,
                            fmt::format("decimal exponent {} out of range", exponent));
            }
            std::int64_t mantissa = 0;
            for (std::uint32_t i = 0; i < count; ++i) {
                std::int64_t step = 0;
                if (!values.nextSigned(step))
                    return fail(reason::kCountMismatch, "fewer values than readings");
                if (__builtin_add_overflow(mantissa, step, &mantissa))
                    return fail(reason::kBadEncoding, "value mantissa overflows");
                series[i].value = fromDecimal(mantissa, exponent);
            }
        }
        for (auto& reading : series) reading.sensor = sensor;
        previous = series;
    }
    if (!times.atEnd()) return reject(reason::kCountMismatch, "more time offsets than readings");
    if (!values.atEnd()) return reject(reason::kCountMismatch, "more values than readings");
    if (raw_next != sizeOf(raw))
        return reject(reason::kCountMismatch, "more raw values than readings");
    return success();
}

VoidResult decodeQualityRuns(std::span<const std::uint8_t> bytes, std::span<Reading> readings) {
    if (bytes.empty()) return success();
    varint::Reader runs(bytes);
    std::uint64_t filled = 0;
    while (!runs.atEnd()) {
        std::uint64_t length = 0;
        std::uint64_t quality = 0;
        if (!runs.next(length) || !runs.next(quality))
            return reject(reason::kBadEncoding, "truncated quality run");
        if (length == 0 || length > readings.size() - filled) {
            return reject(reason::kCountMismatch, "quality runs exceed the readings");
        }
        if (quality > static_cast<std::uint64_t>(Quality::TimeUncertain)) {
            return reject(reason::kBadEnum, fmt::format("unknown quality {}", quality));
        }
        for (std::uint64_t i = 0; i < length; ++i)
            readings[filled + i].quality = static_cast<Quality>(quality);
        filled += length;
    }
    if (filled != readings.size())
        return reject(reason::kCountMismatch, "quality runs cover fewer readings");
    return success();
}

}  // namespace

// ---- validate --------------------------------------------------------------------------------

VoidResult validate(const TelemetryBatch& batch, const DecodeLimits& limits) {
    TERN_CHECK(checkGatewayId(batch.gateway_id));
    TERN_CHECK(checkSequence(batch.sequence));
    TERN_CHECK(checkClockTime("sent_at", batch.sent_at_ms));
    TERN_CHECK(checkCount("readings", batch.readings.size(), limits.max_readings));
    TERN_CHECK(checkCount("aggregates", batch.aggregates.size(), limits.max_items));
    // The hot path of every decode: cheap tests first, the formatted reason only on failure.
    const auto [min_ms, max_ms] = eventTimeBounds(limits);
    for (const auto& reading : batch.readings) {
        const bool ok = std::isfinite(reading.value) && reading.time_ms >= min_ms &&
                        reading.time_ms <= max_ms && reading.quality <= Quality::TimeUncertain;
        if (ok) continue;
        TERN_CHECK(checkFinite(fmt::format("value of sensor {}", reading.sensor), reading.value));
        TERN_CHECK(checkEventTime("reading time", reading.time_ms, limits));
        TERN_CHECK(checkEnum("quality", reading.quality, Quality::TimeUncertain));
    }
    for (const auto& aggregate : batch.aggregates) TERN_CHECK(checkAggregate(aggregate, limits));
    return success();
}

VoidResult validate(const Alert& alert, const DecodeLimits& limits) {
    TERN_CHECK(checkGatewayId(alert.gateway_id));
    TERN_CHECK(checkSequence(alert.sequence));
    TERN_CHECK(checkString("rule", alert.rule, limits, false));
    TERN_CHECK(checkString("message", alert.message, limits, true));
    TERN_CHECK(checkFinite("alert value", alert.value));
    TERN_CHECK(checkEventTime("alert time", alert.time_ms, limits));
    TERN_CHECK(checkEnum("severity", alert.severity, Severity::Critical));
    TERN_CHECK(checkEnum("alert state", alert.state, AlertState::Resolved));
    return success();
}

VoidResult validate(const GatewayStatus& status, const DecodeLimits& limits) {
    TERN_CHECK(checkGatewayId(status.gateway_id));
    TERN_CHECK(checkEnum("status kind", status.kind, StatusKind::Update));
    TERN_CHECK(checkClockTime("sent_at", status.sent_at_ms));
    TERN_CHECK(checkClockTime("oldest backlog", status.oldest_backlog_ms));
    TERN_CHECK(checkString("firmware version", status.firmware_version, limits, true));
    TERN_CHECK(checkCount("sensors", status.sensors.size(), limits.max_items));
    TERN_CHECK(checkCount("drop counters", status.drops.size(), limits.max_items));
    std::vector<std::uint16_t> indexes;
    indexes.reserve(status.sensors.size());
    for (const auto& sensor : status.sensors) {
        TERN_CHECK(checkString("sensor name", sensor.name, limits, false));
        TERN_CHECK(checkString("sensor unit", sensor.unit, limits, true));
        TERN_CHECK(checkEnum("sensor kind", sensor.kind, SensorKind::Flow));
        indexes.push_back(sensor.index);
    }
    std::sort(indexes.begin(), indexes.end());
    if (std::adjacent_find(indexes.begin(), indexes.end()) != indexes.end()) {
        return reject(reason::kDuplicateItem, "two sensors share an index");
    }
    for (const auto& drop : status.drops)
        TERN_CHECK(checkString("drop reason", drop.reason, limits, false));
    return success();
}

VoidResult validate(const Receipt& receipt, const DecodeLimits& limits) {
    TERN_CHECK(checkGatewayId(receipt.gateway_id));
    if (receipt.epoch == 0) return reject(reason::kBadRange, "receipt epoch starts at 1");
    TERN_CHECK(checkClockTime("issued_at", receipt.issued_at_ms));
    return checkRanges("receipt range", receipt.ranges, receipt.cumulative_seq, limits);
}

VoidResult validate(const Command& command, const DecodeLimits& limits) {
    TERN_CHECK(checkGatewayId(command.gateway_id));
    if (auto ok = validateCommandName(command.name); !ok) {
        return reject(reason::kInvalidString, ok.error().detail);
    }
    TERN_CHECK(checkClockTime("issued_at", command.issued_at_ms));
    TERN_CHECK(checkClockTime("expires_at", command.expires_at_ms));
    TERN_CHECK(checkRanges("resend range", command.resend_ranges, 0, limits));
    if (!command.resend_ranges.empty() && command.epoch == 0) {
        return reject(reason::kBadRange, "resend ranges need an epoch (epochs start at 1)");
    }
    TERN_CHECK(checkCount("arguments", command.arguments.size(), limits.max_items));
    std::vector<std::string_view> keys;
    for (const auto& argument : command.arguments) {
        TERN_CHECK(checkString("argument key", argument.key, limits, false));
        TERN_CHECK(checkString("argument value", argument.value, limits, true));
        keys.push_back(argument.key);
    }
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) {
        return reject(reason::kDuplicateItem, "two arguments share a key");
    }
    return success();
}

VoidResult validate(const CommandAck& ack, const DecodeLimits& limits) {
    TERN_CHECK(checkGatewayId(ack.gateway_id));
    TERN_CHECK(checkEnum("command result", ack.result, CommandResult::Expired));
    TERN_CHECK(checkString("detail", ack.detail, limits, true));
    return checkClockTime("time", ack.time_ms);
}

// ---- Batch ------------------------------------------------------------------------------------

Result<Bytes> encodeBatch(const TelemetryBatch& batch, const EncodeOptions& options) {
    TERN_CHECK(validate(batch));
    // Group by sensor, keeping each sensor's readings in their original order.
    std::vector<const Reading*> ordered;
    ordered.reserve(batch.readings.size());
    for (const auto& reading : batch.readings) ordered.push_back(&reading);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const Reading* a, const Reading* b) { return a->sensor < b->sensor; });
    std::int64_t base_ms = 0;
    if (!ordered.empty()) {
        base_ms = std::min_element(
                      batch.readings.begin(), batch.readings.end(),
                      [](const Reading& a, const Reading& b) { return a.time_ms < b.time_ms; })
                      ->time_ms;
    }

    BatchColumns columns;
    columns.times.reserve(ordered.size());
    columns.values.reserve(ordered.size() * 2);
    const std::span<const Reading* const> all(ordered);
    std::span<const Reading* const> previous;
    for (std::size_t begin = 0; begin < ordered.size();) {
        std::size_t end = begin + 1;
        while (end < ordered.size() && ordered[end]->sensor == ordered[begin]->sensor) ++end;
        const auto series = all.subspan(begin, end - begin);
        appendSeries(columns, base_ms, series, previous);
        previous = series;
        begin = end;
    }
    TERN_CHECK(checkCount("series", columns.sensors.size(), DecodeLimits{}.max_items));
    const Bytes quality = qualityRuns(all);

    std::vector<wire::Aggregate> aggregates;
    aggregates.reserve(batch.aggregates.size());
    for (const auto& a : batch.aggregates) {
        aggregates.emplace_back(a.start_ms, a.window_ms, a.count, a.sensor,
                                static_cast<wire::Quality>(a.quality), a.min, a.max, a.mean,
                                a.last);
    }

    FlatBufferBuilder builder(256 + columns.times.size() + columns.values.size() +
                              columns.sensors.size() * 8);
    const auto gateway_id = builder.CreateString(batch.gateway_id);
    const auto sensors = builder.CreateVector(columns.sensors);
    const auto counts = builder.CreateVector(columns.counts);
    const auto exponents = builder.CreateVector(columns.exponents);
    const auto times = builder.CreateVector(columns.times);
    const auto values = columns.values.empty() ? 0 : builder.CreateVector(columns.values);
    const auto raw_values =
        columns.raw_values.empty() ? 0 : builder.CreateVector(columns.raw_values);
    const auto quality_runs = quality.empty() ? 0 : builder.CreateVector(quality);
    const auto aggregate_vector =
        aggregates.empty() ? 0 : builder.CreateVectorOfStructs(aggregates);
    const auto sequence = toWire(batch.sequence);
    wire::BatchBuilder root(builder);
    root.add_schema_version(static_cast<std::uint16_t>(schemaVersion()));
    root.add_gateway_id(gateway_id);
    root.add_sequence(&sequence);
    root.add_base_time_ms(base_ms);
    root.add_sent_at_ms(batch.sent_at_ms);
    root.add_clock_synced(batch.clock_synced);
    root.add_sensors(sensors);
    root.add_counts(counts);
    root.add_decimal_exponents(exponents);
    root.add_time_offsets(times);
    if (!values.IsNull()) root.add_values(values);
    if (!raw_values.IsNull()) root.add_raw_values(raw_values);
    if (!quality_runs.IsNull()) root.add_quality_runs(quality_runs);
    if (!aggregate_vector.IsNull()) root.add_aggregates(aggregate_vector);
    builder.Finish(root.Finish(), wire::BatchIdentifier());
    return finish(builder, options);
}

Result<TelemetryBatch> decodeBatch(std::span<const std::uint8_t> payload,
                                   const DecodeLimits& limits) {
    Bytes storage;
    auto verified = verifiedRoot<wire::Batch>(payload, limits, wire::BatchIdentifier(), storage);
    if (!verified) return std::move(verified).error();
    const wire::Batch& root = *verified.value();

    TelemetryBatch batch;
    TERN_TAKE(batch.gateway_id, takeGatewayId(root.gateway_id()));
    batch.sequence = fromWire(root.sequence());
    batch.sent_at_ms = root.sent_at_ms();
    batch.clock_synced = root.clock_synced();
    TERN_CHECK(checkClockTime("base time", root.base_time_ms()));

    const std::size_t series = sizeOf(root.sensors());
    TERN_CHECK(checkCount("series", series, limits.max_items));
    if (sizeOf(root.counts()) != series || sizeOf(root.decimal_exponents()) != series) {
        return reject(reason::kCountMismatch,
                      "sensors, counts and decimal_exponents differ in length");
    }
    TERN_CHECK(checkElementsAligned("raw values", root.raw_values(), alignof(double)));
    std::uint64_t total = 0;
    for (flatbuffers::uoffset_t s = 0; s < series; ++s) {
        if (root.counts()->Get(s) == 0)
            return reject(reason::kCountMismatch, "a series has no readings");
        total += root.counts()->Get(s);
    }
    TERN_CHECK(checkCount("readings", total, limits.max_readings));
    // Each reading needs a byte of `values` or a raw double: a count beyond that is a lie, and
    // is refused before memory is allocated for it.
    if (total > sizeOf(root.values()) + sizeOf(root.raw_values())) {
        return reject(reason::kCountMismatch,
                      fmt::format("{} readings claimed, the value columns hold fewer", total));
    }
    // One series per sensor, in ascending order, as the encoder writes them: a duplicate is
    // caught in the same pass.
    for (flatbuffers::uoffset_t s = 1; s < series; ++s) {
        const auto before = root.sensors()->Get(s - 1);
        const auto here = root.sensors()->Get(s);
        if (here == before)
            return reject(reason::kDuplicateItem, fmt::format("two series for sensor {}", here));
        if (here < before)
            return reject(reason::kBadEncoding, "series are not in ascending sensor order");
    }
    batch.readings.resize(total);
    TERN_CHECK(decodeColumns(root, batch.readings));
    TERN_CHECK(decodeQualityRuns(bytesOf(root.quality_runs()), batch.readings));

    TERN_CHECK(checkElementsAligned("aggregates", root.aggregates(), alignof(wire::Aggregate)));
    if (const auto* aggregates = root.aggregates(); aggregates != nullptr) {
        TERN_CHECK(checkCount("aggregates", aggregates->size(), limits.max_items));
        batch.aggregates.reserve(aggregates->size());
        for (const auto* a : *aggregates) {
            batch.aggregates.push_back({a->sensor(), a->start_ms(), a->window_ms(), a->count(),
                                        a->min(), a->max(), a->mean(), a->last(),
                                        static_cast<Quality>(a->quality())});
        }
    }
    TERN_CHECK(validate(batch, limits));
    return batch;
}

// ---- Alert ------------------------------------------------------------------------------------

Result<Bytes> encodeAlert(const Alert& alert, const EncodeOptions& options) {
    TERN_CHECK(validate(alert));
    FlatBufferBuilder builder(256);
    const auto gateway_id = builder.CreateString(alert.gateway_id);
    const auto rule = builder.CreateString(alert.rule);
    const auto message = builder.CreateString(alert.message);
    const auto sequence = toWire(alert.sequence);
    wire::AlertBuilder root(builder);
    root.add_schema_version(static_cast<std::uint16_t>(schemaVersion()));
    root.add_gateway_id(gateway_id);
    root.add_sequence(&sequence);
    root.add_incident_id(alert.incident_id);
    root.add_rule(rule);
    root.add_sensor(alert.sensor);
    root.add_severity(static_cast<wire::Severity>(alert.severity));
    root.add_state(static_cast<wire::AlertState>(alert.state));
    root.add_value(alert.value);
    root.add_time_ms(alert.time_ms);
    root.add_clock_synced(alert.clock_synced);
    root.add_message(message);
    builder.Finish(root.Finish(), wire::AlertIdentifier());
    return finish(builder, options);
}

Result<Alert> decodeAlert(std::span<const std::uint8_t> payload, const DecodeLimits& limits) {
    Bytes storage;
    auto verified = verifiedRoot<wire::Alert>(payload, limits, wire::AlertIdentifier(), storage);
    if (!verified) return std::move(verified).error();
    const wire::Alert& root = *verified.value();
    Alert alert;
    TERN_TAKE(alert.gateway_id, takeGatewayId(root.gateway_id()));
    alert.sequence = fromWire(root.sequence());
    alert.incident_id = root.incident_id();
    TERN_TAKE(alert.rule, takeString("rule", root.rule(), limits, false));
    alert.sensor = root.sensor();
    alert.severity = static_cast<Severity>(root.severity());
    alert.state = static_cast<AlertState>(root.state());
    alert.value = root.value();
    alert.time_ms = root.time_ms();
    alert.clock_synced = root.clock_synced();
    TERN_TAKE(alert.message, takeString("message", root.message(), limits, true));
    TERN_CHECK(validate(alert, limits));
    return alert;
}

// ---- Status -----------------------------------------------------------------------------------

Result<Bytes> encodeStatus(const GatewayStatus& status, const EncodeOptions& options) {
    TERN_CHECK(validate(status));
    FlatBufferBuilder builder(256 + status.sensors.size() * 48);
    std::vector<flatbuffers::Offset<wire::SensorInfo>> sensors;
    sensors.reserve(status.sensors.size());
    for (const auto& sensor : status.sensors) {
        sensors.push_back(wire::CreateSensorInfo(
            builder, sensor.index, builder.CreateString(sensor.name),
            builder.CreateString(sensor.unit), static_cast<wire::SensorKind>(sensor.kind)));
    }
    std::vector<flatbuffers::Offset<wire::DropCounter>> drops;
    drops.reserve(status.drops.size());
    for (const auto& drop : status.drops) {
        drops.push_back(wire::CreateDropCounter(builder, builder.CreateString(drop.reason),
                                                drop.batches, drop.readings));
    }
    const auto gateway_id = builder.CreateString(status.gateway_id);
    const auto firmware = builder.CreateString(status.firmware_version);
    const auto sensor_vector = builder.CreateVector(sensors);
    const auto drop_vector = builder.CreateVector(drops);
    wire::StatusBuilder root(builder);
    root.add_schema_version(static_cast<std::uint16_t>(schemaVersion()));
    root.add_gateway_id(gateway_id);
    root.add_kind(static_cast<wire::StatusKind>(status.kind));
    root.add_session(status.session);
    root.add_epoch(status.epoch);
    root.add_sent_at_ms(status.sent_at_ms);
    root.add_clock_synced(status.clock_synced);
    root.add_firmware_version(firmware);
    root.add_sensors(sensor_vector);
    root.add_backlog_batches(status.backlog_batches);
    root.add_backlog_bytes(status.backlog_bytes);
    root.add_oldest_backlog_ms(status.oldest_backlog_ms);
    root.add_drops(drop_vector);
    builder.Finish(root.Finish(), wire::StatusIdentifier());
    return finish(builder, options);
}

Result<GatewayStatus> decodeStatus(std::span<const std::uint8_t> payload,
                                   const DecodeLimits& limits) {
    Bytes storage;
    auto verified = verifiedRoot<wire::Status>(payload, limits, wire::StatusIdentifier(), storage);
    if (!verified) return std::move(verified).error();
    const wire::Status& root = *verified.value();
    GatewayStatus status;
    TERN_TAKE(status.gateway_id, takeGatewayId(root.gateway_id()));
    status.kind = static_cast<StatusKind>(root.kind());
    status.session = root.session();
    status.epoch = root.epoch();
    status.sent_at_ms = root.sent_at_ms();
    status.clock_synced = root.clock_synced();
    TERN_TAKE(status.firmware_version,
              takeString("firmware version", root.firmware_version(), limits, true));
    status.backlog_batches = root.backlog_batches();
    status.backlog_bytes = root.backlog_bytes();
    status.oldest_backlog_ms = root.oldest_backlog_ms();
    TERN_CHECK(checkCount("sensors", sizeOf(root.sensors()), limits.max_items));
    TERN_CHECK(checkCount("drop counters", sizeOf(root.drops()), limits.max_items));
    if (const auto* sensors = root.sensors(); sensors != nullptr) {
        for (const auto* sensor : *sensors) {
            SensorInfo info{sensor->index(), {}, {}, static_cast<SensorKind>(sensor->kind())};
            TERN_TAKE(info.name, takeString("sensor name", sensor->name(), limits, false));
            TERN_TAKE(info.unit, takeString("sensor unit", sensor->unit(), limits, true));
            status.sensors.push_back(std::move(info));
        }
    }
    if (const auto* drops = root.drops(); drops != nullptr) {
        for (const auto* drop : *drops) {
            DropCounter counter{{}, drop->batches(), drop->readings()};
            TERN_TAKE(counter.reason, takeString("drop reason", drop->reason(), limits, false));
            status.drops.push_back(std::move(counter));
        }
    }
    TERN_CHECK(validate(status, limits));
    return status;
}

// ---- Receipt ----------------------------------------------------------------------------------

Result<Bytes> encodeReceipt(const Receipt& receipt, const EncodeOptions& options) {
    TERN_CHECK(validate(receipt));
    FlatBufferBuilder builder(128 + receipt.ranges.size() * 16);
    const auto gateway_id = builder.CreateString(receipt.gateway_id);
    const auto ranges = builder.CreateVectorOfStructs(toWire(receipt.ranges));
    wire::ReceiptBuilder root(builder);
    root.add_schema_version(static_cast<std::uint16_t>(schemaVersion()));
    root.add_gateway_id(gateway_id);
    root.add_epoch(receipt.epoch);
    root.add_cumulative_seq(receipt.cumulative_seq);
    root.add_ranges(ranges);
    root.add_issued_at_ms(receipt.issued_at_ms);
    builder.Finish(root.Finish(), wire::ReceiptIdentifier());
    return finish(builder, options);
}

Result<Receipt> decodeReceipt(std::span<const std::uint8_t> payload, const DecodeLimits& limits) {
    Bytes storage;
    auto verified =
        verifiedRoot<wire::Receipt>(payload, limits, wire::ReceiptIdentifier(), storage);
    if (!verified) return std::move(verified).error();
    const wire::Receipt& root = *verified.value();
    TERN_CHECK(checkCount("receipt ranges", sizeOf(root.ranges()), limits.max_items));
    TERN_CHECK(checkElementsAligned("receipt ranges", root.ranges(), alignof(wire::SeqRange)));
    Receipt receipt;
    TERN_TAKE(receipt.gateway_id, takeGatewayId(root.gateway_id()));
    receipt.epoch = root.epoch();
    receipt.cumulative_seq = root.cumulative_seq();
    receipt.ranges = fromWire(root.ranges());
    receipt.issued_at_ms = root.issued_at_ms();
    TERN_CHECK(validate(receipt, limits));
    return receipt;
}

// ---- Command ----------------------------------------------------------------------------------

Result<Bytes> encodeCommand(const Command& command, const EncodeOptions& options) {
    TERN_CHECK(validate(command));
    FlatBufferBuilder builder(256);
    std::vector<flatbuffers::Offset<wire::Argument>> arguments;
    for (const auto& argument : command.arguments) {
        arguments.push_back(wire::CreateArgument(builder, builder.CreateString(argument.key),
                                                 builder.CreateString(argument.value)));
    }
    const auto gateway_id = builder.CreateString(command.gateway_id);
    const auto name = builder.CreateString(command.name);
    const auto ranges = builder.CreateVectorOfStructs(toWire(command.resend_ranges));
    const auto argument_vector = builder.CreateVector(arguments);
    wire::CommandBuilder root(builder);
    root.add_schema_version(static_cast<std::uint16_t>(schemaVersion()));
    root.add_gateway_id(gateway_id);
    root.add_command_id(command.command_id);
    root.add_name(name);
    root.add_issued_at_ms(command.issued_at_ms);
    root.add_expires_at_ms(command.expires_at_ms);
    root.add_epoch(command.epoch);
    root.add_resend_ranges(ranges);
    root.add_arguments(argument_vector);
    builder.Finish(root.Finish(), wire::CommandIdentifier());
    return finish(builder, options);
}

Result<Command> decodeCommand(std::span<const std::uint8_t> payload, const DecodeLimits& limits) {
    Bytes storage;
    auto verified =
        verifiedRoot<wire::Command>(payload, limits, wire::CommandIdentifier(), storage);
    if (!verified) return std::move(verified).error();
    const wire::Command& root = *verified.value();
    TERN_CHECK(checkCount("resend ranges", sizeOf(root.resend_ranges()), limits.max_items));
    TERN_CHECK(
        checkElementsAligned("resend ranges", root.resend_ranges(), alignof(wire::SeqRange)));
    TERN_CHECK(checkCount("arguments", sizeOf(root.arguments()), limits.max_items));
    Command command;
    TERN_TAKE(command.gateway_id, takeGatewayId(root.gateway_id()));
    command.command_id = root.command_id();
    TERN_TAKE(command.name, takeString("command name", root.name(), limits, false));
    command.issued_at_ms = root.issued_at_ms();
    command.expires_at_ms = root.expires_at_ms();
    command.epoch = root.epoch();
    command.resend_ranges = fromWire(root.resend_ranges());
    if (const auto* arguments = root.arguments(); arguments != nullptr) {
        for (const auto* argument : *arguments) {
            CommandArgument entry;
            TERN_TAKE(entry.key, takeString("argument key", argument->key(), limits, false));
            TERN_TAKE(entry.value, takeString("argument value", argument->value(), limits, true));
            command.arguments.push_back(std::move(entry));
        }
    }
    TERN_CHECK(validate(command, limits));
    return command;
}

// ---- CommandAck -------------------------------------------------------------------------------

Result<Bytes> encodeCommandAck(const CommandAck& ack, const EncodeOptions& options) {
    TERN_CHECK(validate(ack));
    FlatBufferBuilder builder(128);
    const auto gateway_id = builder.CreateString(ack.gateway_id);
    const auto detail = builder.CreateString(ack.detail);
    wire::CommandAckBuilder root(builder);
    root.add_schema_version(static_cast<std::uint16_t>(schemaVersion()));
    root.add_gateway_id(gateway_id);
    root.add_command_id(ack.command_id);
    root.add_result(static_cast<wire::CommandResult>(ack.result));
    root.add_detail(detail);
    root.add_time_ms(ack.time_ms);
    builder.Finish(root.Finish(), wire::CommandAckIdentifier());
    return finish(builder, options);
}

Result<CommandAck> decodeCommandAck(std::span<const std::uint8_t> payload,
                                    const DecodeLimits& limits) {
    Bytes storage;
    auto verified =
        verifiedRoot<wire::CommandAck>(payload, limits, wire::CommandAckIdentifier(), storage);
    if (!verified) return std::move(verified).error();
    const wire::CommandAck& root = *verified.value();
    CommandAck ack;
    TERN_TAKE(ack.gateway_id, takeGatewayId(root.gateway_id()));
    ack.command_id = root.command_id();
    ack.result = static_cast<CommandResult>(root.result());
    TERN_TAKE(ack.detail, takeString("detail", root.detail(), limits, true));
    ack.time_ms = root.time_ms();
    TERN_CHECK(validate(ack, limits));
    return ack;
}

}  // namespace tern::shared
