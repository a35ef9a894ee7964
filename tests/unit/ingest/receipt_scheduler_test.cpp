#include "tern/ingest/receipt_scheduler.h"

#include <gtest/gtest.h>

namespace tern::ingest {
namespace {

using namespace std::chrono_literals;
using Key = ReceiptScheduler::Key;

const ReceiptScheduler::TimePoint kT0{std::chrono::seconds(1000)};

TEST(ReceiptScheduler, CoalescesUntilTheInterval) {
    ReceiptScheduler scheduler(200ms, 64);
    scheduler.markWaiting("gw-1", 1, kT0);
    scheduler.markWaiting("gw-1", 1, kT0 + 50ms);
    scheduler.markWaiting("gw-1", 1, kT0 + 150ms);
    EXPECT_TRUE(scheduler.takeDue(kT0 + 199ms).empty());
    ASSERT_EQ(scheduler.nextDue(), kT0 + 200ms);  // from the first waiting message
    EXPECT_EQ(scheduler.takeDue(kT0 + 200ms), (std::vector<Key>{{"gw-1", 1}}));
    EXPECT_EQ(scheduler.waiting(), 0u);
    EXPECT_FALSE(scheduler.nextDue());
}

TEST(ReceiptScheduler, EnoughWaitingMessagesMakeItDueAtOnce) {
    ReceiptScheduler scheduler(10s, 3);
    scheduler.markWaiting("gw-1", 1, kT0);
    scheduler.markWaiting("gw-1", 1, kT0 + 1ms);
    EXPECT_TRUE(scheduler.takeDue(kT0 + 2ms).empty());
    scheduler.markWaiting("gw-1", 1, kT0 + 2ms);
    EXPECT_EQ(scheduler.nextDue(), kT0 + 2ms);
    EXPECT_EQ(scheduler.takeDue(kT0 + 2ms), (std::vector<Key>{{"gw-1", 1}}));
}

TEST(ReceiptScheduler, KeysAreIndependentPerGatewayAndEpoch) {
    ReceiptScheduler scheduler(100ms, 100);
    scheduler.markWaiting("gw-1", 1, kT0);
    scheduler.markWaiting("gw-1", 2, kT0 + 60ms);
    scheduler.markWaiting("gw-2", 1, kT0 + 30ms);
    EXPECT_EQ(scheduler.takeDue(kT0 + 130ms), (std::vector<Key>{{"gw-1", 1}, {"gw-2", 1}}));
    EXPECT_EQ(scheduler.takeDue(kT0 + 160ms), (std::vector<Key>{{"gw-1", 2}}));
}

TEST(ReceiptScheduler, PutBackIsDueAtTheGivenTimeNotLater) {
    ReceiptScheduler scheduler(1s, 100);
    scheduler.putBack({"gw-1", 4}, kT0 + 200ms);
    EXPECT_TRUE(scheduler.takeDue(kT0 + 199ms).empty());
    EXPECT_EQ(scheduler.takeDue(kT0 + 200ms), (std::vector<Key>{{"gw-1", 4}}));

    // Already waiting with a later due time: the put-back moves it earlier.
    scheduler.markWaiting("gw-1", 5, kT0);
    scheduler.putBack({"gw-1", 5}, kT0 + 10ms);
    EXPECT_EQ(scheduler.nextDue(), kT0 + 10ms);
    // And never later.
    scheduler.putBack({"gw-1", 5}, kT0 + 5s);
    EXPECT_EQ(scheduler.nextDue(), kT0 + 10ms);
}

}  // namespace
}  // namespace tern::ingest
