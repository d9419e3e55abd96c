#include "services/energy/core/sampling_loop.h"

namespace greenloop::energy {

int SampleHub::Subscribe(Callback callback) {
  absl::MutexLock lock(&mu_);
  int id = next_id_++;
  callbacks_.emplace(id, std::move(callback));
  return id;
}

void SampleHub::Unsubscribe(int id) {
  absl::MutexLock lock(&mu_);
  callbacks_.erase(id);
}

void SampleHub::Publish(const IntervalSample& sample) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, callback] : callbacks_) callback(sample);
}

std::size_t SampleHub::size() const {
  absl::MutexLock lock(&mu_);
  return callbacks_.size();
}

SamplingLoop::SamplingLoop(Collector* collector, absl::Duration interval, std::vector<Sink> sinks)
    : collector_(collector), interval_(interval), sinks_(std::move(sinks)) {}

SamplingLoop::~SamplingLoop() { Stop(); }

void SamplingLoop::Start() {
  thread_ = std::thread([this] { Run(); });
}

void SamplingLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SamplingLoop::Run() {
  absl::Time next = absl::Now();
  for (;;) {
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithDeadline(absl::Condition(&stopping), next);
      stop = stopping_;
    }
    const absl::Time now = absl::Now();
    const absl::Duration lag = stop ? absl::ZeroDuration() : now - next;
    for (const IntervalSample& sample : collector_->Tick(now)) {
      for (const Sink& sink : sinks_) sink(sample, lag);
    }
    if (stop) return;
    next += interval_;
    if (next < now) next = now + interval_;  // fell behind by more than a tick: skip, don't burst
  }
}

}  // namespace greenloop::energy
