#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <utility>

namespace tern::shared {

// Periodic work on an io_context: runs `work` every `period` from start() until cancel(). The
// next period starts after the work returns, so slow work delays rather than piles up.
class Every {
public:
    Every(boost::asio::io_context& io, std::chrono::steady_clock::duration period,
          std::function<void()> work)
        : timer_(io), period_(period), work_(std::move(work)) {}

    void start() {
        timer_.expires_after(period_);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            work_();
            start();
        });
    }
    void cancel() { timer_.cancel(); }

private:
    boost::asio::steady_timer timer_;
    std::chrono::steady_clock::duration period_;
    std::function<void()> work_;
};

}  // namespace tern::shared
