#pragma once

// One boost::asio::steady_timer per distinct poll interval, for the polled sources (sysfs,
// simulated). Private to edge/src/sources.
//
// Each timer fires once right away and then on a fixed grid (start + k * interval), so polls do
// not drift by the time a poll takes. A loop that falls behind skips the grid points it missed
// rather than bursting to catch up: a late reading is worth less than a fresh one.
//
// Threads and lifetime: start() and stop() run on the io_context's thread (or while it is not
// running). The handlers share a small state block with this object; stop() marks it stopped, so
// a handler that had already been queued when stop() ran returns without calling back, and one
// that runs after this object is gone touches only the shared state, never the owner.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

namespace tern::edge::detail {

class IntervalTimers {
public:
    // Called on the loop thread with the index of the interval that came due.
    using OnTick = std::function<void(std::size_t group)>;

    IntervalTimers() = default;
    IntervalTimers(const IntervalTimers&) = delete;
    IntervalTimers& operator=(const IntervalTimers&) = delete;
    ~IntervalTimers() { stop(); }

    // Intervals must be positive. A second start() without stop() replaces the running timers.
    void start(boost::asio::io_context& io, const std::vector<std::chrono::milliseconds>& intervals,
               OnTick on_tick);
    void stop();

private:
    struct State;
    static void arm(const std::shared_ptr<State>& state, std::size_t group);

    std::shared_ptr<State> state_;
};

}  // namespace tern::edge::detail
