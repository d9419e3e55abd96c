#include "services/trainer/core/noise_review.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace greenloop::trainer {

v1::NoiseReview WithDefaults(const v1::NoiseReview& in, std::uint32_t candidates) {
  v1::NoiseReview r = in;
  if (r.warmup_epochs() == 0) r.set_warmup_epochs(1);
  if (r.auto_threshold() == 0) r.set_auto_threshold(0.9);
  if (r.human_threshold() == 0) r.set_human_threshold(std::min(0.5, r.auto_threshold()));
  if (r.min_outstanding_items() == 0) r.set_min_outstanding_items(4 * std::max(1u, candidates));
  if (r.outstanding_seconds() == 0) r.set_outstanding_seconds(10);
  if (r.relabel_probability() == 0) r.set_relabel_probability(0.6);
  return r;
}

namespace {

// Sorts `positions` (with their posteriors) most suspicious first, ties by position.
void SortBySuspicion(std::vector<std::int64_t>& positions, std::vector<double>& posterior) {
  std::vector<std::size_t> order(positions.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return posterior[a] > posterior[b]; });
  std::vector<std::int64_t> p2;
  std::vector<double> q2;
  for (std::size_t i : order) {
    p2.push_back(positions[i]);
    q2.push_back(posterior[i]);
  }
  positions.swap(p2);
  posterior.swap(q2);
}

}  // namespace

ReviewSplit SplitForReview(const SampleStats& stats, std::span<const std::uint8_t> active,
                           std::span<const std::int64_t> labels, const v1::NoiseReview& review,
                           v1::Mode mode, const std::function<bool(std::size_t)>& decided,
                           std::uint64_t min_record_step) {
  ReviewSplit split;
  std::vector<std::size_t> who;
  std::vector<double> values;
  // Class-wise: a hard class (Shirt) has high losses on its clean samples too, so each loss is
  // taken relative to the mean loss of the samples that carry the same label.
  std::map<std::int64_t, std::pair<double, std::size_t>> by_label;
  for (std::size_t p = 0; p < stats.size(); ++p) {
    if (active[p] == 0 || !stats.seen(p) || decided(p)) continue;
    if (stats.recorded_step(p) < min_record_step) continue;
    who.push_back(p);
    auto& [sum, count] = by_label[labels[p]];
    sum += stats.relative_loss(p);
    ++count;
  }
  for (std::size_t p : who) {
    const auto& [sum, count] = by_label[labels[p]];
    const double mean = sum / static_cast<double>(count);
    values.push_back(mean > 1e-12 ? stats.relative_loss(p) / mean : 0.0);
  }
  split.classified = who.size();
  split.fit = FitTwoGaussians(values);
  const bool automatic = mode == v1::MODE_AUTO || mode == v1::MODE_HYBRID;
  for (std::size_t i = 0; i < who.size(); ++i) {
    const double post = split.fit.posterior_high[i];
    const auto p = static_cast<std::int64_t>(who[i]);
    const bool confident = post >= review.auto_threshold();
    if (automatic && confident) {
      if (stats.predicted(who[i]) == labels[who[i]]) continue;
      const bool sure = stats.predicted_probability(who[i]) >= review.relabel_probability();
      if (sure || mode == v1::MODE_AUTO) {
        split.automatic.push_back(p);
        split.automatic_posterior.push_back(post);
        continue;
      }
    }
    const bool ask = (mode == v1::MODE_HITL && post >= review.human_threshold()) ||
                     (mode == v1::MODE_HYBRID && post >= review.human_threshold());
    if (ask) {
      split.human.push_back(p);
      split.human_posterior.push_back(post);
    }
  }
  SortBySuspicion(split.automatic, split.automatic_posterior);
  SortBySuspicion(split.human, split.human_posterior);
  split.fit.posterior_high.clear();
  return split;
}

void OutstandingLimit::Enqueued(std::uint64_t n, absl::Time now) {
  if (n == 0) return;
  if (first_ == absl::InfinitePast()) first_ = now;
  enqueued_ += n;
}

void OutstandingLimit::Answered(std::uint64_t n) { answered_ += n; }

double OutstandingLimit::Rate(absl::Time now) const {
  if (first_ == absl::InfinitePast()) return 0;
  const double elapsed = absl::ToDoubleSeconds(now - first_);
  return elapsed > 0 ? static_cast<double>(answered_) / elapsed : 0;
}

std::uint64_t OutstandingLimit::Room(absl::Time now) const {
  const auto by_rate = static_cast<std::uint64_t>(Rate(now) * seconds_);
  const std::uint64_t limit = std::max(min_, by_rate);
  return limit > outstanding() ? limit - outstanding() : 0;
}

}  // namespace greenloop::trainer
