#include "services/feedback/adapters/metrics.h"

#include "common/logging/logging.h"

namespace greenloop::feedback {
namespace {

template <typename T>
prometheus::Family<T>& Build(prometheus::Registry& r, const std::string& name,
                             const std::string& help);

template <>
prometheus::Family<prometheus::Gauge>& Build(prometheus::Registry& r, const std::string& name,
                                             const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}
template <>
prometheus::Family<prometheus::Counter>& Build(prometheus::Registry& r, const std::string& name,
                                               const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

void Sync(prometheus::Family<prometheus::Gauge>& family,
          std::map<std::string, prometheus::Gauge*>& gauges,
          const std::map<std::string, double>& values) {
  for (auto it = gauges.begin(); it != gauges.end();) {
    if (!values.contains(it->first)) {
      family.Remove(it->second);
      it = gauges.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [campaign, v] : values) {
    auto [it, inserted] = gauges.try_emplace(campaign, nullptr);
    if (inserted) it->second = &family.Add({{"campaign", campaign}});
    it->second->Set(v);
  }
}

std::map<std::string, double> ToDouble(const std::map<std::string, std::int64_t>& in) {
  std::map<std::string, double> out;
  for (const auto& [k, v] : in) out[k] = static_cast<double>(v);
  return out;
}

}  // namespace

FeedbackMetrics::FeedbackMetrics(prometheus::Registry& registry)
    : depth_(Build<prometheus::Gauge>(registry, "greenloop_feedback_queue_depth",
                                      "Items without a verdict that still need ratings")),
      active_(Build<prometheus::Gauge>(registry, "greenloop_feedback_leases_active",
                                       "Leases live now")),
      granted_(Build<prometheus::Counter>(registry, "greenloop_feedback_leases_granted_total",
                                          "Items leased to raters")),
      expired_(Build<prometheus::Counter>(registry, "greenloop_feedback_leases_expired_total",
                                          "Leases that ran out before an answer")
                   .Add({})),
      ratings_(Build<prometheus::Counter>(registry, "greenloop_feedback_ratings_total",
                                          "Ratings recorded")),
      duplicates_(Build<prometheus::Counter>(registry, "greenloop_feedback_duplicate_submits_total",
                                             "Submits that repeated an earlier one (retries)")
                      .Add({})),
      skips_(Build<prometheus::Counter>(registry, "greenloop_feedback_skips_total",
                                        "Items skipped by raters")),
      verdicts_(Build<prometheus::Counter>(registry, "greenloop_feedback_verdicts_total",
                                           "Verdicts emitted, revisions included")),
      agreement_(Build<prometheus::Gauge>(registry, "greenloop_feedback_rater_agreement",
                                          "Fleiss' kappa over the campaign's complete items")),
      lease_latency_(
          prometheus::BuildHistogram()
              .Name("greenloop_feedback_lease_latency_seconds")
              .Help("Time the server took to answer a Lease")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02,
                                                               0.05, 0.1, 0.2, 0.5, 1, 2})),
      rating_seconds_(prometheus::BuildHistogram()
                          .Name("greenloop_feedback_rating_seconds")
                          .Help("Seconds from lease to submit, as the server measured them")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 20, 30, 60,
                                                                           120, 300, 600})),
      auth_failures_(Build<prometheus::Counter>(registry, "greenloop_feedback_auth_failures_total",
                                                "Calls refused by authentication, role or rate "
                                                "limit")),
      unauthenticated_(auth_failures_.Add({{"reason", "unauthenticated"}})),
      denied_(auth_failures_.Add({{"reason", "permission_denied"}})),
      rate_limited_(auth_failures_.Add({{"reason", "rate_limited"}})),
      throttled_(auth_failures_.Add({{"reason", "throttled"}})),
      auth_disabled_(Build<prometheus::Gauge>(registry, "greenloop_feedback_auth_disabled",
                                              "1 when bearer tokens are not checked")
                         .Add({})),
      errors_(Build<prometheus::Counter>(registry, "greenloop_feedback_errors_total",
                                         "Calls that ended in INTERNAL (bugs; see the log)")) {}

void FeedbackMetrics::OnLeased(const std::string& campaign_id, int items) {
  granted_.Add({{"campaign", campaign_id}}).Increment(items);
}

void FeedbackMetrics::OnSubmitted(const std::string& campaign_id, bool duplicate,
                                  bool verdict_emitted, double server_seconds) {
  if (duplicate) {
    duplicates_.Increment();
    return;
  }
  ratings_.Add({{"campaign", campaign_id}}).Increment();
  rating_seconds_.Observe(server_seconds);
  if (verdict_emitted) verdicts_.Add({{"campaign", campaign_id}}).Increment();
}

void FeedbackMetrics::OnSkipped(const std::string& campaign_id) {
  skips_.Add({{"campaign", campaign_id}}).Increment();
}

void FeedbackMetrics::OnLeasesExpired(std::int64_t count) {
  expired_.Increment(static_cast<double>(count));
}

void FeedbackMetrics::OnRevisions(const std::string& campaign_id, int count) {
  verdicts_.Add({{"campaign", campaign_id}}).Increment(count);
}

void FeedbackMetrics::OnRateLimited() { rate_limited_.Increment(); }

void FeedbackMetrics::OnInternalError(const std::string& rpc) {
  errors_.Add({{"rpc", rpc}}).Increment();
}

void FeedbackMetrics::SetGauges(const std::map<std::string, std::int64_t>& depth,
                                const std::map<std::string, std::int64_t>& live_leases,
                                const std::map<std::string, double>& agreement) {
  absl::MutexLock lock(&mu_);
  Sync(depth_, depth_gauges_, ToDouble(depth));
  Sync(active_, active_gauges_, ToDouble(live_leases));
  Sync(agreement_, agreement_gauges_, agreement);
}

}  // namespace greenloop::feedback

namespace greenloop::feedback {

GaugeRefresher::GaugeRefresher(FeedbackMetrics* metrics, absl::Duration interval,
                               std::function<absl::StatusOr<Snapshot>()> read)
    : metrics_(metrics), interval_(interval), read_(std::move(read)) {}

GaugeRefresher::~GaugeRefresher() { Stop(); }

void GaugeRefresher::Start() {
  thread_ = std::thread([this] {
    do {
      absl::StatusOr<Snapshot> s = read_();
      if (s.ok()) {
        metrics_->SetGauges(s->depth, s->live_leases, s->agreement);
      } else {
        logging::Warn("cannot refresh queue gauges", {{"error", s.status().ToString()}});
      }
    } while (!stop_.WaitForNotificationWithTimeout(interval_));
  });
}

void GaugeRefresher::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace greenloop::feedback
