#include "services/feedback/core/consensus.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "fmt/format.h"

namespace greenloop::feedback {
namespace {

absl::Status CheckInput(int classes, const std::vector<Observation>& observations) {
  if (classes < 2) {
    return absl::InvalidArgumentError(fmt::format("{} categories; at least 2 needed", classes));
  }
  for (const Observation& o : observations) {
    if (o.category < 0 || o.category >= classes) {
      return absl::InvalidArgumentError(
          fmt::format("rating of item {} by {} has category {}, outside 0..{}", o.item, o.rater,
                      o.category, classes - 1));
    }
  }
  return absl::OkStatus();
}

// Normalizes log-probabilities into probabilities (max-shifted, so no underflow).
std::vector<double> Softmax(const std::vector<double>& log_p) {
  const double top = *std::max_element(log_p.begin(), log_p.end());
  std::vector<double> p(log_p.size());
  double sum = 0;
  for (std::size_t c = 0; c < log_p.size(); ++c) sum += p[c] = std::exp(log_p[c] - top);
  for (double& v : p) v /= sum;
  return p;
}

Decision FromPosterior(std::vector<double> posterior) {
  Decision d;
  d.category =
      static_cast<int>(std::max_element(posterior.begin(), posterior.end()) - posterior.begin());
  d.confidence = posterior[d.category];
  d.posterior = std::move(posterior);
  return d;
}

// counts[item][category]
std::map<std::int64_t, std::vector<int>> CountsPerItem(int classes,
                                                       const std::vector<Observation>& obs) {
  std::map<std::int64_t, std::vector<int>> counts;
  for (const Observation& o : obs) {
    auto [it, inserted] = counts.try_emplace(o.item, classes, 0);
    ++it->second[o.category];
  }
  return counts;
}

}  // namespace

RaterModel RaterModel::OneCoin(int classes, double accuracy) {
  RaterModel m;
  m.classes = classes;
  m.confusion.assign(static_cast<std::size_t>(classes) * classes,
                     (1.0 - accuracy) / std::max(1, classes - 1));
  for (int c = 0; c < classes; ++c) m.confusion[c * classes + c] = accuracy;
  return m;
}

double RaterModel::Reliability(const std::vector<double>& prior) const {
  double r = 0;
  for (int c = 0; c < classes; ++c) {
    const double w = prior.empty() ? 1.0 / classes : prior[c];
    r += w * P(c, c);
  }
  return std::clamp(r, 0.0, 1.0);
}

double SmoothedGoldAccuracy(std::int64_t right, std::int64_t answered) {
  return (static_cast<double>(right) + 1) / (static_cast<double>(answered) + 2);
}

absl::StatusOr<Decision> Decide(int classes, const std::vector<Observation>& ratings,
                                const std::map<std::string, RaterModel>& models,
                                const std::vector<double>& prior) {
  if (absl::Status s = CheckInput(classes, ratings); !s.ok()) return s;
  if (ratings.empty()) return absl::InvalidArgumentError("no ratings to decide from");
  const RaterModel fallback = RaterModel::OneCoin(classes, kDefaultRaterAccuracy);
  std::vector<double> log_p(classes);
  for (int c = 0; c < classes; ++c) {
    log_p[c] = std::log(prior.size() == static_cast<std::size_t>(classes) ? std::max(prior[c], 1e-9)
                                                                          : 1.0 / classes);
  }
  for (const Observation& o : ratings) {
    auto it = models.find(o.rater);
    const RaterModel& m =
        it != models.end() && it->second.classes == classes ? it->second : fallback;
    for (int c = 0; c < classes; ++c) log_p[c] += std::log(std::max(m.P(c, o.category), 1e-9));
  }
  return FromPosterior(Softmax(log_p));
}

std::map<std::int64_t, int> MajorityVote(int classes, const std::vector<Observation>& obs) {
  std::map<std::int64_t, int> out;
  for (const auto& [item, counts] : CountsPerItem(classes, obs)) {
    out[item] = static_cast<int>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  }
  return out;
}

absl::StatusOr<DawidSkeneResult> EstimateDawidSkene(int classes,
                                                    const std::vector<Observation>& observations,
                                                    const std::map<std::int64_t, int>& gold,
                                                    const DawidSkeneOptions& options) {
  if (absl::Status s = CheckInput(classes, observations); !s.ok()) return s;
  for (const auto& [item, answer] : gold) {
    if (answer < 0 || answer >= classes) {
      return absl::InvalidArgumentError(
          fmt::format("gold answer {} of item {} outside 0..{}", answer, item, classes - 1));
    }
  }
  DawidSkeneResult result;
  result.prior.assign(classes, 1.0 / classes);
  if (observations.empty()) return result;

  // Dense indices for items and raters.
  std::map<std::int64_t, int> item_index;
  std::map<std::string, int> rater_index;
  for (const Observation& o : observations) {
    item_index.try_emplace(o.item, static_cast<int>(item_index.size()));
    rater_index.try_emplace(o.rater, static_cast<int>(rater_index.size()));
  }
  const int n_items = static_cast<int>(item_index.size());
  const int n_raters = static_cast<int>(rater_index.size());
  struct Obs {
    int item, rater, category;
  };
  std::vector<Obs> obs;
  obs.reserve(observations.size());
  for (const Observation& o : observations) {
    obs.push_back({item_index[o.item], rater_index[o.rater], o.category});
  }
  std::vector<int> clamped(n_items, -1);
  for (const auto& [item, answer] : gold) {
    if (auto it = item_index.find(item); it != item_index.end()) clamped[it->second] = answer;
  }

  // T[i * K + c]: posterior of item i being class c. Start: soft majority vote.
  const int K = classes;
  std::vector<double> T(static_cast<std::size_t>(n_items) * K, 0);
  for (const Obs& o : obs) T[o.item * K + o.category] += 1;
  for (int i = 0; i < n_items; ++i) {
    double sum = 0;
    for (int c = 0; c < K; ++c) sum += T[i * K + c];
    for (int c = 0; c < K; ++c) T[i * K + c] /= sum;
    if (clamped[i] >= 0) {
      for (int c = 0; c < K; ++c) T[i * K + c] = c == clamped[i] ? 1 : 0;
    }
  }

  std::vector<double> prior(K);
  std::vector<double> conf(static_cast<std::size_t>(n_raters) * K * K);
  for (int iter = 1; iter <= options.max_iterations; ++iter) {
    result.iterations = iter;
    // M-step: prevalence and confusion matrices from the current posteriors.
    for (int c = 0; c < K; ++c) {
      double s = 1;  // add-one smoothing
      for (int i = 0; i < n_items; ++i) s += T[i * K + c];
      prior[c] = s;
    }
    double total = 0;
    for (double p : prior) total += p;
    for (double& p : prior) p /= total;
    for (int r = 0; r < n_raters; ++r) {
      for (int c = 0; c < K; ++c) {
        for (int l = 0; l < K; ++l) {
          conf[(r * K + c) * K + l] = c == l ? options.diagonal_prior : options.off_diagonal_prior;
        }
      }
    }
    for (const Obs& o : obs) {
      for (int c = 0; c < K; ++c) conf[(o.rater * K + c) * K + o.category] += T[o.item * K + c];
    }
    for (int r = 0; r < n_raters; ++r) {
      for (int c = 0; c < K; ++c) {
        double row = 0;
        for (int l = 0; l < K; ++l) row += conf[(r * K + c) * K + l];
        for (int l = 0; l < K; ++l) conf[(r * K + c) * K + l] /= row;
      }
    }
    // E-step: posteriors from prevalence and confusion matrices.
    std::vector<double> log_t(static_cast<std::size_t>(n_items) * K);
    for (int i = 0; i < n_items; ++i) {
      for (int c = 0; c < K; ++c) log_t[i * K + c] = std::log(prior[c]);
    }
    for (const Obs& o : obs) {
      for (int c = 0; c < K; ++c) {
        log_t[o.item * K + c] += std::log(conf[(o.rater * K + c) * K + o.category]);
      }
    }
    double moved = 0;
    for (int i = 0; i < n_items; ++i) {
      std::vector<double> p;
      if (clamped[i] >= 0) {
        p.assign(K, 0);
        p[clamped[i]] = 1;
      } else {
        p = Softmax(std::vector<double>(log_t.begin() + i * K, log_t.begin() + (i + 1) * K));
      }
      for (int c = 0; c < K; ++c) {
        moved = std::max(moved, std::abs(p[c] - T[i * K + c]));
        T[i * K + c] = p[c];
      }
    }
    if (moved < options.tolerance) break;
  }

  result.prior = prior;
  for (const auto& [name, r] : rater_index) {
    RaterModel m;
    m.classes = K;
    m.confusion.assign(conf.begin() + static_cast<std::ptrdiff_t>(r) * K * K,
                       conf.begin() + static_cast<std::ptrdiff_t>(r + 1) * K * K);
    result.raters.emplace(name, std::move(m));
  }
  for (const auto& [item, i] : item_index) {
    result.items.emplace(
        item, FromPosterior(std::vector<double>(T.begin() + i * K, T.begin() + (i + 1) * K)));
  }
  return result;
}

std::optional<double> FleissKappa(int classes, int raters_per_item,
                                  const std::vector<Observation>& observations) {
  if (classes < 2 || raters_per_item < 2) return std::nullopt;
  const double n = raters_per_item;
  std::vector<double> column(classes, 0);
  double sum_p = 0;
  int items = 0;
  for (const auto& [item, counts] : CountsPerItem(classes, observations)) {
    int total = 0;
    for (int c : counts) total += c;
    if (total != raters_per_item) continue;
    ++items;
    double sq = 0;
    for (int c = 0; c < classes; ++c) {
      sq += static_cast<double>(counts[c]) * counts[c];
      column[c] += counts[c];
    }
    sum_p += (sq - n) / (n * (n - 1));
  }
  if (items < 2) return std::nullopt;
  const double p_bar = sum_p / items;
  double p_e = 0;
  for (double c : column) {
    const double p = c / (items * n);
    p_e += p * p;
  }
  if (p_e >= 1.0 - 1e-12) return p_bar >= 1.0 - 1e-12 ? 1.0 : 0.0;
  return (p_bar - p_e) / (1 - p_e);
}

std::optional<double> KrippendorffAlpha(int classes, const std::vector<Observation>& observations) {
  if (classes < 2) return std::nullopt;
  // Coincidence matrix o[c][k].
  std::vector<double> o(static_cast<std::size_t>(classes) * classes, 0);
  int units = 0;
  for (const auto& [item, counts] : CountsPerItem(classes, observations)) {
    int m = 0;
    for (int c : counts) m += c;
    if (m < 2) continue;
    ++units;
    for (int c = 0; c < classes; ++c) {
      for (int k = 0; k < classes; ++k) {
        const double pairs = c == k ? static_cast<double>(counts[c]) * (counts[c] - 1)
                                    : static_cast<double>(counts[c]) * counts[k];
        o[c * classes + k] += pairs / (m - 1);
      }
    }
  }
  if (units < 2) return std::nullopt;
  std::vector<double> n_c(classes, 0);
  double n = 0;
  double disagree = 0;
  for (int c = 0; c < classes; ++c) {
    for (int k = 0; k < classes; ++k) {
      n_c[c] += o[c * classes + k];
      if (c != k) disagree += o[c * classes + k];
    }
    n += n_c[c];
  }
  double expected = 0;
  for (int c = 0; c < classes; ++c) {
    for (int k = 0; k < classes; ++k) {
      if (c != k) expected += n_c[c] * n_c[k];
    }
  }
  if (expected <= 0) return 1.0;
  return 1.0 - (n - 1) * disagree / expected;
}

}  // namespace greenloop::feedback
