// An in-memory view of each campaign's queue head, shared by one service's Lease calls.
//
// Without it every Lease walks the same head of the same index in PostgreSQL, past the items other
// raters have locked or filled: each Lease's cost grows with the crowd. With it, one Lease in a
// while reads the head (the best `head_size` items that still need ratings, with the slots each
// had free), and the others take candidates from memory and lock them by primary key:
//
//   bool refill = false;
//   std::vector<std::int64_t> ids = head.Take(campaign, rater, n, now, &refill);
//   if (refill) head.Refill(campaign, store->QueueHead(campaign, k, a, head_size), now);
//
// Candidates are hints: the store re-checks k, "not twice" and closed on the locked rows (the
// fence), and walks the head itself for whatever they did not give. So a stale view (other
// replicas leasing, items decided meanwhile) costs a walk, never a broken rule. Each item is
// handed out at most as many times as it had free slots, and never twice to one rater; its next
// slot goes a few dozen places back, so raters leasing at once do not all meet on one row (the
// head is served in priority order within that spread). A view older than `max_age` is refilled
// (one short of candidates, at most every max_age / 20), so a higher-priority item enqueued later
// is served within max_age.
//
// Thread-safety: thread-safe. Take() asks exactly one caller at a time to refill a campaign.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace greenloop::feedback {

/// An item at the head of a campaign's queue, as read: its id and its free slots
/// (k − ratings − live leases).
struct HeadItem {
  std::int64_t item_id = 0;
  int free = 0;
};

class HeadDispatcher final {
 public:
  explicit HeadDispatcher(absl::Duration max_age = absl::Seconds(1)) : max_age_(max_age) {}

  /// Up to `n` candidate ids for `rater`, best first. Sets *refill (and expects Refill() from this
  /// caller) when the view is short or older than max_age and no other caller is refilling it;
  /// with `refill` null, never asks.
  /// `spares` more ids follow, not counted against their items' slots: if another Lease holds
  /// the row of a counted one, the store takes a spare instead of walking the head.
  std::vector<std::int64_t> Take(const std::string& campaign, const std::string& rater, int n,
                                 absl::Time now, bool* refill, int spares = 0);
  /// Replaces the campaign's view with `items` (best first), read at `now`. An empty list after a
  /// failed read is fine: Lease walks the head itself until the next refill.
  void Refill(const std::string& campaign, std::vector<HeadItem> items, absl::Time now);
  /// What a Lease actually got: items it was not counted for (a spare, or the store's own walk of
  /// the head) lose a slot here too and are never handed to `rater` again, so the view stays
  /// close to the database's and later candidates do not fail on slots already gone.
  void Leased(const std::string& campaign, const std::string& rater,
              const std::vector<std::int64_t>& items);
  /// Drops the campaign's view (e.g. after a closed campaign).
  void Forget(const std::string& campaign);

 private:
  struct Slot {
    std::int64_t item_id = 0;
    int free = 0;
    std::vector<std::string> given;  // raters it was handed to (at most k)
  };
  struct View {
    std::deque<Slot> head;
    absl::Time read = absl::InfinitePast();
    bool refilling = false;
  };

  // How far back an item goes once one of its slots is handed out: more than the Lease calls in
  // flight at once (about the database connections), so that they seldom meet on one row.
  static constexpr std::size_t kSpread = 32;

  const absl::Duration max_age_;
  absl::Mutex mu_;
  std::map<std::string, View> views_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::feedback
