#pragma once

// Zigzag LEB128 varints, the integer encoding of the columnar Series (batch.fbs).

#include <cstdint>
#include <span>
#include <vector>

namespace tern::shared::varint {

inline std::uint64_t zigzag(std::int64_t value) {
    return (static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63);
}

inline std::int64_t unzigzag(std::uint64_t value) {
    return static_cast<std::int64_t>(value >> 1) ^ -static_cast<std::int64_t>(value & 1);
}

inline void put(std::vector<std::uint8_t>& out, std::uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<std::uint8_t>(value | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<std::uint8_t>(value));
}

inline void putSigned(std::vector<std::uint8_t>& out, std::int64_t value) {
    put(out, zigzag(value));
}

// Reads varints from untrusted bytes: every read is bounds-checked and a varint longer than ten
// bytes, or one whose tenth byte overflows 64 bits, is an error rather than a wrapped value.
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

    bool next(std::uint64_t& value) {
        value = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            if (pos_ >= bytes_.size()) return false;
            const std::uint8_t byte = bytes_[pos_++];
            if (shift == 63 && byte > 1) return false;
            value |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
            if ((byte & 0x80) == 0) return true;
        }
        return false;
    }

    bool nextSigned(std::int64_t& value) {
        std::uint64_t raw = 0;
        if (!next(raw)) return false;
        value = unzigzag(raw);
        return true;
    }

    bool atEnd() const { return pos_ == bytes_.size(); }

private:
    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
};

}  // namespace tern::shared::varint
