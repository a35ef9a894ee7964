// The swinging door's guarantee, checked on many random series: every original reading lies
// within `error` of the straight lines between kept points (emitted, forced, and the flushed
// tail), and the first and last readings are kept. Deterministic: a fixed seed, and random
// numbers drawn from the raw 64-bit engine output, not std:: distributions, whose algorithms
// differ between standard libraries.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "reconstruction.h"
#include "recording_callbacks.h"
#include "tern/edge/downsample/swinging_door.h"

namespace tern::edge {
namespace {

using downsample_testing::checkReconstruction;
using downsample_testing::RecordingCallbacks;

class Random {
public:
    explicit Random(std::uint64_t seed) : engine_(seed) {}

    double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    std::int64_t integer(std::int64_t lo, std::int64_t hi) {  // [lo, hi]
        return lo + static_cast<std::int64_t>(engine_() % static_cast<std::uint64_t>(hi - lo + 1));
    }
    bool chance(double p) { return uniform() < p; }
    double normal() {  // Box-Muller
        const double u = 1.0 - uniform();
        return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * uniform());
    }

private:
    std::mt19937_64 engine_;
};

enum class Family { RandomWalk, Steps, Noise, SineNoise, IrregularTime };
constexpr std::array<Family, 5> kFamilies = {Family::RandomWalk, Family::Steps, Family::Noise,
                                             Family::SineNoise, Family::IrregularTime};

const char* familyName(Family family) {
    switch (family) {
        case Family::RandomWalk:
            return "random_walk";
        case Family::Steps:
            return "steps";
        case Family::Noise:
            return "noise";
        case Family::SineNoise:
            return "sine_noise";
        case Family::IrregularTime:
            return "irregular_time";
    }
    return "?";
}

constexpr std::int64_t kT0 = 1'700'000'040'000;

// One series of a family, of n readings, at scale sigma around offset. Regular families read
// once a second; the irregular one has gaps from 0 (repeated timestamps) to 5 s and now and then
// a wall clock that steps back. mono_ms always rises, by at least 1 ms per reading.
std::vector<Sample> makeSeries(Family family, std::size_t n, double sigma, double offset,
                               Random& random) {
    std::vector<Sample> series;
    series.reserve(n);
    std::int64_t time_ms = kT0;
    std::int64_t mono_ms = 1'000;
    double level = offset;
    const double period = random.uniform(20.0, 200.0);
    for (std::size_t i = 0; i < n; ++i) {
        double value = 0.0;
        switch (family) {
            case Family::RandomWalk:
            case Family::IrregularTime:
                level += sigma * random.normal();
                value = level;
                break;
            case Family::Steps:
                if (random.chance(0.02)) level = offset + sigma * random.uniform(-10.0, 10.0);
                value = level;
                break;
            case Family::Noise:
                value = offset + sigma * random.normal();
                break;
            case Family::SineNoise:
                value = offset +
                        10.0 * sigma *
                            std::sin(2.0 * std::numbers::pi * static_cast<double>(i) / period) +
                        0.1 * sigma * random.normal();
                break;
        }
        std::int64_t step = 1'000;
        if (family == Family::IrregularTime) {
            step = random.chance(0.1) ? 0 : random.integer(1, 5'000);
            if (random.chance(0.01)) step = -random.integer(1, 60'000);
        }
        if (i > 0) {
            time_ms += step;
            mono_ms += std::max<std::int64_t>(step, 1);
        }
        series.push_back(Sample{7, time_ms, mono_ms, value, shared::Quality::Good});
    }
    return series;
}

struct FamilyTotals {
    std::size_t series = 0;
    std::size_t readings = 0;
    std::size_t kept = 0;
};

TEST(SwingingDoorPropertyTest, ReconstructionStaysWithinErrorOnRandomSeries) {
    constexpr int kSeriesPerFamily = 2'000;
    Random random(0x5eed'7e57'd00eULL);
    std::array<FamilyTotals, kFamilies.size()> totals{};
    RecordingCallbacks out;
    out.samples.reserve(1'000);
    std::vector<bool> forced;
    int failures = 0;

    for (int round = 0; round < kSeriesPerFamily; ++round) {
        for (std::size_t f = 0; f < kFamilies.size(); ++f) {
            const Family family = kFamilies[f];
            const std::size_t n = static_cast<std::size_t>(random.integer(1, 500));
            const double sigma = std::pow(10.0, random.uniform(-3.0, 4.0));
            const double offset = sigma * random.uniform(-1'000.0, 1'000.0);
            // From a hundredth of the noise to ten times it: from keeping nearly everything to
            // keeping very little.
            const double error = sigma * std::pow(10.0, random.uniform(-2.0, 1.0));
            const double force_rate = random.chance(0.5) ? 0.0 : random.uniform(0.0, 0.05);
            const std::int64_t max_interval_ms =
                random.chance(0.5) ? 0 : random.integer(2'000, 120'000);
            const std::vector<Sample> series = makeSeries(family, n, sigma, offset, random);

            SwingingDoorDownsampler sdt(
                {.error = error, .max_interval = std::chrono::milliseconds(max_interval_ms)});
            out.clear();
            forced.assign(n, false);
            double magnitude = error;
            for (std::size_t i = 0; i < n; ++i) {
                magnitude = std::max(magnitude, std::fabs(series[i].value));
                if (random.chance(force_rate)) {
                    forced[i] = true;
                    sdt.forceKeep(series[i], out);
                } else {
                    sdt.offer(series[i], out);
                }
                if (random.chance(0.05)) {
                    sdt.onTick(Tick{series[i].time_ms + 500, series[i].mono_ms + 500}, out);
                }
            }
            sdt.flush(out);

            const auto check =
                checkReconstruction(series, forced, out.samples, error, 1e-9 * magnitude);
            if (!check.failure.empty() && ++failures <= 5) {
                ADD_FAILURE() << familyName(family) << " round " << round << " n=" << n
                              << " sigma=" << sigma << " error=" << error << ": " << check.failure;
            }
            FamilyTotals& total = totals[f];
            ++total.series;
            total.readings += n;
            total.kept += check.kept;
        }
    }
    EXPECT_EQ(failures, 0);

    std::cout << "swinging door, random errors (0.01..10 sigma), random forced points:\n";
    for (std::size_t f = 0; f < kFamilies.size(); ++f) {
        const FamilyTotals& total = totals[f];
        const double ratio = static_cast<double>(total.readings) / static_cast<double>(total.kept);
        char line[160];
        std::snprintf(line, sizeof line,
                      "  %-15s %5zu series %8zu readings %8zu kept  ratio %.2f\n",
                      familyName(kFamilies[f]), total.series, total.readings, total.kept, ratio);
        std::cout << line;
        char value[32];
        std::snprintf(value, sizeof value, "%.2f", ratio);
        RecordProperty(std::string("compression_") + familyName(kFamilies[f]), value);
    }
}

// Ratios at fixed error / noise ratios, for the docs: 1 s readings, no forced points, no
// heartbeat, 20 series of 1000 readings per family and error.
TEST(SwingingDoorPropertyTest, ReportsCompressionAtFixedErrors) {
    Random random(0xc0ffeeULL);
    constexpr std::array<double, 4> kErrors = {0.1, 0.5, 1.0, 2.0};  // in units of sigma
    RecordingCallbacks out;
    out.samples.reserve(1'000);
    std::cout << "swinging door compression (readings / kept), sigma = 1:\n"
              << "  family           error=0.1  error=0.5    error=1    error=2\n";
    for (const Family family : kFamilies) {
        char line[160];
        int used = std::snprintf(line, sizeof line, "  %-15s", familyName(family));
        // The same series for every error, so that a row compares like with like.
        std::vector<std::vector<Sample>> family_series;
        for (int s = 0; s < 20; ++s) {
            family_series.push_back(makeSeries(family, 1'000, 1.0, 100.0, random));
        }
        for (double error : kErrors) {
            std::size_t readings = 0;
            std::size_t kept = 0;
            for (const std::vector<Sample>& series : family_series) {
                SwingingDoorDownsampler sdt({.error = error, .max_interval = {}});
                out.clear();
                for (const Sample& sample : series) sdt.offer(sample, out);
                sdt.flush(out);
                const auto check = checkReconstruction(
                    series, std::vector<bool>(series.size(), false), out.samples, error, 1e-9);
                EXPECT_EQ(check.failure, "");
                readings += series.size();
                kept += check.kept;
            }
            const double ratio = static_cast<double>(readings) / static_cast<double>(kept);
            used += std::snprintf(line + used, sizeof line - static_cast<std::size_t>(used),
                                  "%11.2f", ratio);
            char value[32];
            std::snprintf(value, sizeof value, "%.2f", ratio);
            char key[64];
            std::snprintf(key, sizeof key, "compression_%s_error_%g", familyName(family), error);
            RecordProperty(key, value);
            if (family == Family::Steps) {
                EXPECT_GT(ratio, 5.0);  // corners only, whatever the error
            }
            if (family == Family::SineNoise && error >= 1.0) {
                EXPECT_GT(ratio, 5.0);
            }
        }
        std::cout << line << "\n";
    }
}

}  // namespace
}  // namespace tern::edge
