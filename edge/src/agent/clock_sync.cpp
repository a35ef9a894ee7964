#include "tern/edge/agent/clock_sync.h"

#include <sys/timex.h>

#include <fstream>
#include <string>

namespace tern::edge {

bool AdjtimexSyncSource::synced() const {
    struct timex tx {};
    tx.modes = 0;  // read only
    const int state = ::adjtimex(&tx);
    return state != -1 && state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}

std::unique_ptr<ClockSyncSource> makeClockSyncSource(const std::string& mode) {
    if (mode == "adjtimex") return std::make_unique<AdjtimexSyncSource>();
    if (mode == "always") return std::make_unique<FixedSyncSource>(true);
    if (mode == "never") return std::make_unique<FixedSyncSource>(false);
    return nullptr;
}

SyncAwareClock::SyncAwareClock(const shared::Clock& base, bool synced)
    : base_(base),
      unsynced_offset_(
          base.wallNow().time_since_epoch() -
          std::chrono::duration_cast<WallTime::duration>(base.monoNow().time_since_epoch())),
      synced_(synced) {}

shared::Clock::WallTime SyncAwareClock::wallNow() const {
    if (synced()) return base_.wallNow();
    return WallTime{
        std::chrono::duration_cast<WallTime::duration>(base_.monoNow().time_since_epoch()) +
        unsynced_offset_};
}

std::uint64_t currentBootId() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (!(in >> id) || id.empty()) return 0;
    // FNV-1a: the same id must give the same number in every build that reads the store.
    std::uint64_t hash = 14695981039346656037ull;
    for (const unsigned char c : id) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return hash == 0 ? 1 : hash;
}

}  // namespace tern::edge
