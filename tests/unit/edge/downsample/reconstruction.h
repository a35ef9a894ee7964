#pragma once

// Checks the swinging door's guarantee on one series: straight lines between consecutive kept
// points pass within `error` of every original reading at that reading's time.

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "tern/edge/sample.h"

namespace tern::edge::downsample_testing {

struct BoundCheck {
    std::string failure;  // empty when the guarantee holds
    std::size_t kept = 0;
    double worst_error = 0.0;  // largest distance of a reading from the reconstruction
};

// stream: every reading in the order it reached the downsampler, with a unique, increasing
// mono_ms (that is how emitted copies are matched to readings); forced[i]: reading i went to
// forceKeep instead of offer; emitted: what the downsampler sent, flush included.
inline BoundCheck checkReconstruction(const std::vector<Sample>& stream,
                                      const std::vector<bool>& forced,
                                      const std::vector<Sample>& emitted, double error,
                                      double tolerance) {
    BoundCheck check;
    auto fail = [&check](const std::string& why) {
        if (check.failure.empty()) check.failure = why;
    };
    std::vector<bool> kept(stream.size(), false);
    std::size_t next = 0;
    for (std::size_t i = 0; i < stream.size(); ++i) {
        if (next < emitted.size() && emitted[next] == stream[i]) {
            if (forced[i]) fail("forced reading " + std::to_string(i) + " was emitted");
            kept[i] = true;
            ++next;
        }
        if (forced[i]) kept[i] = true;
    }
    if (next != emitted.size()) {
        fail("emitted sample " + std::to_string(next) + " is not a reading, or out of order");
    }
    if (stream.empty()) return check;
    if (!kept.front()) fail("first reading not kept");
    if (!kept.back()) fail("last reading not kept");

    std::size_t previous = 0;
    for (std::size_t i = 0; i < stream.size(); ++i) {
        if (!kept[i]) continue;
        ++check.kept;
        for (std::size_t j = previous + 1; j < i; ++j) {
            const Sample& a = stream[previous];
            const Sample& b = stream[j];
            const Sample& c = stream[i];
            if (!(a.time_ms < b.time_ms && b.time_ms < c.time_ms)) {
                fail("reading " + std::to_string(j) + " is not strictly inside its segment");
                continue;
            }
            const double fraction = static_cast<double>(b.time_ms - a.time_ms) /
                                    static_cast<double>(c.time_ms - a.time_ms);
            const double line = a.value + (c.value - a.value) * fraction;
            const double distance = std::fabs(b.value - line);
            if (distance > check.worst_error || std::isnan(distance)) check.worst_error = distance;
            if (!(distance <= error + tolerance)) {
                std::ostringstream why;
                why.precision(17);
                why << "reading " << j << " (t=" << b.time_ms << ", v=" << b.value << ") is "
                    << distance << " from the line between kept readings " << previous << " and "
                    << i << "; error " << error;
                fail(why.str());
            }
        }
        previous = i;
    }
    return check;
}

}  // namespace tern::edge::downsample_testing
