// The collector's clock: calls Collector::Tick() every interval on its own thread and hands each
// sample to the sinks (metrics, storage, streams).
#pragma once

#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/energy/core/collector.h"

namespace greenloop::energy {

/// \brief Fan-out of interval samples to subscribers (WatchNodeSamples streams).
///
/// Thread-safety: all methods are safe from any thread. Callbacks run on the publishing thread
/// and must not block: a slow subscriber drops samples rather than delaying the collector.
class SampleHub final {
 public:
  using Callback = std::function<void(const IntervalSample&)>;
  /// Registers `callback`; returns the id to unsubscribe with.
  int Subscribe(Callback callback);
  /// Removes a subscriber; after it returns, its callback is not running and will not run.
  void Unsubscribe(int id);
  void Publish(const IntervalSample& sample);
  std::size_t size() const;

 private:
  mutable absl::Mutex mu_;
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int, Callback> callbacks_ ABSL_GUARDED_BY(mu_);
};

/// \brief Ticks a Collector every `interval` on its own thread.
///
/// Ticks are scheduled on a fixed grid (start + k × interval), so a slow tick does not shift the
/// following ones; lag (how late a tick ran) is passed to the sinks for the sample-lag metric.
///
/// Thread-safety: Start() and Stop() from one thread.
class SamplingLoop final {
 public:
  using Sink = std::function<void(const IntervalSample&, absl::Duration lag)>;
  SamplingLoop(Collector* collector, absl::Duration interval, std::vector<Sink> sinks);
  ~SamplingLoop();
  SamplingLoop(const SamplingLoop&) = delete;
  SamplingLoop& operator=(const SamplingLoop&) = delete;

  void Start();
  /// Stops the thread after a final tick (so the last partial interval is not lost). Idempotent.
  void Stop();

 private:
  void Run();

  Collector* const collector_;
  const absl::Duration interval_;
  const std::vector<Sink> sinks_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace greenloop::energy
