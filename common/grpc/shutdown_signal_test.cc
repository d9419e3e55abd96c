#include "common/grpc/shutdown_signal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace greenloop::rpc {
namespace {

// Each TEST runs in its own process under ctest (gtest_discover_tests), and every test installs
// the handler before raising a signal, so no signal here reaches a default disposition.

TEST(ShutdownSignalTest, SigtermMakesWaitReturnSigterm) {
  absl::StatusOr<std::unique_ptr<ShutdownSignal>> signals = ShutdownSignal::Install();
  ASSERT_TRUE(signals.ok()) << signals.status();
  std::future<std::optional<int>> waited =
      std::async(std::launch::async, [&] { return (*signals)->Wait(); });
  EXPECT_EQ(waited.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);

  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  ASSERT_EQ(waited.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(waited.get(), SIGTERM);
  EXPECT_EQ((*signals)->Wait(), SIGTERM) << "later calls return the same at once";
}

TEST(ShutdownSignalTest, SigintFromRaise) {
  absl::StatusOr<std::unique_ptr<ShutdownSignal>> signals = ShutdownSignal::Install();
  ASSERT_TRUE(signals.ok()) << signals.status();
  ASSERT_EQ(raise(SIGINT), 0);
  EXPECT_EQ((*signals)->Wait(), SIGINT);
}

TEST(ShutdownSignalTest, StopMakesWaitReturnNullopt) {
  absl::StatusOr<std::unique_ptr<ShutdownSignal>> signals = ShutdownSignal::Install();
  ASSERT_TRUE(signals.ok()) << signals.status();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (*signals)->Stop();
  });
  EXPECT_EQ((*signals)->Wait(), std::nullopt);
  stopper.join();
  (*signals)->Stop();  // idempotent
  EXPECT_EQ((*signals)->Wait(), std::nullopt);
}

TEST(ShutdownSignalTest, OnlyOneAtATime) {
  absl::StatusOr<std::unique_ptr<ShutdownSignal>> first = ShutdownSignal::Install();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(ShutdownSignal::Install().status().code(), absl::StatusCode::kFailedPrecondition);
  first->reset();
  EXPECT_TRUE(ShutdownSignal::Install().ok()) << "free again once the first is destroyed";
}

TEST(ShutdownSignalTest, UnusableSignalIsInvalidArgument) {
  EXPECT_EQ(ShutdownSignal::Install({SIGKILL}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShutdownSignal::Install({0}).status().code(), absl::StatusCode::kInvalidArgument);
}

std::atomic<int> g_previous_handler_calls{0};
extern "C" void CountingHandler(int) { g_previous_handler_calls.fetch_add(1); }

TEST(ShutdownSignalTest, DestructionRestoresThePreviousHandler) {
  g_previous_handler_calls = 0;
  struct sigaction counting {};
  counting.sa_handler = CountingHandler;
  sigemptyset(&counting.sa_mask);
  struct sigaction original {};
  ASSERT_EQ(sigaction(SIGTERM, &counting, &original), 0);

  {
    absl::StatusOr<std::unique_ptr<ShutdownSignal>> signals = ShutdownSignal::Install({SIGTERM});
    ASSERT_TRUE(signals.ok()) << signals.status();
    ASSERT_EQ(raise(SIGTERM), 0);
    EXPECT_EQ((*signals)->Wait(), SIGTERM);
    EXPECT_EQ(g_previous_handler_calls.load(), 0) << "ours, not the previous one, ran";
  }
  ASSERT_EQ(raise(SIGTERM), 0);
  EXPECT_EQ(g_previous_handler_calls.load(), 1);
  sigaction(SIGTERM, &original, nullptr);
}

}  // namespace
}  // namespace greenloop::rpc
