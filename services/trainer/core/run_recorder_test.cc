#include "services/trainer/core/run_recorder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace greenloop::trainer {
namespace {

using namespace std::chrono_literals;

// A RunStore that keeps what it was given; its writes can be held back until released, and
// made to fail.
class HeldStore final : public RunStore {
 public:
  absl::Status SaveRun(const v1::Run&) override { return absl::OkStatus(); }
  absl::Status AddEvaluation(const std::string&, std::uint32_t,
                             const EvaluationPoint& point) override {
    Hold();
    std::lock_guard lock(mu_);
    steps_.push_back(point.step);
    return fail_ ? absl::UnavailableError("down") : absl::OkStatus();
  }
  absl::Status AddChanges(const std::string& run_id, std::uint32_t rank,
                          const std::vector<SampleChange>& changes) override {
    Hold();
    std::lock_guard lock(mu_);
    run_id_ = run_id;
    rank_ = rank;
    batches_.push_back(changes.size());
    for (const SampleChange& c : changes) samples_.push_back(c.sample_index);
    return fail_ ? absl::UnavailableError("down") : absl::OkStatus();
  }
  absl::StatusOr<std::vector<v1::Run>> LoadRuns(const std::string&) override {
    return std::vector<v1::Run>{};
  }

  void Block() {
    std::lock_guard lock(mu_);
    blocked_ = true;
  }
  void Unblock() {
    {
      std::lock_guard lock(mu_);
      blocked_ = false;
    }
    cv_.notify_all();
  }
  void Fail() {
    std::lock_guard lock(mu_);
    fail_ = true;
  }
  // Waits until a write is being held.
  void AwaitHeld() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 5s, [&] { return holding_; });
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false, holding_ = false, fail_ = false;
  std::string run_id_;
  std::uint32_t rank_ = 99;
  std::vector<std::size_t> batches_;
  std::vector<std::int64_t> samples_;
  std::vector<std::uint64_t> steps_;

 private:
  void Hold() {
    std::unique_lock lock(mu_);
    holding_ = blocked_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !blocked_; });
    holding_ = false;
  }
};

std::vector<SampleChange> Changes(std::int64_t from, int n) {
  std::vector<SampleChange> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)].sample_index = from + i;
  return out;
}

TEST(RunRecorderTest, HandsOverWithoutWaitingForTheStoreAndBatchesWhatQueuedMeanwhile) {
  HeldStore store;
  RunRecorder recorder(&store, "run-7", 0);
  store.Block();
  recorder.AddChanges(Changes(0, 2));
  store.AwaitHeld();  // the writer is inside the store with the first batch
  // The training thread goes on while the store is stuck.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= 50; ++i) recorder.AddChanges(Changes(i * 10, 3));
  recorder.AddEvaluation({.step = 40});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  store.Unblock();
  recorder.Flush();
  std::lock_guard lock(store.mu_);
  // The 50 calls queued behind the held write went out as one statement, in order.
  EXPECT_EQ(store.batches_, (std::vector<std::size_t>{2, 150}));
  ASSERT_EQ(store.samples_.size(), 152u);
  EXPECT_EQ(store.samples_[2], 10);
  EXPECT_EQ(store.samples_.back(), 502);
  EXPECT_EQ(store.steps_, std::vector<std::uint64_t>{40});
  EXPECT_EQ(store.run_id_, "run-7");
  EXPECT_EQ(store.rank_, 0u);
  EXPECT_EQ(recorder.change_batches(), 2u);
}

TEST(RunRecorderTest, TheEndWaitsForEverythingHandedOver) {
  HeldStore store;
  {
    RunRecorder recorder(&store, "run-8", 1);
    for (int i = 0; i < 20; ++i) {
      recorder.AddChanges(Changes(i, 1));
      recorder.AddEvaluation({.step = static_cast<std::uint64_t>(i)});
    }
  }  // destroyed: flushed and joined
  std::lock_guard lock(store.mu_);
  EXPECT_EQ(store.samples_.size(), 20u);
  EXPECT_EQ(store.steps_.size(), 20u);
}

TEST(RunRecorderTest, FailedWritesAreCountedAndDoNotStopLaterOnes) {
  HeldStore store;
  RunRecorder recorder(&store, "run-9", 0);
  store.Fail();
  recorder.AddChanges(Changes(0, 4));
  recorder.Flush();
  EXPECT_EQ(recorder.failed(), 1u);
  {
    std::lock_guard lock(store.mu_);
    store.fail_ = false;
  }
  recorder.AddChanges(Changes(4, 1));
  recorder.Flush();
  EXPECT_EQ(recorder.failed(), 1u);
  std::lock_guard lock(store.mu_);
  EXPECT_EQ(store.samples_.size(), 5u);
}

TEST(RunRecorderTest, WithoutAStoreNothingIsRecordedAndFlushReturns) {
  RunRecorder recorder(nullptr, "run-0", 0);
  recorder.AddChanges(Changes(0, 3));
  recorder.AddEvaluation({.step = 1});
  recorder.Flush();
  EXPECT_EQ(recorder.change_batches(), 0u);
}

}  // namespace
}  // namespace greenloop::trainer
