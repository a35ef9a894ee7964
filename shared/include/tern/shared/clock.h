#pragma once

// Time as the pipeline sees it. Wall time stamps readings and can jump (NTP, a board booting in
// 1970); monotonic time measures intervals and never goes back. Everything that needs time takes
// a Clock& so tests drive it instead of sleeping.

#include <chrono>
#include <cstdint>
#include <mutex>

namespace tern::shared {

class Clock {
public:
    using WallTime = std::chrono::system_clock::time_point;
    using MonoTime = std::chrono::steady_clock::time_point;

    virtual ~Clock() = default;
    // Both are safe to call from any thread.
    virtual WallTime wallNow() const = 0;
    virtual MonoTime monoNow() const = 0;
};

class SystemClock final : public Clock {
public:
    WallTime wallNow() const override { return std::chrono::system_clock::now(); }
    MonoTime monoNow() const override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when told to. advance() moves both clocks together; setWall() makes the
// wall clock jump (as an NTP step does) while monotonic time stays put.
class ManualClock final : public Clock {
public:
    explicit ManualClock(WallTime wall_start = WallTime{}, MonoTime mono_start = MonoTime{})
        : wall_(wall_start), mono_(mono_start) {}

    WallTime wallNow() const override {
        std::lock_guard lock(mutex_);
        return wall_;
    }
    MonoTime monoNow() const override {
        std::lock_guard lock(mutex_);
        return mono_;
    }

    void advance(std::chrono::nanoseconds by) {
        std::lock_guard lock(mutex_);
        wall_ += std::chrono::duration_cast<WallTime::duration>(by);
        mono_ += std::chrono::duration_cast<MonoTime::duration>(by);
    }
    void setWall(WallTime wall) {
        std::lock_guard lock(mutex_);
        wall_ = wall;
    }

private:
    mutable std::mutex mutex_;
    WallTime wall_;
    MonoTime mono_;
};

// 2025-01-01T00:00:00Z, before any Tern release: a wall clock reading earlier than this has not
// been set (a board without a real-time clock boots in 1970), whatever the kernel says.
inline constexpr std::int64_t kEarliestPlausibleUnixMs = 1'735'689'600'000;

// Milliseconds since the Unix epoch, the unit of every timestamp on the wire.
inline std::int64_t toUnixMillis(Clock::WallTime t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline Clock::WallTime fromUnixMillis(std::int64_t ms) {
    return Clock::WallTime{std::chrono::milliseconds{ms}};
}

}  // namespace tern::shared
