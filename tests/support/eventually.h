#pragma once

// Polls a condition until it holds or a deadline passes: how the integration tests wait for
// another process without guessing a fixed sleep.

#include <chrono>
#include <thread>

namespace tern::test {

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(100)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(poll);
    }
    return predicate();
}

}  // namespace tern::test
