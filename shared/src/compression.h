#pragma once

// zstd for payloads. A zstd frame starts with 28 B5 2F FD; read as a FlatBuffers root offset that
// is ~4 GiB, far past any size limit, so the two can be told apart without a flag byte.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tern/shared/result.h"

namespace tern::shared::compression {

bool isZstdFrame(std::span<const std::uint8_t> payload);

Result<std::vector<std::uint8_t>> compress(std::span<const std::uint8_t> input, int level);

// Decompresses one frame that declares its size, of at most max_output bytes: a frame that
// declares more is a decompression bomb, one that declares nothing is refused.
Result<std::vector<std::uint8_t>> decompressBounded(std::span<const std::uint8_t> input,
                                                    std::size_t max_output);

}  // namespace tern::shared::compression
