// The run's append-only records (applied verdicts, evaluation points) written to the RunStore on
// a thread of its own, so that a training step never waits for PostgreSQL.
//
// The training thread hands records over and goes on; the writer takes everything queued at once
// and writes it, in the order it came, as one AddChanges call for all the queued changes (one
// statement) and one AddEvaluation per point. A write that fails is logged with the run and
// counted (failed()); the records in it are not retried (the run's state lives in its
// checkpoint; the change log is its account). Flush() waits until everything handed over so far
// is written; the destructor flushes and joins. Use it for records whose order relative to other
// writes does not matter; the run row itself (SaveRun, which is replaced) stays synchronous.
//
//   RunRecorder recorder(store, "run-1", /*rank=*/0);
//   recorder.AddChanges(applied.changes);   // returns at once
//   recorder.AddEvaluation(point);
//   recorder.Flush();                        // before the run reports its end
//
// Thread-safety: thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

class RunRecorder final {
 public:
  // `store` is not owned and must outlive the recorder; null records nothing.
  RunRecorder(RunStore* store, std::string run_id, std::uint32_t rank);
  ~RunRecorder();
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  void AddChanges(const std::vector<SampleChange>& changes);
  void AddEvaluation(const EvaluationPoint& point);
  // Blocks until every record handed over before the call is written or has failed.
  void Flush();
  // Writes that failed (each logged once).
  std::uint64_t failed() const;
  // AddChanges calls made on the store (batches written).
  std::uint64_t change_batches() const;

 private:
  struct Pending {
    std::vector<SampleChange> changes;
    std::vector<EvaluationPoint> evaluations;
    std::uint64_t last = 0;  // sequence of the last record in it
  };
  void Loop();
  void Write(const Pending& batch);

  RunStore* store_;
  const std::string run_id_;
  const std::uint32_t rank_;
  mutable std::mutex mu_;
  std::condition_variable wake_;  // records queued, or stopping
  std::condition_variable done_;  // written_ advanced
  Pending pending_;
  std::uint64_t queued_ = 0;   // records handed over
  std::uint64_t written_ = 0;  // records written or failed
  std::uint64_t failed_ = 0;
  std::uint64_t change_batches_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace greenloop::trainer
