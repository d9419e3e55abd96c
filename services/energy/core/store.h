// Where the collector's figures go: the interface storage implements, and the writer that batches,
// buffers through outages and backfills.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/energy/core/collector.h"

namespace greenloop::energy {

/// One zone's energy over one bucket of the storage resolution.
struct SampleRow {
  std::string zone;
  absl::Time bucket_start;
  Domain domain = Domain::kNode;
  Source source = Source::kEstimated;
  double bucket_seconds = 0;
  double energy_joules = 0;
  double idle_joules = 0;
  double covered_seconds = 0;  // seconds of the bucket with readings
};

/// What one write carries: closed sample buckets, the latest figures of every run that changed,
/// and the counters to continue from. Written atomically.
struct StoreBatch {
  // Unique per batch (the writer's random prefix and a counter); a batch written again after a
  // failure keeps it, so the store can tell it already holds it. Empty: no such check.
  std::string batch_id;
  std::vector<SampleRow> samples;
  std::vector<RunEnergy> runs;
  std::optional<SavedState> state;
};

/// \brief Persistence of one node's figures (PostgreSQL in production, memory in tests).
///
/// Thread-safety: Write() is called from one writer thread at a time; LoadRun() from RPC threads
/// concurrently with it.
class EnergyStore {
 public:
  virtual ~EnergyStore() = default;
  /// Writes a batch atomically. UNAVAILABLE when the database is down or the commit's outcome is
  /// unknown (the caller keeps the batch and tries it again, as it was). A batch whose batch_id
  /// this store already committed is not applied again (OK): sample energy adds up per bucket, so
  /// a retry after a commit whose answer was lost must not count it twice.
  virtual absl::Status Write(const StoreBatch& batch) = 0;
  /// Returns the saved state of this node with its active runs; nullopt when it never saved any.
  virtual absl::StatusOr<std::optional<SavedState>> Load() = 0;
  /// Returns one run's stored figures on this node; NOT_FOUND when there are none.
  virtual absl::StatusOr<RunEnergy> LoadRun(std::string_view run_id) = 0;
};

struct WriterOptions {
  absl::Duration sample_resolution = absl::Seconds(10);
  absl::Duration flush_interval = absl::Seconds(5);
  // Sample rows kept while the store is down; beyond it the oldest are dropped and counted. Run
  // totals and state are never dropped: only their latest value is kept, one per run.
  std::size_t max_buffered_samples = 100'000;
};

/// Counters of the writer, for metrics.
struct WriterStats {
  std::size_t buffered_samples = 0;
  std::uint64_t dropped_samples = 0;
  std::uint64_t written_samples = 0;
  std::uint64_t failed_writes = 0;
  std::uint64_t writes = 0;
  bool store_up = true;
};

/// \brief Downsamples interval readings into buckets and writes them, with run totals and restart
/// state, in batches from its own thread; keeps measuring through a database outage and backfills
/// when it returns. A batch that failed is tried again as it was, under its batch_id, before any
/// newer one: what arrived meanwhile waits for the next batch, so the store's check of the id
/// keeps a retry after an unknown commit outcome from counting twice.
///
/// Thread-safety: Add() from the sampling thread, the rest from anywhere.
class BufferedWriter final {
 public:
  /// `store` must outlive the writer.
  BufferedWriter(WriterOptions options, EnergyStore* store);
  ~BufferedWriter();
  BufferedWriter(const BufferedWriter&) = delete;
  BufferedWriter& operator=(const BufferedWriter&) = delete;

  /// Adds one interval's readings, the runs it touched, and the state after it.
  void Add(const IntervalSample& sample, std::vector<RunEnergy> runs, SavedState state);

  /// Writes what is pending now (closing buckets older than `now`'s bucket). Returns the store's
  /// status; on failure everything stays pending.
  absl::Status Flush(absl::Time now);

  /// Closes every open bucket and writes everything: on shutdown.
  absl::Status FlushAll();

  /// Starts the thread that calls Flush() every flush_interval.
  void Start();
  /// Stops that thread (after one last FlushAll()). Idempotent.
  void Stop();

  WriterStats Stats() const;

 private:
  absl::Status WriteLocked(absl::Time close_before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Moves the buckets older than `close_before` to the closed ones, within the buffer's bound.
  void CloseBuckets(absl::Time close_before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Takes the closed buckets, the runs and the state into a new batch (empty when none).
  StoreBatch TakeBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Writes `batch` and counts it.
  absl::Status WriteBatch(const StoreBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::Time BucketOf(absl::Time t) const;

  const WriterOptions options_;
  EnergyStore* const store_;

  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one write at a time
  // The batch that failed last, to write again as it was before any newer one.
  std::optional<StoreBatch> retry_ ABSL_GUARDED_BY(write_mu_);
  const std::string batch_prefix_;  // random, per writer
  std::uint64_t batches_ ABSL_GUARDED_BY(write_mu_) = 0;
  mutable absl::Mutex mu_;
  std::map<std::tuple<std::string, absl::Time>, SampleRow> open_ ABSL_GUARDED_BY(mu_);
  std::deque<SampleRow> closed_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, RunEnergy> runs_ ABSL_GUARDED_BY(mu_);
  std::optional<SavedState> state_ ABSL_GUARDED_BY(mu_);
  std::size_t retry_samples_ ABSL_GUARDED_BY(mu_) = 0;  // rows in retry_, for the bound and Stats
  WriterStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace greenloop::energy
