#include "services/trainer/core/selection.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace greenloop::trainer {

namespace {

ScoredCandidate ScoreRow(std::span<const float> row, std::int64_t given, v1::SelectionScore score) {
  ScoredCandidate s;
  double first = 0;
  double second = 0;
  double entropy = 0;
  for (std::size_t k = 0; k < row.size(); ++k) {
    const double p = row[k];
    if (p > first) {
      second = first;
      first = p;
      s.top = static_cast<std::int64_t>(k);
    } else if (p > second) {
      second = p;
    }
    if (p > 0) entropy -= p * std::log(p);
    if (static_cast<std::int64_t>(k) != given && p > s.other_p) {
      s.other_p = p;
      s.other = static_cast<std::int64_t>(k);
    }
  }
  s.top_p = first;
  switch (score) {
    case v1::SELECTION_SCORE_MARGIN:
      s.score = 1.0 - (first - second);
      break;
    case v1::SELECTION_SCORE_ENTROPY:
      s.score = entropy;
      break;
    default: {
      const double p_given =
          given >= 0 && static_cast<std::size_t>(given) < row.size() ? row[given] : 0.0;
      s.score = -std::log(std::max<double>(p_given, 1e-12));
    }
  }
  return s;
}

}  // namespace

std::vector<ScoredCandidate> RankCandidates(std::span<const float> probs,
                                            std::span<const std::int64_t> given,
                                            std::size_t classes, v1::SelectionScore score,
                                            std::size_t wanted) {
  std::vector<ScoredCandidate> scored;
  if (classes == 0) return scored;
  const std::size_t rows = std::min(given.size(), probs.size() / classes);
  scored.reserve(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    ScoredCandidate s = ScoreRow(probs.subspan(i * classes, classes), given[i], score);
    s.index = i;
    scored.push_back(s);
  }
  std::stable_sort(
      scored.begin(), scored.end(),
      [](const ScoredCandidate& a, const ScoredCandidate& b) { return a.score > b.score; });
  if (scored.size() > wanted) scored.resize(wanted);
  return scored;
}

CandidateRoute RouteCandidate(v1::Mode mode, double other_p, double threshold, double band) {
  CandidateRoute route;
  switch (mode) {
    case v1::MODE_AUTO:
      route.automatic = other_p >= threshold;
      break;
    case v1::MODE_HITL:
      route.human = true;
      break;
    case v1::MODE_HYBRID:
      route.automatic = other_p >= threshold + band;
      route.human = !route.automatic && std::abs(other_p - threshold) < band;
      break;
    default:
      break;
  }
  return route;
}

void ThresholdCalibrator::Observe(const v1::Verdict& verdict) {
  auto it = in_band_.find(verdict.sample().index());
  if (it == in_band_.end()) return;
  bool said_wrong = false;
  if (verdict.decision_case() == v1::Verdict::kLabelCorrect) {
    said_wrong = !verdict.label_correct();
  } else if (verdict.decision_case() == v1::Verdict::kConsensusLabel) {
    said_wrong = verdict.has_given_label() && verdict.consensus_label() != verdict.given_label();
  } else {
    return;
  }
  points_.emplace_back(it->second, said_wrong);
  in_band_.erase(it);
  double best = threshold_;
  std::size_t best_errors = SIZE_MAX;
  for (const auto& [candidate, ignored] : points_) {
    (void)ignored;
    std::size_t errors = 0;
    for (const auto& [p, wrong] : points_) errors += (p >= candidate) != wrong ? 1 : 0;
    if (errors < best_errors || (errors == best_errors && candidate > best)) {
      best_errors = errors;
      best = candidate;
    }
  }
  threshold_ = std::clamp(best, 0.5, 0.99);
}

void ThresholdCalibrator::Restore(double threshold, std::vector<std::pair<double, bool>> points,
                                  std::map<std::uint64_t, double> in_band) {
  threshold_ = threshold;
  points_ = std::move(points);
  in_band_ = std::move(in_band);
}

}  // namespace greenloop::trainer
