#include "services/feedback/adapters/verdict_streams.h"

#include <deque>
#include <vector>

#include "common/grpc/status.h"
#include "common/logging/logging.h"
#include "common/status/status.h"

namespace greenloop::feedback {

class VerdictStream final : public ::grpc::ServerWriteReactor<v1::WatchVerdictsResponse> {
 public:
  VerdictStream(VerdictStreams* owner, std::string campaign_id, std::int64_t after_seq)
      : owner_(owner), campaign_id_(std::move(campaign_id)), after_seq_(after_seq) {}

  const std::string& campaign_id() const { return campaign_id_; }

  // What the pump needs: nullopt when the stream is busy writing or finished.
  std::optional<std::int64_t> WantsAfter() {
    absl::MutexLock lock(&mu_);
    if (finished_ || writing_ || !pending_.empty()) return std::nullopt;
    return after_seq_;
  }

  bool fresh() {
    absl::MutexLock lock(&mu_);
    return std::exchange(fresh_, false);
  }

  void Offer(std::vector<v1::WatchVerdictsResponse> batch, std::int64_t last_seq, bool end) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    for (auto& r : batch) pending_.push_back(std::move(r));
    after_seq_ = last_seq;
    ending_ = end;
    if (!writing_) NextLocked();
  }

  void Close(const ::grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    bool wake = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        FinishLocked(::grpc::Status::CANCELLED);
        return;
      }
      NextLocked();
      wake = !writing_ && !finished_;
    }
    if (wake) owner_->Notify(campaign_id_);  // verdicts may have come while it was writing
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(::grpc::Status::CANCELLED);
  }

  void OnDone() override {
    owner_->Remove(this);
    delete this;
  }

 private:
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      StartWrite(&current_);
    } else if (ending_) {
      FinishLocked(::grpc::Status::OK);
    }
  }

  void FinishLocked(const ::grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    pending_.clear();
    Finish(status);
  }

  VerdictStreams* const owner_;
  const std::string campaign_id_;
  absl::Mutex mu_;
  std::int64_t after_seq_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::WatchVerdictsResponse> pending_ ABSL_GUARDED_BY(mu_);
  v1::WatchVerdictsResponse current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool fresh_ ABSL_GUARDED_BY(mu_) = true;
};

::grpc::ServerWriteReactor<v1::WatchVerdictsResponse>* FailedVerdictStream(
    const ::grpc::Status& status) {
  struct Failed final : ::grpc::ServerWriteReactor<v1::WatchVerdictsResponse> {
    explicit Failed(const ::grpc::Status& s) { Finish(s); }
    void OnDone() override { delete this; }
  };
  return new Failed(status);
}

VerdictStreams::VerdictStreams(FeedbackQueue* queue, absl::Duration poll_interval)
    : queue_(queue), poll_interval_(poll_interval) {}

VerdictStreams::~VerdictStreams() { Stop(); }

void VerdictStreams::Start() { pump_ = std::thread(&VerdictStreams::Pump, this); }

::grpc::ServerWriteReactor<v1::WatchVerdictsResponse>* VerdictStreams::Open(
    const std::string& campaign_id, std::int64_t after_seq) {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      return FailedVerdictStream(::grpc::Status(::grpc::StatusCode::UNAVAILABLE,
                                                "the feedback service is shutting down; resume "
                                                "from your last cursor"));
    }
    auto* stream = new VerdictStream(this, campaign_id, after_seq);
    streams_.insert(stream);
    Notify(campaign_id);
    return stream;
  }
}

void VerdictStreams::Notify(const std::string& campaign_id) {
  absl::MutexLock lock(&wake_mu_);
  dirty_.insert(campaign_id);
  woken_ = true;
}

void VerdictStreams::Wake() {
  absl::MutexLock lock(&wake_mu_);
  woken_ = true;
}

void VerdictStreams::Remove(VerdictStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

void VerdictStreams::CloseAll() {
  absl::MutexLock lock(&mu_);
  closing_ = true;
  for (VerdictStream* s : streams_) {
    s->Close(::grpc::Status(::grpc::StatusCode::UNAVAILABLE,
                            "the feedback service is shutting down; resume from your last cursor"));
  }
}

void VerdictStreams::Stop() {
  {
    absl::MutexLock lock(&wake_mu_);
    stop_ = true;
  }
  if (pump_.joinable()) pump_.join();
}

int VerdictStreams::open_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

void VerdictStreams::Pump() {
  constexpr int kBatch = 100;
  absl::Time next_poll = absl::Now() + poll_interval_;
  while (true) {
    std::set<std::string> dirty;
    {
      absl::MutexLock lock(&wake_mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(wake_mu_) { return woken_ || stop_; };
      wake_mu_.AwaitWithDeadline(absl::Condition(&ready), next_poll);
      if (stop_) return;
      woken_ = false;
      dirty.swap(dirty_);
    }
    const bool poll = absl::Now() >= next_poll;
    if (poll) next_poll = absl::Now() + poll_interval_;
    absl::MutexLock lock(&mu_);
    for (VerdictStream* s : streams_) {
      std::optional<std::int64_t> after = s->WantsAfter();
      if (!after.has_value()) continue;
      const bool fresh = s->fresh();
      if (!fresh && !poll && !dirty.contains(s->campaign_id())) continue;
      absl::StatusOr<FeedbackQueue::VerdictPage> next;
      try {
        next = queue_->NextVerdicts(s->campaign_id(), *after, kBatch);
      } catch (...) {
        next = StatusFromCurrentException("WatchVerdicts");
      }
      if (!next.ok()) {
        if (next.status().code() == absl::StatusCode::kNotFound) {
          s->Close(ToGrpcStatus(next.status()));
        } else {
          // Database down: the stream waits and the next poll tries again.
          logging::Warn("cannot read verdicts; retrying",
                        {{"campaign", s->campaign_id()}, {"error", next.status().ToString()}});
        }
        continue;
      }
      const bool more = static_cast<int>(next->responses.size()) == kBatch;
      s->Offer(std::move(next->responses), next->last_seq, next->finished && !more);
      if (more) Notify(s->campaign_id());
    }
  }
}

}  // namespace greenloop::feedback
