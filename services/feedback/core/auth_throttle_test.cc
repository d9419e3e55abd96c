// Failed authentications throttled per client (issue 17, hole 2).
#include "services/feedback/core/auth_throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace greenloop::feedback {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

TEST(AuthThrottle, AClientThatKeepsFailingWaitsWhileOthersGoOn) {
  AuthThrottle throttle({.failures_per_second = 2, .burst = 5});
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(throttle.Allowed("10.0.0.1", kStart)) << i;
    throttle.Failed("10.0.0.1", kStart);
  }
  EXPECT_FALSE(throttle.Allowed("10.0.0.1", kStart));  // the burst is spent
  EXPECT_TRUE(throttle.Allowed("10.0.0.2", kStart));   // another client is not affected
  EXPECT_EQ(throttle.RetryAt("10.0.0.1", kStart), kStart + absl::Milliseconds(500));
  EXPECT_FALSE(throttle.Allowed("10.0.0.1", kStart + absl::Milliseconds(499)));
  EXPECT_TRUE(throttle.Allowed("10.0.0.1", kStart + absl::Milliseconds(500)));  // one refilled
  throttle.Failed("10.0.0.1", kStart + absl::Milliseconds(500));
  EXPECT_FALSE(throttle.Allowed("10.0.0.1", kStart + absl::Milliseconds(600)));
  EXPECT_TRUE(throttle.Allowed("10.0.0.1", kStart + absl::Seconds(10)));  // full again
  EXPECT_EQ(throttle.RetryAt("10.0.0.2", kStart), kStart);
}

TEST(AuthThrottle, KeepsBoundedStateDroppingIdleClientsFirst) {
  AuthThrottle throttle({.failures_per_second = 1, .burst = 3, .max_clients = 4});
  for (int i = 0; i < 3; ++i) throttle.Failed("busy", kStart);  // throttled: kept
  for (int c = 0; c < 100; ++c) throttle.Failed("c" + std::to_string(c), kStart);
  EXPECT_LE(throttle.clients(), 4u);
  // Everyone else failed once and would refill in a second; "busy" is the oldest failure and
  // went when there was no idle client to drop, but never more than max_clients are kept.
  for (int c = 100; c < 110; ++c) {
    throttle.Failed("c" + std::to_string(c), kStart + absl::Seconds(5));  // the others idle now
  }
  EXPECT_LE(throttle.clients(), 4u);
  EXPECT_TRUE(throttle.Allowed("c109", kStart + absl::Seconds(5)));
}

}  // namespace
}  // namespace greenloop::feedback
