// Feature questions (QUESTION_KIND_FEATURE_MASK and QUESTION_KIND_FEATURE_RULE): the grid, the
// masks raters answer with, and the consensus mask a verdict carries.
//
// A mask answer is stored twice: its cells (for the consensus and the rater's history) and a
// category, a 31-bit hash of its sorted cells, so that the categorical machinery still works
// where it should: a resubmitted lease with other cells is a different answer, and early
// agreement decides an item when its first ratings marked exactly the same cells. Statistics and
// the Dawid–Skene re-estimate, which need categories 0..K-1, skip feature campaigns
// (Categories() is 0 for them).
//
// The consensus: each rater weighs what the campaign's rater models already say of it (its
// smoothed gold accuracy, else kDefaultRaterAccuracy); a cell is in the consensus mask when raters
// holding at least half of the item's weight marked it. The confidence is the weighted agreement
// with the consensus, averaged over the cells anyone marked (1 when nobody marked any).
//
// Thread-safety: every function is pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "greenloop/v1/feedback.pb.h"

namespace greenloop::feedback {

/// Whether `kind` asks for a feature mask.
bool IsFeatureQuestion(v1::QuestionKind kind);

/// INVALID_ARGUMENT naming spec.feature_grid when a feature question has no grid (or one of more
/// than 1 024 cells), or another question has one.
absl::Status ValidateFeatureGrid(const v1::CampaignSpec& spec);

/// The mask with its cells sorted; INVALID_ARGUMENT naming `field` for a cell outside the grid, a
/// cell twice, or (QUESTION_KIND_FEATURE_RULE) no cell.
absl::StatusOr<v1::FeatureMask> CanonicalMask(const v1::CampaignSpec& spec,
                                              const v1::FeatureMask& mask, std::string_view field);

/// The category a canonical mask is stored as: a hash of its cells in [0, 2^31).
int MaskCategory(const v1::FeatureMask& mask);

/// One rater's mask and the weight the consensus gives it.
struct WeightedMask {
  std::vector<std::uint32_t> cells;
  double weight = 1;
};

/// The consensus of `masks` (at least one) and its confidence in [0, 1].
struct MaskConsensus {
  v1::FeatureMask mask;
  double confidence = 1;
};
MaskConsensus DecideMask(const std::vector<WeightedMask>& masks);

/// Cells written as PostgreSQL's array text ("{1,2,3}") and back; Parse ignores anything that is
/// not a non-negative number.
std::string CellsText(const v1::FeatureMask& mask);
std::vector<std::uint32_t> ParseCells(std::string_view text);

}  // namespace greenloop::feedback
