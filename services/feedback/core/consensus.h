// Turning noisy ratings into decisions: Dawid–Skene EM, a one-item weighted vote, and agreement
// statistics (Fleiss' κ, Krippendorff's α).
//
// Everything here works on categories 0..K-1 (see answers.h for how answers map to them) and on
// plain in-memory data, so it is tested without a database. Storage feeds it the ratings of one
// item (Decide) or of a whole campaign (EstimateDawidSkene, FleissKappa, KrippendorffAlpha).
//
// Thread-safety: every function is pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace greenloop::feedback {

/// One rating: rater `rater` put item `item` in category `category`.
struct Observation {
  std::int64_t item = 0;
  std::string rater;
  int category = 0;
};

/// \brief What the consensus believes about one rater: P(answer | truth), K×K, rows sum to 1.
///
/// Use RaterModel::OneCoin() for a rater known only by an accuracy (gold items, or nothing yet).
struct RaterModel {
  int classes = 0;
  std::vector<double> confusion;  // row-major: confusion[truth * classes + answer]

  /// A rater right with probability `accuracy`, wrong answers spread evenly over the others.
  static RaterModel OneCoin(int classes, double accuracy);
  /// P(answer | truth).
  double P(int truth, int answer) const { return confusion[truth * classes + answer]; }
  /// Expected accuracy under `prior` (uniform when empty), in [0, 1].
  double Reliability(const std::vector<double>& prior = {}) const;
};

/// Default accuracy assumed for a rater with no gold answers and no Dawid–Skene estimate yet.
inline constexpr double kDefaultRaterAccuracy = 0.7;

/// Laplace-smoothed gold accuracy: (right + 1) / (answered + 2), so one lucky answer is not 100 %.
double SmoothedGoldAccuracy(std::int64_t right, std::int64_t answered);

/// The posterior over categories of one item.
struct Decision {
  int category = 0;               // the most probable category (lowest index on ties)
  double confidence = 0;          // its posterior probability, in [0, 1]
  std::vector<double> posterior;  // one entry per category, sums to 1
};

/// Decides one item from its ratings: posterior ∝ prior · Π_r P(answer_r | truth), with each
/// rater's model looked up in `models` (a rater missing there counts as OneCoin with
/// kDefaultRaterAccuracy). An empty `prior` is uniform. This is the weighted vote: a reliable
/// rater's answer moves the posterior more than a spammer's, whose confusion rows are flat.
/// INVALID_ARGUMENT for no ratings, classes < 2 or a category out of range.
absl::StatusOr<Decision> Decide(int classes, const std::vector<Observation>& ratings,
                                const std::map<std::string, RaterModel>& models,
                                const std::vector<double>& prior = {});

/// Options of the EM loop.
struct DawidSkeneOptions {
  int max_iterations = 100;
  double tolerance = 1e-6;    // stop when no posterior moves more than this
  double diagonal_prior = 2;  // Dirichlet pseudo-counts on the confusion diagonal
  double off_diagonal_prior = 1;
};

/// The result of Dawid–Skene EM over a campaign.
struct DawidSkeneResult {
  std::vector<double> prior;                 // class prevalence, sums to 1
  std::map<std::string, RaterModel> raters;  // one model per rater seen
  std::map<std::int64_t, Decision> items;    // one decision per item seen (gold clamped)
  int iterations = 0;
};

/// \brief Dawid & Skene (1979) EM: jointly estimates each rater's confusion matrix, the class
/// prevalence and each item's posterior, starting from the (soft) majority vote.
///
/// `gold` maps items with a known answer to it: their posterior is clamped to that answer, so gold
/// items anchor the confusion matrices (semi-supervised EM). Dirichlet pseudo-counts keep raters
/// with few ratings close to "mostly right". INVALID_ARGUMENT for classes < 2 or a category out of
/// range; an empty input gives an empty result.
absl::StatusOr<DawidSkeneResult> EstimateDawidSkene(int classes,
                                                    const std::vector<Observation>& observations,
                                                    const std::map<std::int64_t, int>& gold = {},
                                                    const DawidSkeneOptions& options = {});

/// Plain majority vote per item (ties: lowest category), for comparison and as EM's start.
std::map<std::int64_t, int> MajorityVote(int classes, const std::vector<Observation>& observations);

/// Fleiss' κ over the items that have exactly `raters_per_item` ratings (others are ignored);
/// nullopt with fewer than 2 such items or raters_per_item < 2. 1 when every rating agrees.
std::optional<double> FleissKappa(int classes, int raters_per_item,
                                  const std::vector<Observation>& observations);

/// Krippendorff's α (nominal) over every item with at least 2 ratings; nullopt with fewer than 2
/// such items. 1 when every rating agrees.
std::optional<double> KrippendorffAlpha(int classes, const std::vector<Observation>& observations);

}  // namespace greenloop::feedback
