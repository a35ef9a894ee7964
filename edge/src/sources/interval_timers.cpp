#include "interval_timers.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <utility>

namespace tern::edge::detail {

struct IntervalTimers::State {
    struct Timer {
        Timer(boost::asio::io_context& io, std::chrono::milliseconds every)
            : timer(io), interval(every) {}
        boost::asio::steady_timer timer;
        std::chrono::milliseconds interval;
        std::chrono::steady_clock::time_point next;
    };

    bool stopped = false;
    OnTick on_tick;
    std::vector<std::unique_ptr<Timer>> timers;
};

void IntervalTimers::arm(const std::shared_ptr<State>& state, std::size_t group) {
    auto& entry = *state->timers[group];
    entry.timer.expires_at(entry.next);
    entry.timer.async_wait([state, group](const boost::system::error_code& ec) {
        if (ec || state->stopped) return;
        auto& fired = *state->timers[group];
        const auto now = std::chrono::steady_clock::now();
        fired.next += fired.interval;
        if (fired.next <= now) {
            // Behind by more than a period: skip the missed grid points.
            const auto missed = (now - fired.next) / fired.interval + 1;
            fired.next += missed * fired.interval;
        }
        if (fired.next - now < fired.interval / 2) {
            // A late tick would be followed almost at once by the next grid point: two samples
            // of a sensor within the same millisecond, which a store keyed by (sensor, time)
            // keeps only one of. Skip that grid point too.
            fired.next += fired.interval;
        }
        state->on_tick(group);
        // on_tick may have called stop().
        if (!state->stopped) arm(state, group);
    });
}

void IntervalTimers::start(boost::asio::io_context& io,
                           const std::vector<std::chrono::milliseconds>& intervals,
                           OnTick on_tick) {
    stop();
    state_ = std::make_shared<State>();
    state_->on_tick = std::move(on_tick);
    const auto now = std::chrono::steady_clock::now();
    for (const auto interval : intervals) {
        auto timer = std::make_unique<State::Timer>(io, interval);
        timer->next = now;
        state_->timers.push_back(std::move(timer));
    }
    for (std::size_t group = 0; group < state_->timers.size(); ++group) arm(state_, group);
}

void IntervalTimers::stop() {
    if (!state_) return;
    state_->stopped = true;
    for (auto& timer : state_->timers) timer->timer.cancel();
    // The pending handlers keep the state (and the timers in it) alive until they have run.
    state_.reset();
}

}  // namespace tern::edge::detail
