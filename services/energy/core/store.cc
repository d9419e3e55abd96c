#include "services/energy/core/store.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace greenloop::energy {

namespace {

// 16 hex digits from the OS's random source: batch ids of two writers (two collector processes on
// one node, one after the other) never meet.
std::string RandomPrefix() {
  std::random_device device;
  const std::uint64_t high = device();
  const std::uint64_t low = device();
  return fmt::format("{:016x}", (high << 32) ^ low);
}

}  // namespace

BufferedWriter::BufferedWriter(WriterOptions options, EnergyStore* store)
    : options_(std::move(options)), store_(store), batch_prefix_(RandomPrefix()) {}

BufferedWriter::~BufferedWriter() { Stop(); }

absl::Time BufferedWriter::BucketOf(absl::Time t) const {
  const absl::Duration since_epoch = t - absl::UnixEpoch();
  return absl::UnixEpoch() + absl::Floor(since_epoch, options_.sample_resolution);
}

void BufferedWriter::Add(const IntervalSample& sample, std::vector<RunEnergy> runs,
                         SavedState state) {
  absl::MutexLock lock(&mu_);
  const double seconds = absl::ToDoubleSeconds(sample.interval);
  if (seconds > 0) {
    // An interval belongs to the bucket holding its midpoint.
    const absl::Time bucket = BucketOf(sample.time - sample.interval / 2);
    for (const ZoneSample& z : sample.zones) {
      SampleRow& row = open_[{z.zone, bucket}];
      if (row.bucket_seconds == 0) {
        row.zone = z.zone;
        row.bucket_start = bucket;
        row.domain = z.domain;
        row.source = z.source;
        row.bucket_seconds = absl::ToDoubleSeconds(options_.sample_resolution);
      }
      if (z.source == Source::kEstimated) row.source = Source::kEstimated;  // part estimated
      row.energy_joules += z.energy_joules;
      row.idle_joules += std::min(z.energy_joules, z.idle_power_watts * seconds);
      row.covered_seconds += seconds;
    }
  }
  for (RunEnergy& r : runs) runs_[r.run_id] = std::move(r);
  state_ = std::move(state);
}

absl::Status BufferedWriter::Flush(absl::Time now) {
  absl::MutexLock write_lock(&write_mu_);
  return WriteLocked(BucketOf(now));
}

absl::Status BufferedWriter::FlushAll() {
  absl::MutexLock write_lock(&write_mu_);
  return WriteLocked(absl::InfiniteFuture());
}

absl::Status BufferedWriter::WriteLocked(absl::Time close_before) {
  CloseBuckets(close_before);
  if (retry_.has_value()) {
    // The last batch failed, perhaps after its commit: it goes again as it was, under its id.
    if (absl::Status s = WriteBatch(*retry_); !s.ok()) return s;
    retry_.reset();
    absl::MutexLock lock(&mu_);
    retry_samples_ = 0;
  }
  StoreBatch batch = TakeBatch();
  if (batch.samples.empty() && batch.runs.empty() && !batch.state.has_value()) {
    return absl::OkStatus();
  }
  batch.batch_id = fmt::format("{}-{}", batch_prefix_, ++batches_);
  absl::Status status = WriteBatch(batch);
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    retry_samples_ = batch.samples.size();
    retry_ = std::move(batch);
  }
  return status;
}

void BufferedWriter::CloseBuckets(absl::Time close_before) {
  absl::MutexLock lock(&mu_);
  for (auto it = open_.begin(); it != open_.end();) {
    if (it->second.bucket_start < close_before) {
      closed_.push_back(std::move(it->second));
      it = open_.erase(it);
    } else {
      ++it;
    }
  }
  // Bounded through an outage: the batch to retry and the rows waiting behind it hold at most
  // max_buffered_samples; beyond, the oldest rows are dropped and counted, never silently. The
  // oldest are the retry batch's: a batch trimmed of rows is still all-or-nothing under its id.
  while (retry_samples_ + closed_.size() > options_.max_buffered_samples) {
    if (retry_.has_value() && !retry_->samples.empty()) {
      retry_->samples.erase(retry_->samples.begin());
      --retry_samples_;
    } else {
      closed_.pop_front();
    }
    ++stats_.dropped_samples;
  }
}

StoreBatch BufferedWriter::TakeBatch() {
  StoreBatch batch;
  absl::MutexLock lock(&mu_);
  batch.samples.assign(std::make_move_iterator(closed_.begin()),
                       std::make_move_iterator(closed_.end()));
  closed_.clear();
  for (auto& [id, run] : runs_) batch.runs.push_back(std::move(run));
  runs_.clear();
  batch.state = std::move(state_);
  state_.reset();
  return batch;
}

absl::Status BufferedWriter::WriteBatch(const StoreBatch& batch) {
  absl::Status status = store_->Write(batch);
  absl::MutexLock lock(&mu_);
  ++stats_.writes;
  if (status.ok()) {
    stats_.written_samples += batch.samples.size();
    stats_.store_up = true;
  } else {
    ++stats_.failed_writes;
    stats_.store_up = false;
  }
  return status;
}

void BufferedWriter::Start() {
  thread_ = std::thread([this] {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
        mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.flush_interval);
        if (stopping_) return;
      }
      Flush(absl::Now()).IgnoreError();  // failures are counted in Stats() and retried
    }
  });
}

void BufferedWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  FlushAll().IgnoreError();
}

WriterStats BufferedWriter::Stats() const {
  absl::MutexLock lock(&mu_);
  WriterStats s = stats_;
  s.buffered_samples = closed_.size() + open_.size() + retry_samples_;
  return s;
}

}  // namespace greenloop::energy
