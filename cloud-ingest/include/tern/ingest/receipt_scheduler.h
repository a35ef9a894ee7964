#pragma once

// When to send a gateway its receipt. A receipt is cumulative, so one receipt covers everything
// spooled for its (gateway, epoch) so far: sending one per message would cost the broker a
// publish per batch for nothing. The scheduler coalesces: a (gateway, epoch) becomes due when
// max_waiting of its messages are waiting for a receipt, or `interval` after the first of them,
// whichever is first. A receipt that could not be published is put back with a new due time.
//
// Not thread-safe: the intake thread owns it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tern::ingest {

class ReceiptScheduler {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    using Key = std::pair<std::string, std::uint64_t>;  // (gateway, epoch)

    ReceiptScheduler(std::chrono::milliseconds interval, std::size_t max_waiting)
        : interval_(interval), max_waiting_(max_waiting == 0 ? 1 : max_waiting) {}

    // One more message of (gateway, epoch) is covered by committed spool state.
    void markWaiting(const std::string& gateway, std::uint64_t epoch, TimePoint now);
    // Removes and returns the keys whose receipt is due at `now`, in key order.
    std::vector<Key> takeDue(TimePoint now);
    // A receipt for key could not go out (or must go out again): due at `due`, or earlier if it
    // already was.
    void putBack(const Key& key, TimePoint due);
    // The earliest time a waiting key becomes due; nullopt when nothing waits.
    std::optional<TimePoint> nextDue() const;
    std::size_t waiting() const { return waiting_.size(); }

private:
    struct Waiting {
        TimePoint due;
        std::size_t messages = 0;
    };
    std::chrono::milliseconds interval_;
    std::size_t max_waiting_;
    std::map<Key, Waiting> waiting_;
};

}  // namespace tern::ingest
