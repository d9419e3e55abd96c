#include "services/feedback/core/dispatcher.h"

#include <algorithm>

namespace greenloop::feedback {

std::vector<std::int64_t> HeadDispatcher::Take(const std::string& campaign,
                                               const std::string& rater, int n, absl::Time now,
                                               bool* refill, int spares) {
  std::vector<std::int64_t> out;
  absl::MutexLock lock(&mu_);
  View& view = views_[campaign];
  for (std::size_t i = 0; i < view.head.size() && static_cast<int>(out.size()) < n;) {
    Slot& slot = view.head[i];
    if (std::find(slot.given.begin(), slot.given.end(), rater) != slot.given.end()) {
      ++i;
      continue;
    }
    out.push_back(slot.item_id);
    slot.given.push_back(rater);
    if (--slot.free <= 0) {
      view.head.erase(view.head.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    // Its next slot goes kSpread places back: raters leasing at the same moment get different
    // items instead of all but one finding it locked (and walking the head after all).
    Slot moved = std::move(slot);
    view.head.erase(view.head.begin() + static_cast<std::ptrdiff_t>(i));
    const std::size_t to = std::min(view.head.size(), i + kSpread);
    view.head.insert(view.head.begin() + static_cast<std::ptrdiff_t>(to), std::move(moved));
  }
  const int counted = static_cast<int>(out.size());
  for (std::size_t i = 0, extra = 0; i < view.head.size() && static_cast<int>(extra) < spares;
       ++i) {
    const Slot& slot = view.head[i];
    if (std::find(slot.given.begin(), slot.given.end(), rater) != slot.given.end()) continue;
    if (std::find(out.begin(), out.end(), slot.item_id) != out.end()) continue;
    out.push_back(slot.item_id);
    ++extra;
  }
  if (refill == nullptr) return out;
  *refill = false;
  // Short of candidates: read again, but not more often than every max_age / 20 (a campaign whose
  // every item is held would otherwise be read on every Lease).
  const absl::Duration age = now - view.read;
  const bool short_handed = counted < n && age > max_age_ / 20;
  if (!view.refilling && (short_handed || age > max_age_)) {
    view.refilling = true;
    *refill = true;
  }
  return out;
}

void HeadDispatcher::Refill(const std::string& campaign, std::vector<HeadItem> items,
                            absl::Time now) {
  absl::MutexLock lock(&mu_);
  View& view = views_[campaign];
  // Who was handed what stays known: the read counts their live leases, not who holds them.
  std::map<std::int64_t, std::vector<std::string>> given;
  for (Slot& slot : view.head) given[slot.item_id] = std::move(slot.given);
  view.head.clear();
  for (const HeadItem& item : items) {
    if (item.free <= 0) continue;
    auto it = given.find(item.item_id);
    view.head.push_back(
        {item.item_id, item.free, it == given.end() ? std::vector<std::string>() : it->second});
  }
  view.read = now;
  view.refilling = false;
}

void HeadDispatcher::Leased(const std::string& campaign, const std::string& rater,
                            const std::vector<std::int64_t>& items) {
  absl::MutexLock lock(&mu_);
  auto view = views_.find(campaign);
  if (view == views_.end()) return;
  std::deque<Slot>& head = view->second.head;
  for (std::int64_t id : items) {
    auto slot =
        std::find_if(head.begin(), head.end(), [id](const Slot& s) { return s.item_id == id; });
    if (slot == head.end()) continue;
    if (std::find(slot->given.begin(), slot->given.end(), rater) != slot->given.end()) continue;
    slot->given.push_back(rater);
    if (--slot->free <= 0) head.erase(slot);
  }
}

void HeadDispatcher::Forget(const std::string& campaign) {
  absl::MutexLock lock(&mu_);
  views_.erase(campaign);
}

}  // namespace greenloop::feedback
