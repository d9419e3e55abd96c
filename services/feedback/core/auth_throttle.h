// Throttles failed authentications per client, so that a caller guessing tokens (or one stuck on a
// revoked one) cannot make every request cost a token lookup in PostgreSQL.
//
// Each client (the HTTP peer's address) has a bucket of `burst` failures that refills at
// `failures_per_second`; a failure takes one. A client whose bucket is empty is refused before
// its token is looked up, until the bucket holds one failure again. Clients that authenticate do
// not spend anything. At most `max_clients` buckets are kept: when a new client would pass that,
// the buckets that have refilled (idle clients) are dropped first, then the oldest.
//
//   AuthThrottle throttle({.failures_per_second = 1, .burst = 20});
//   if (!throttle.Allowed(peer, now)) return 429;
//   if (!authenticated) throttle.Failed(peer, now);
//
// Not for: rate-limiting authenticated callers (FeedbackQueue does that per token).
// Thread-safety: thread-safe.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace greenloop::feedback {

class AuthThrottle final {
 public:
  struct Options {
    double failures_per_second = 1.0;  // refill rate; > 0
    double burst = 20;                 // failures a client may make in a row; >= 1
    std::size_t max_clients = 10'000;  // buckets kept
  };
  explicit AuthThrottle(Options options);

  // Whether `client` may try to authenticate at `now` (its bucket holds a failure).
  bool Allowed(std::string_view client, absl::Time now) const;
  // Records a failed authentication of `client` at `now`.
  void Failed(std::string_view client, absl::Time now);
  // When `client` may try again (now when it may already).
  absl::Time RetryAt(std::string_view client, absl::Time now) const;
  // Buckets kept (for tests).
  std::size_t clients() const;

 private:
  struct Bucket {
    double level = 0;  // failures left at `at`
    absl::Time at;
  };
  double LevelAt(const Bucket& b, absl::Time now) const;
  void Evict(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Bucket, std::less<>> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::feedback
