#include "services/trainer/core/run_recorder.h"

#include <utility>

#include "common/logging/logging.h"

namespace greenloop::trainer {

RunRecorder::RunRecorder(RunStore* store, std::string run_id, std::uint32_t rank)
    : store_(store), run_id_(std::move(run_id)), rank_(rank) {
  if (store_ != nullptr) thread_ = std::thread([this] { Loop(); });
}

RunRecorder::~RunRecorder() {
  if (!thread_.joinable()) return;
  Flush();
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void RunRecorder::AddChanges(const std::vector<SampleChange>& changes) {
  if (store_ == nullptr || changes.empty()) return;
  {
    std::lock_guard lock(mu_);
    pending_.changes.insert(pending_.changes.end(), changes.begin(), changes.end());
    pending_.last = ++queued_;
  }
  wake_.notify_one();
}

void RunRecorder::AddEvaluation(const EvaluationPoint& point) {
  if (store_ == nullptr) return;
  {
    std::lock_guard lock(mu_);
    pending_.evaluations.push_back(point);
    pending_.last = ++queued_;
  }
  wake_.notify_one();
}

void RunRecorder::Flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = queued_;
  done_.wait(lock, [&] { return written_ >= target; });
}

std::uint64_t RunRecorder::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

std::uint64_t RunRecorder::change_batches() const {
  std::lock_guard lock(mu_);
  return change_batches_;
}

void RunRecorder::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || queued_ > written_; });
    if (queued_ == written_) return;  // stopping with nothing left
    Pending batch = std::exchange(pending_, Pending{});
    lock.unlock();
    Write(batch);
    lock.lock();
    written_ = batch.last;
    done_.notify_all();
  }
}

void RunRecorder::Write(const Pending& batch) {
  std::uint64_t failed = 0;
  const auto warn = [&](const char* what, const absl::Status& s) {
    ++failed;
    logging::Warn(what, {{"run", run_id_}, {"rank", rank_}, {"error", s.ToString()}});
  };
  for (const EvaluationPoint& point : batch.evaluations) {
    if (absl::Status s = store_->AddEvaluation(run_id_, rank_, point); !s.ok()) {
      warn("cannot store an evaluation", s);
    }
  }
  if (!batch.changes.empty()) {
    if (absl::Status s = store_->AddChanges(run_id_, rank_, batch.changes); !s.ok()) {
      warn("cannot store verdict changes", s);
    }
  }
  std::lock_guard lock(mu_);
  failed_ += failed;
  if (!batch.changes.empty()) ++change_batches_;
}

}  // namespace greenloop::trainer
