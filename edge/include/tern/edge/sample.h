#pragma once

// A reading as it moves through the edge pipeline. It carries two clocks: wall time, which goes
// on the wire and can jump (NTP, a board booting in 1970), and monotonic time, which measures
// durations (rule minimum durations, missing-data timeouts, batch age) and never goes back.

#include <cstdint>

#include "tern/shared/clock.h"
#include "tern/shared/messages.h"

namespace tern::edge {

struct Sample {
    std::uint16_t sensor = 0;  // index of the [[sensor]] entry in the config, as on the wire
    std::int64_t time_ms = 0;  // wall clock, Unix ms
    std::int64_t mono_ms = 0;  // monotonic clock, ms
    double value = 0.0;
    shared::Quality quality = shared::Quality::Good;

    friend bool operator==(const Sample&, const Sample&) = default;
};

inline std::int64_t monoMillis(shared::Clock::MonoTime t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A sample stamped now by clock.
inline Sample stampedSample(const shared::Clock& clock, std::uint16_t sensor, double value,
                            shared::Quality quality = shared::Quality::Good) {
    return Sample{sensor, shared::toUnixMillis(clock.wallNow()), monoMillis(clock.monoNow()), value,
                  quality};
}

inline shared::Reading toReading(const Sample& sample) {
    return shared::Reading{sample.sensor, sample.time_ms, sample.value, sample.quality};
}

}  // namespace tern::edge
