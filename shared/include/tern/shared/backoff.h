#pragma once

// Retry delays for everything that reconnects or retries: the edge uplink, the ingest's MQTT link
// and its sink workers. Exponential backoff with full jitter, so that many clients coming back
// after one outage spread out instead of arriving together.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace tern::shared {

// A random delay in [0, min(max_delay, min_delay * 2^attempt)].
inline std::chrono::milliseconds backoffDelay(unsigned attempt, std::chrono::milliseconds min_delay,
                                              std::chrono::milliseconds max_delay,
                                              std::mt19937_64& rng) {
    // Doubling stops at 2^20 so the shift never overflows; max_delay caps it long before.
    const auto shift = std::min(attempt, 20u);
    const std::int64_t ceiling =
        std::min<std::int64_t>(max_delay.count(), min_delay.count() * (std::int64_t{1} << shift));
    std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(ceiling, 0));
    return std::chrono::milliseconds{pick(rng)};
}

}  // namespace tern::shared
