#include "tern/ingest/receipt_scheduler.h"

#include <algorithm>

namespace tern::ingest {

void ReceiptScheduler::markWaiting(const std::string& gateway, std::uint64_t epoch, TimePoint now) {
    auto [it, inserted] = waiting_.try_emplace(Key{gateway, epoch}, Waiting{now + interval_, 0});
    it->second.messages += 1;
    if (it->second.messages >= max_waiting_) it->second.due = std::min(it->second.due, now);
}

std::vector<ReceiptScheduler::Key> ReceiptScheduler::takeDue(TimePoint now) {
    std::vector<Key> due;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (it->second.due <= now) {
            due.push_back(it->first);
            it = waiting_.erase(it);
        } else {
            ++it;
        }
    }
    return due;
}

void ReceiptScheduler::putBack(const Key& key, TimePoint due) {
    auto [it, inserted] = waiting_.try_emplace(key, Waiting{due, 1});
    if (!inserted) it->second.due = std::min(it->second.due, due);
}

std::optional<ReceiptScheduler::TimePoint> ReceiptScheduler::nextDue() const {
    std::optional<TimePoint> next;
    for (const auto& [key, waiting] : waiting_) {
        if (!next || waiting.due < *next) next = waiting.due;
    }
    return next;
}

}  // namespace tern::ingest
