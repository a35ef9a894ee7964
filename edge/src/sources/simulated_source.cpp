#include "tern/edge/sources/simulated_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <utility>

#include "interval_timers.h"
#include "tern/edge/sources/source_metrics.h"

namespace tern::edge {
namespace {

constexpr std::string_view kSourceName = "simulated";
constexpr double kMillisPerHour = 3'600'000.0;

std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

bool active(const SimulatedFaultConfig& fault, std::chrono::milliseconds elapsed) {
    if (elapsed < fault.start) return false;
    return fault.duration.count() == 0 || elapsed < fault.start + fault.duration;
}

std::string checkSensor(const SimulatedSensorConfig& config) {
    if (config.model != "sine" && config.model != "random_walk" && config.model != "constant") {
        return "model \"" + config.model + "\" is not sine, random_walk or constant";
    }
    if (config.model == "sine" && config.period.count() <= 0) return "a sine needs a period";
    if (!(config.noise >= 0) || !(config.step >= 0) || !(config.resolution >= 0) ||
        !(config.amplitude >= 0)) {
        return "amplitude, noise, step and resolution must not be negative";
    }
    for (const auto& fault : config.faults) {
        if (fault.kind != "spike" && fault.kind != "drift" && fault.kind != "stuck" &&
            fault.kind != "dropout") {
            return "fault kind \"" + fault.kind + "\" is not spike, drift, stuck or dropout";
        }
        if (fault.start.count() < 0 || fault.duration.count() < 0) {
            return "fault start and duration must not be negative";
        }
    }
    return "";
}

}  // namespace

shared::ConfigTable<SimulatedFaultConfig> simulatedFaultTable() {
    using std::chrono::milliseconds;
    constexpr milliseconds kTenYears = std::chrono::hours(24 * 3650);
    return shared::ConfigTable<SimulatedFaultConfig>("fault", "A fault injected into the series")
        .string("kind", &SimulatedFaultConfig::kind, "spike", "what goes wrong",
                {.one_of = {"spike", "drift", "stuck", "dropout"}})
        .required()
        .duration("start", &SimulatedFaultConfig::start, milliseconds(0),
                  {milliseconds(0), kTenYears}, "when it begins, after the source starts")
        .duration("duration", &SimulatedFaultConfig::duration, milliseconds(0),
                  {milliseconds(0), kTenYears},
                  "how long it lasts; 0 = until the source stops (a spike: one reading)")
        .number("magnitude", &SimulatedFaultConfig::magnitude, 0.0, {-1e12, 1e12}, "",
                "spike: added to the value; drift: added per hour");
}

shared::ConfigTable<SimulatedSensorConfig> simulatedSensorTable() {
    using std::chrono::milliseconds;
    return shared::ConfigTable<SimulatedSensorConfig>("simulated", "A synthetic series")
        .string("model", &SimulatedSensorConfig::model, "sine", "shape of the series",
                {.one_of = {"sine", "random_walk", "constant"}})
        .number("base", &SimulatedSensorConfig::base, 0.0, {-1e12, 1e12}, "", "centre value")
        .number("amplitude", &SimulatedSensorConfig::amplitude, 0.0, {0.0, 1e12}, "",
                "sine: peak deviation; random_walk: bound around base (0 = unbounded)")
        .duration("period", &SimulatedSensorConfig::period, milliseconds(60000),
                  {milliseconds(1), std::chrono::hours(24 * 3650)}, "sine period")
        .number("noise", &SimulatedSensorConfig::noise, 0.0, {0.0, 1e12}, "",
                "standard deviation of the noise on each reading")
        .number("step", &SimulatedSensorConfig::step, 0.0, {0.0, 1e12}, "",
                "random_walk: standard deviation of each step")
        .number("resolution", &SimulatedSensorConfig::resolution, 0.0, {0.0, 1e12}, "",
                "readings are rounded to multiples of it; 0 = not rounded")
        .integer("seed", &SimulatedSensorConfig::seed, -1,
                 {-1, std::numeric_limits<std::int64_t>::max()}, "",
                 "generator seed; -1 = derived from the sensor index")
        .tables(&SimulatedSensorConfig::faults, simulatedFaultTable());
}

SimulatedSeries::SimulatedSeries(const SimulatedSensorConfig& config, std::uint16_t sensor)
    : config_(config), walk_(config.base), spiked_(config.faults.size(), false) {
    // xoshiro256** seeded through splitmix64, as its authors recommend; written out rather than
    // std::normal_distribution, whose output differs between standard libraries.
    std::uint64_t seed = config.seed >= 0 ? static_cast<std::uint64_t>(config.seed)
                                          : 0x5EED'0000'0000'0000ULL + sensor;
    for (auto& word : state_) word = splitmix64(seed);
}

std::uint64_t SimulatedSeries::nextBits() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
}

double SimulatedSeries::gaussian() {
    // Box-Muller; both uniforms in (0, 1), so the logarithm is finite.
    const double u1 = (static_cast<double>(nextBits() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = (static_cast<double>(nextBits() >> 11) + 0.5) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::optional<double> SimulatedSeries::next(std::chrono::milliseconds elapsed) {
    // Both draws happen on every reading, used or not, so the series after a fault is the one
    // there would have been without it.
    const double step = gaussian();
    const double noise = gaussian();

    double value = config_.base;
    if (config_.model == "sine") {
        const double phase = static_cast<double>(elapsed.count() % config_.period.count()) /
                             static_cast<double>(config_.period.count());
        value = config_.base + config_.amplitude * std::sin(2.0 * std::numbers::pi * phase);
    } else if (config_.model == "random_walk") {
        walk_ += config_.step * step;
        if (config_.amplitude > 0) {
            // Reflected at the bounds rather than clamped, so that the walk does not linger there.
            const double low = config_.base - config_.amplitude;
            const double high = config_.base + config_.amplitude;
            for (int i = 0; i < 4 && (walk_ < low || walk_ > high); ++i) {
                walk_ = walk_ < low ? 2 * low - walk_ : 2 * high - walk_;
            }
            walk_ = std::clamp(walk_, low, high);
        }
        value = walk_;
    }
    value += config_.noise * noise;

    bool stuck = false;
    bool dropped = false;
    for (std::size_t i = 0; i < config_.faults.size(); ++i) {
        const auto& fault = config_.faults[i];
        if (fault.kind == "spike") {
            if (fault.duration.count() == 0) {
                if (!spiked_[i] && elapsed >= fault.start) {
                    spiked_[i] = true;
                    value += fault.magnitude;
                }
            } else if (active(fault, elapsed)) {
                value += fault.magnitude;
            }
        } else if (!active(fault, elapsed)) {
            continue;
        } else if (fault.kind == "drift") {
            value += fault.magnitude * static_cast<double>((elapsed - fault.start).count()) /
                     kMillisPerHour;
        } else if (fault.kind == "stuck") {
            stuck = true;
        } else if (fault.kind == "dropout") {
            dropped = true;
        }
    }

    if (config_.resolution > 0) {
        const double units = value / config_.resolution;
        // Beyond 2^53 every double is already a whole number of units, and llround would overflow.
        if (std::abs(units) < 0x1.0p53) {
            // Dividing by the inverse rather than multiplying by the resolution gives the double
            // nearest to the decimal (2137 / 100.0 is 21.37; 2137 * 0.01 is 21.370000000000001).
            value = static_cast<double>(std::llround(units)) / (1.0 / config_.resolution);
        }
    }

    if (stuck) {
        // Frozen at the last reading before the fault, or its first one if there was none.
        if (!stuck_) stuck_ = last_.value_or(value);
        value = *stuck_;
    } else {
        stuck_.reset();
    }
    last_ = value;
    if (dropped) return std::nullopt;
    return value;
}

struct SimulatedSource::Impl {
    struct Channel {
        std::uint16_t sensor = 0;
        std::string problem;
        SimulatedSeries series;
    };

    Impl(std::vector<SimulatedSensor> sensors, const shared::Clock& clock_in,
         shared::MetricsRegistry& metrics)
        : clock(clock_in),
          origin(clock_in.monoNow()),
          samples(sourceSamplesCounter(metrics, kSourceName)),
          dropouts(sourceErrorsCounter(metrics, kSourceName, "simulated_dropout")) {
        std::map<std::chrono::milliseconds, std::vector<std::size_t>> by_interval;
        for (auto& sensor : sensors) {
            if (sensor.interval.count() <= 0) sensor.interval = std::chrono::seconds(1);
            by_interval[sensor.interval].push_back(channels.size());
            channels.push_back(Channel{sensor.sensor, checkSensor(sensor.config),
                                       SimulatedSeries(sensor.config, sensor.sensor)});
        }
        for (auto& [interval, members] : by_interval) {
            intervals.push_back(interval);
            groups.push_back(std::move(members));
        }
    }

    void read(Channel& channel, SampleSink& sink) {
        if (!channel.problem.empty()) return;
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::milliseconds>(clock.monoNow() - origin);
        const auto value = channel.series.next(elapsed);
        if (!value) {
            dropouts.inc();
            return;
        }
        sink.onSample(stampedSample(clock, channel.sensor, *value));
        samples.inc();
    }

    const shared::Clock& clock;
    shared::Clock::MonoTime origin;
    shared::Counter& samples;
    shared::Counter& dropouts;
    std::vector<Channel> channels;
    std::vector<std::chrono::milliseconds> intervals;
    std::vector<std::vector<std::size_t>> groups;
    detail::IntervalTimers timers;
};

shared::VoidResult SimulatedSource::validate(const std::vector<SimulatedSensor>& sensors) {
    std::string problems;
    for (const auto& sensor : sensors) {
        const std::string problem = checkSensor(sensor.config);
        if (!problem.empty()) {
            problems += "sensor " + std::to_string(sensor.sensor) + ": " + problem + "\n";
        }
    }
    if (problems.empty()) return shared::success();
    problems.pop_back();
    return shared::Error::stop("invalid_config", problems);
}

SimulatedSource::SimulatedSource(std::vector<SimulatedSensor> sensors, const shared::Clock& clock,
                                 shared::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(sensors), clock, metrics)) {}

SimulatedSource::~SimulatedSource() { stop(); }

void SimulatedSource::start(boost::asio::io_context& io, SampleSink& sink) {
    for (const auto& channel : impl_->channels) {
        if (!channel.problem.empty()) {
            spdlog::error("simulated sensor {}: {}; not read", channel.sensor, channel.problem);
        }
    }
    impl_->origin = impl_->clock.monoNow();
    impl_->timers.start(io, impl_->intervals, [impl = impl_.get(), &sink](std::size_t group) {
        for (const std::size_t index : impl->groups[group]) impl->read(impl->channels[index], sink);
    });
}

void SimulatedSource::stop() { impl_->timers.stop(); }

void SimulatedSource::pollOnce(SampleSink& sink) {
    for (auto& channel : impl_->channels) impl_->read(channel, sink);
}

}  // namespace tern::edge
