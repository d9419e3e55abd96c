// The feedback queue's Prometheus series, fed by the queue (as its QueueObserver), by the API
// front (auth failures, lease latency) and by a periodic read of queue gauges.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "services/feedback/core/queue.h"

namespace greenloop::feedback {

/// \brief Every greenloop_feedback_* series. Label sets are bounded: campaigns (a handful per
/// run), outcomes and reasons; never raters or items.
///
///   greenloop_feedback_queue_depth{campaign}              gauge: items still needing ratings
///   greenloop_feedback_leases_active{campaign}            gauge: leases live now
///   greenloop_feedback_leases_granted_total{campaign}     counter
///   greenloop_feedback_leases_expired_total               counter: leases that ran out
///   greenloop_feedback_ratings_total{campaign}            counter (rate() gives ratings/s)
///   greenloop_feedback_duplicate_submits_total            counter: idempotent retries
///   greenloop_feedback_skips_total{campaign}              counter
///   greenloop_feedback_verdicts_total{campaign}           counter: verdicts emitted (+revisions)
///   greenloop_feedback_rater_agreement{campaign}          gauge: Fleiss' κ, refreshed periodically
///   greenloop_feedback_lease_latency_seconds              histogram: Lease RPC, server side
///   greenloop_feedback_rating_seconds                     histogram: lease to submit
///   greenloop_feedback_auth_failures_total{reason}        counter: unauthenticated, denied,
///                                                         rate_limited, throttled (HTTP
///                                                         clients failing too often)
///   greenloop_feedback_auth_disabled                      gauge: 1 when tokens are not checked
///   greenloop_feedback_errors_total{rpc}                  counter: INTERNAL results
///
/// Thread-safety: thread-safe.
class FeedbackMetrics final : public QueueObserver {
 public:
  explicit FeedbackMetrics(prometheus::Registry& registry);

  void OnLeased(const std::string& campaign_id, int items) override;
  void OnSubmitted(const std::string& campaign_id, bool duplicate, bool verdict_emitted,
                   double server_seconds) override;
  void OnSkipped(const std::string& campaign_id) override;
  void OnLeasesExpired(std::int64_t count) override;
  void OnRevisions(const std::string& campaign_id, int count) override;
  void OnRateLimited() override;

  void ObserveLeaseLatency(double seconds) { lease_latency_.Observe(seconds); }
  void OnUnauthenticated() { unauthenticated_.Increment(); }
  void OnAuthThrottled() { throttled_.Increment(); }
  void OnPermissionDenied() { denied_.Increment(); }
  void OnInternalError(const std::string& rpc);
  void SetAuthDisabled(bool disabled) { auth_disabled_.Set(disabled ? 1 : 0); }
  /// Replaces the per-campaign gauges (campaigns absent from the maps are removed).
  void SetGauges(const std::map<std::string, std::int64_t>& depth,
                 const std::map<std::string, std::int64_t>& live_leases,
                 const std::map<std::string, double>& agreement);

 private:
  prometheus::Family<prometheus::Gauge>& depth_;
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Family<prometheus::Counter>& granted_;
  prometheus::Counter& expired_;
  prometheus::Family<prometheus::Counter>& ratings_;
  prometheus::Counter& duplicates_;
  prometheus::Family<prometheus::Counter>& skips_;
  prometheus::Family<prometheus::Counter>& verdicts_;
  prometheus::Family<prometheus::Gauge>& agreement_;
  prometheus::Histogram& lease_latency_;
  prometheus::Histogram& rating_seconds_;
  prometheus::Family<prometheus::Counter>& auth_failures_;
  prometheus::Counter& unauthenticated_;
  prometheus::Counter& denied_;
  prometheus::Counter& rate_limited_;
  prometheus::Counter& throttled_;
  prometheus::Gauge& auth_disabled_;
  prometheus::Family<prometheus::Counter>& errors_;
  absl::Mutex mu_;
  std::map<std::string, prometheus::Gauge*> depth_gauges_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Gauge*> active_gauges_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Gauge*> agreement_gauges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::feedback

namespace greenloop::feedback {

/// \brief Refreshes the per-campaign gauges every `interval` from `read` (queue depth, live leases,
/// agreement). A failing read is logged and retried at the next tick; the gauges keep their last
/// values. Start() once; Stop() joins (idempotent; the destructor stops).
class GaugeRefresher final {
 public:
  struct Snapshot {
    std::map<std::string, std::int64_t> depth;
    std::map<std::string, std::int64_t> live_leases;
    std::map<std::string, double> agreement;
  };
  GaugeRefresher(FeedbackMetrics* metrics, absl::Duration interval,
                 std::function<absl::StatusOr<Snapshot>()> read);
  ~GaugeRefresher();
  void Start();
  void Stop();

 private:
  FeedbackMetrics* const metrics_;
  const absl::Duration interval_;
  std::function<absl::StatusOr<Snapshot>()> read_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace greenloop::feedback
