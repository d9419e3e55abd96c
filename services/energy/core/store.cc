#include "services/energy/core/store.h"

#include <algorithm>

namespace greenloop::energy {

BufferedWriter::BufferedWriter(WriterOptions options, EnergyStore* store)
    : options_(std::move(options)), store_(store) {}

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
  StoreBatch batch;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = open_.begin(); it != open_.end();) {
      if (it->second.bucket_start < close_before) {
        closed_.push_back(std::move(it->second));
        it = open_.erase(it);
      } else {
        ++it;
      }
    }
    while (closed_.size() > options_.max_buffered_samples) {
      closed_.pop_front();
      ++stats_.dropped_samples;
    }
    batch.samples.assign(std::make_move_iterator(closed_.begin()),
                         std::make_move_iterator(closed_.end()));
    closed_.clear();
    for (auto& [id, run] : runs_) batch.runs.push_back(std::move(run));
    runs_.clear();
    batch.state = std::move(state_);
    state_.reset();
  }
  if (batch.samples.empty() && batch.runs.empty() && !batch.state.has_value()) {
    return absl::OkStatus();
  }
  absl::Status status = store_->Write(batch);
  absl::MutexLock lock(&mu_);
  ++stats_.writes;
  if (status.ok()) {
    stats_.written_samples += batch.samples.size();
    stats_.store_up = true;
  } else {
    // Keep everything for the next try: older samples in front, and newer run figures and state
    // (added while we were writing) win over the ones we took.
    ++stats_.failed_writes;
    stats_.store_up = false;
    closed_.insert(closed_.begin(), std::make_move_iterator(batch.samples.begin()),
                   std::make_move_iterator(batch.samples.end()));
    while (closed_.size() > options_.max_buffered_samples) {
      closed_.pop_front();
      ++stats_.dropped_samples;
    }
    for (RunEnergy& r : batch.runs) runs_.try_emplace(r.run_id, std::move(r));
    if (!state_.has_value()) state_ = std::move(batch.state);
  }
  stats_.buffered_samples = closed_.size() + open_.size();
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
  s.buffered_samples = closed_.size() + open_.size();
  return s;
}

}  // namespace greenloop::energy
