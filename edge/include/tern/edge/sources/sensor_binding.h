#pragma once

// What every source is told about a sensor it serves: the sensor's index (as on the wire), the
// source-specific part of its [[sensor]] entry, and how often to read it. The agent builds these
// from the [[sensor]] array; tests build them by hand.

#include <chrono>
#include <cstdint>

namespace tern::edge {

template <class PerSensor>
struct SensorBinding {
    std::uint16_t sensor = 0;
    PerSensor config{};
    // Polled sources read the sensor this often; pushed ones (line protocol) ignore it.
    std::chrono::milliseconds interval{1000};
};

}  // namespace tern::edge
