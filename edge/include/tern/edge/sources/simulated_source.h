#pragma once

// Synthetic readings for demos, soak tests and benchmarks: a sine, a random walk or a constant,
// with Gaussian noise, rounded to the sensor's resolution, and with faults injected at set times
// (a spike, a drift, a stuck value, a dropout).
//
// Determinism: each sensor draws from a generator of its own, seeded from its `seed` (or from its
// index when no seed is given) and advanced once per reading whatever the faults do. The same
// config read at the same times therefore gives the same values, independent of the other
// sensors, of the platform's standard library, and of whether a fault hid some of them. Times are
// measured on the injected clock's monotonic time from start().

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tern/edge/source.h"
#include "tern/edge/sources/sensor_binding.h"
#include "tern/shared/clock.h"
#include "tern/shared/config.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// [[sensor.simulated.fault]]
struct SimulatedFaultConfig {
    std::string kind = "spike";          // "spike" | "drift" | "stuck" | "dropout"
    std::chrono::milliseconds start{0};  // after the source starts
    // 0 = until the source stops; for a spike, 0 = the one reading at or after start.
    std::chrono::milliseconds duration{0};
    // spike: added to the value; drift: added per hour since start. Unused by stuck and dropout.
    double magnitude = 0.0;
};

// [sensor.simulated]
struct SimulatedSensorConfig {
    std::string model = "sine";  // "sine" | "random_walk" | "constant"
    double base = 0.0;
    // sine: peak deviation from base; random_walk: bound on the walk around base (0 = unbounded).
    double amplitude = 0.0;
    std::chrono::milliseconds period{std::chrono::minutes(1)};  // sine
    double noise = 0.0;       // standard deviation of noise added to each reading
    double step = 0.0;        // random_walk: standard deviation of each step
    double resolution = 0.0;  // readings are multiples of it; 0 = not rounded
    std::int64_t seed = -1;   // -1 = derived from the sensor index
    std::vector<SimulatedFaultConfig> faults;
};

shared::ConfigTable<SimulatedFaultConfig> simulatedFaultTable();
shared::ConfigTable<SimulatedSensorConfig> simulatedSensorTable();

using SimulatedSensor = SensorBinding<SimulatedSensorConfig>;

// One sensor's series, without clocks or I/O.
class SimulatedSeries {
public:
    SimulatedSeries(const SimulatedSensorConfig& config, std::uint16_t sensor);

    // The reading at `elapsed` since the source started, or nullopt during a dropout. Calls must
    // come with non-decreasing elapsed times; each call is one reading.
    std::optional<double> next(std::chrono::milliseconds elapsed);

private:
    double gaussian();
    std::uint64_t nextBits();

    SimulatedSensorConfig config_;
    std::uint64_t state_[4] = {};
    double walk_ = 0.0;
    std::optional<double> last_;
    std::optional<double> stuck_;
    std::vector<bool> spiked_;  // per fault: a one-reading spike has fired
};

class SimulatedSource final : public Source {
public:
    // Checks what the config tables cannot: known model and fault kinds, a sine's period.
    static shared::VoidResult validate(const std::vector<SimulatedSensor>& sensors);

    // The simulator has no table of its own: everything is per sensor.
    SimulatedSource(std::vector<SimulatedSensor> sensors, const shared::Clock& clock,
                    shared::MetricsRegistry& metrics);
    ~SimulatedSource() override;
    SimulatedSource(const SimulatedSource&) = delete;
    SimulatedSource& operator=(const SimulatedSource&) = delete;

    // Restarts the fault clock, then reads each sensor at its interval (the first read at once).
    void start(boost::asio::io_context& io, SampleSink& sink) override;
    void stop() override;

    // Reads every sensor now, on the caller's thread. Before start(), times count from
    // construction.
    void pollOnce(SampleSink& sink);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::edge
