#include "compression.h"

#include <fmt/format.h>
#include <zstd.h>

#include <memory>

#include "tern/shared/codec.h"

namespace tern::shared::compression {
namespace {

struct ContextDeleter {
    void operator()(ZSTD_CCtx* context) const { ZSTD_freeCCtx(context); }
    void operator()(ZSTD_DCtx* context) const { ZSTD_freeDCtx(context); }
};

// One context per thread: creating one per message costs more than compressing a small batch.
ZSTD_CCtx* compressionContext() {
    thread_local std::unique_ptr<ZSTD_CCtx, ContextDeleter> context{ZSTD_createCCtx()};
    return context.get();
}

ZSTD_DCtx* decompressionContext() {
    thread_local std::unique_ptr<ZSTD_DCtx, ContextDeleter> context{ZSTD_createDCtx()};
    return context.get();
}

}  // namespace

bool isZstdFrame(std::span<const std::uint8_t> payload) {
    return payload.size() >= 4 && payload[0] == 0x28 && payload[1] == 0xB5 && payload[2] == 0x2F &&
           payload[3] == 0xFD;
}

Result<std::vector<std::uint8_t>> compress(std::span<const std::uint8_t> input, int level) {
    std::vector<std::uint8_t> out(ZSTD_compressBound(input.size()));
    const std::size_t written = ZSTD_compressCCtx(compressionContext(), out.data(), out.size(),
                                                  input.data(), input.size(), level);
    if (ZSTD_isError(written)) {
        return Error::stop("compress_failed", ZSTD_getErrorName(written));
    }
    out.resize(written);
    return out;
}

Result<std::vector<std::uint8_t>> decompressBounded(std::span<const std::uint8_t> input,
                                                    std::size_t max_output) {
    const unsigned long long declared = ZSTD_getFrameContentSize(input.data(), input.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR) {
        return Error::drop(std::string(codec_reason::kDecompressFailed), "not a zstd frame");
    }
    // Without a declared size the only bound is max_output, allocated up front for every
    // payload; Tern's encoders always declare it, so a frame that does not is refused.
    if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
        return Error::drop(std::string(codec_reason::kDecompressFailed),
                           "zstd frame does not declare its size");
    }
    if (declared > max_output) {
        return Error::drop(std::string(codec_reason::kDecompressionBomb),
                           fmt::format("frame declares {} bytes, limit {}", declared, max_output));
    }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(declared));
    const std::size_t produced = ZSTD_decompressDCtx(decompressionContext(), out.data(), out.size(),
                                                     input.data(), input.size());
    if (ZSTD_isError(produced) || produced != out.size()) {
        return Error::drop(std::string(codec_reason::kDecompressFailed),
                           ZSTD_isError(produced) ? ZSTD_getErrorName(produced)
                                                  : "frame is shorter than it declares");
    }
    return out;
}

}  // namespace tern::shared::compression
