#pragma once

// Whether the kernel clock can be trusted, and the clock the agent stamps readings with.
//
// Boards without an RTC boot in 1970 and step to the right time when NTP (or GPS, or the cellular
// network) syncs. Readings taken before that must not be thrown away, nor sent as if their
// timestamps were right. The agent stamps them with a clock that cannot step — monotonic time plus
// the offset it saw at start — flags them clock_synced = false, and when the kernel reports sync,
// Store::restamp moves them all by one exactly known delta.

#include <atomic>
#include <memory>
#include <string>

#include "tern/shared/clock.h"

namespace tern::edge {

class ClockSyncSource {
public:
    virtual ~ClockSyncSource() = default;
    virtual bool synced() const = 0;
};

// adjtimex(2) in read-only mode (no privilege needed): synchronised unless the kernel reports
// TIME_ERROR or STA_UNSYNC, which is what chrony, ntpd and systemd-timesyncd clear once synced.
class AdjtimexSyncSource final : public ClockSyncSource {
public:
    bool synced() const override;
};

// A fixed answer ("always": an RTC-backed board without NTP; "never": tests), settable by tests.
class FixedSyncSource final : public ClockSyncSource {
public:
    explicit FixedSyncSource(bool synced) : synced_(synced) {}
    bool synced() const override { return synced_.load(); }
    void set(bool synced) { synced_.store(synced); }

private:
    std::atomic<bool> synced_;
};

// "adjtimex" | "always" | "never"; nullptr for anything else.
std::unique_ptr<ClockSyncSource> makeClockSyncSource(const std::string& mode);

// The agent's clock. Until markSynced(), wallNow() is the base's monotonic time plus the offset
// (base wall - base monotonic) taken at construction, so it runs steadily through any step of
// the base clock; afterwards it is the base's wall time. Safe to call from any thread.
class SyncAwareClock final : public shared::Clock {
public:
    SyncAwareClock(const shared::Clock& base, bool synced);
    WallTime wallNow() const override;
    MonoTime monoNow() const override { return base_.monoNow(); }
    bool synced() const { return synced_.load(std::memory_order_acquire); }
    void markSynced() { synced_.store(true, std::memory_order_release); }

private:
    const shared::Clock& base_;
    WallTime::duration unsynced_offset_;
    std::atomic<bool> synced_;
};

// A stable number for the current boot (a hash of /proc/sys/kernel/random/boot_id); 0 if it
// cannot be read, which disables re-stamping across process restarts.
std::uint64_t currentBootId();

}  // namespace tern::edge
