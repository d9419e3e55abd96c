#include "services/feedback/core/dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

namespace greenloop::feedback {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(HeadDispatcher, AnEmptyViewAsksOneCallerToRefillAndTheOthersWalk) {
  HeadDispatcher head(absl::Seconds(1));
  bool refill = false;
  EXPECT_THAT(head.Take("c", "alice", 1, kT0, &refill), IsEmpty());
  EXPECT_TRUE(refill);
  EXPECT_THAT(head.Take("c", "bob", 1, kT0, &refill), IsEmpty());
  EXPECT_FALSE(refill) << "only one caller refills at a time";
  head.Refill("c", {{1, 2}, {2, 1}}, kT0);
  EXPECT_THAT(head.Take("c", "bob", 1, kT0, &refill), ElementsAre(1));
  EXPECT_FALSE(refill);
}

TEST(HeadDispatcher, AnItemGoesToAtMostItsFreeSlotsAndNeverTwiceToOneRater) {
  HeadDispatcher head;
  head.Refill("c", {{1, 2}, {2, 1}, {3, 3}, {4, 0}}, kT0);
  bool refill = false;
  EXPECT_THAT(head.Take("c", "a", 2, kT0, &refill), ElementsAre(1, 2));
  EXPECT_THAT(head.Take("c", "a", 2, kT0, &refill), ElementsAre(3)) << "1 and 2 were a's already";
  EXPECT_THAT(head.Take("c", "b", 3, kT0, &refill), ElementsAre(1, 3));
  EXPECT_THAT(head.Take("c", "c", 3, kT0, &refill), ElementsAre(3)) << "1 had 2 slots, 2 had 1";
  EXPECT_THAT(head.Take("c", "d", 3, kT0, &refill), IsEmpty()) << "4 had no free slot";
}

TEST(HeadDispatcher, AnOldViewIsRefilledAndARefillRemembersWhoGotWhat) {
  HeadDispatcher head(absl::Seconds(1));
  head.Refill("c", {{1, 3}, {2, 3}}, kT0);
  bool refill = false;
  EXPECT_THAT(head.Take("c", "a", 1, kT0 + absl::Milliseconds(500), &refill), ElementsAre(1));
  EXPECT_FALSE(refill);
  EXPECT_THAT(head.Take("c", "b", 1, kT0 + absl::Seconds(2), &refill), ElementsAre(2))
      << "1's next slot went back behind 2";
  EXPECT_TRUE(refill) << "older than max_age";
  // The read shows free slots on both (it counts leases, not who holds them): a had 1, b had 2.
  head.Refill("c", {{1, 1}, {2, 3}}, kT0 + absl::Seconds(2));
  EXPECT_THAT(head.Take("c", "a", 1, kT0 + absl::Seconds(2), &refill), ElementsAre(2));
  EXPECT_THAT(head.Take("c", "b", 1, kT0 + absl::Seconds(2), &refill), ElementsAre(1));
}

TEST(HeadDispatcher, RatersLeasingAtOnceGetDifferentItemsBeforeAnyItemsNextSlot) {
  HeadDispatcher head;
  std::vector<HeadItem> items;
  for (int i = 0; i < 10; ++i) items.push_back({i, 3});
  head.Refill("c", items, kT0);
  bool refill = false;
  std::vector<std::int64_t> first;
  for (int r = 0; r < 10; ++r) {
    for (std::int64_t id : head.Take("c", "r" + std::to_string(r), 1, kT0, &refill)) {
      first.push_back(id);
    }
  }
  EXPECT_THAT(first, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)) << "best first, one each";
}

TEST(HeadDispatcher, SparesFollowTheCountedCandidatesWithoutTakingTheirSlots) {
  HeadDispatcher head;
  head.Refill("c", {{1, 1}, {2, 1}, {3, 1}}, kT0);
  bool refill = false;
  EXPECT_THAT(head.Take("c", "a", 1, kT0, &refill, 2), ElementsAre(1, 2, 3));
  // Only 1 was counted: 2 and 3 still have their slot, for anyone.
  EXPECT_THAT(head.Take("c", "b", 2, kT0, &refill), ElementsAre(2, 3));
  EXPECT_THAT(head.Take("c", "c", 1, kT0, &refill, 2), IsEmpty());
}

TEST(HeadDispatcher, ALeaseOutsideTheCountedCandidatesTakesItsSlotInTheView) {
  HeadDispatcher head;
  head.Refill("c", {{1, 1}, {2, 2}, {3, 1}}, kT0);
  bool refill = false;
  EXPECT_THAT(head.Take("c", "a", 1, kT0, &refill, 2), ElementsAre(1, 2, 3));
  // The store found 1 held and gave a the spare 2; then b walked the head into 3.
  head.Leased("c", "a", {2});
  head.Leased("c", "b", {3});
  head.Leased("c", "a", {2});  // told twice: counted once
  EXPECT_THAT(head.Take("c", "b", 3, kT0, &refill), ElementsAre(2)) << "3 is gone, 2 has 1 slot";
  EXPECT_THAT(head.Take("c", "a", 3, kT0, &refill), IsEmpty());
}

TEST(HeadDispatcher, AShortViewIsReadAgainButNotOnEveryLease) {
  HeadDispatcher head(absl::Seconds(1));
  head.Refill("c", {}, kT0);
  bool refill = false;
  head.Take("c", "a", 1, kT0 + absl::Milliseconds(10), &refill);
  EXPECT_FALSE(refill) << "read 10 ms ago";
  head.Take("c", "a", 1, kT0 + absl::Milliseconds(60), &refill);
  EXPECT_TRUE(refill) << "short, and older than max_age / 20";
  EXPECT_THAT(head.Take("c", "a", 1, kT0, nullptr), IsEmpty());
}

TEST(HeadDispatcher, ConcurrentRatersNeverGetAnItemBeyondItsSlots) {
  HeadDispatcher head;
  std::vector<HeadItem> items;
  for (int i = 0; i < 100; ++i) items.push_back({i, 3});
  head.Refill("c", items, kT0);
  std::vector<std::vector<std::int64_t>> got(16);
  std::vector<std::thread> threads;
  for (int r = 0; r < 16; ++r) {
    threads.emplace_back([&, r] {
      bool refill = false;
      for (int i = 0; i < 40; ++i) {
        for (std::int64_t id : head.Take("c", "r" + std::to_string(r), 1, kT0, &refill)) {
          got[r].push_back(id);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::map<std::int64_t, int> handed;
  for (const auto& ids : got) {
    EXPECT_EQ(std::set<std::int64_t>(ids.begin(), ids.end()).size(), ids.size());
    for (std::int64_t id : ids) ++handed[id];
  }
  for (const auto& [id, n] : handed) EXPECT_LE(n, 3) << id;
  EXPECT_EQ(handed.size(), 100u);
}

}  // namespace
}  // namespace greenloop::feedback
