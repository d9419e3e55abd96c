#include "services/feedback/core/auth_throttle.h"

#include <algorithm>
#include <vector>

namespace greenloop::feedback {

AuthThrottle::AuthThrottle(Options options) : options_(options) {}

double AuthThrottle::LevelAt(const Bucket& b, absl::Time now) const {
  const double refill = absl::ToDoubleSeconds(now - b.at) * options_.failures_per_second;
  return std::min(options_.burst, b.level + std::max(0.0, refill));
}

bool AuthThrottle::Allowed(std::string_view client, absl::Time now) const {
  absl::MutexLock lock(&mu_);
  const auto it = buckets_.find(client);
  return it == buckets_.end() || LevelAt(it->second, now) >= 1.0;
}

absl::Time AuthThrottle::RetryAt(std::string_view client, absl::Time now) const {
  absl::MutexLock lock(&mu_);
  const auto it = buckets_.find(client);
  if (it == buckets_.end()) return now;
  const double missing = 1.0 - LevelAt(it->second, now);
  if (missing <= 0) return now;
  return now + absl::Seconds(missing / options_.failures_per_second);
}

void AuthThrottle::Failed(std::string_view client, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(client);
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.max_clients) Evict(now);
    it = buckets_.emplace(std::string(client), Bucket{options_.burst, now}).first;
  }
  Bucket& b = it->second;
  b.level = std::max(0.0, LevelAt(b, now) - 1.0);
  b.at = now;
}

void AuthThrottle::Evict(absl::Time now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    it = LevelAt(it->second, now) >= options_.burst ? buckets_.erase(it) : std::next(it);
  }
  if (buckets_.size() < options_.max_clients) return;
  // Every client is still throttled: drop the one that failed longest ago.
  auto oldest =
      std::min_element(buckets_.begin(), buckets_.end(),
                       [](const auto& a, const auto& b) { return a.second.at < b.second.at; });
  buckets_.erase(oldest);
}

std::size_t AuthThrottle::clients() const {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

}  // namespace greenloop::feedback
