// Verdicts built from what storage read: the first verdict of a complete item (its ratings
// weighted by the raters' models) and the "undecidable" verdict of an item too many raters
// skipped. Storage writes them; the rules live here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "greenloop/v1/feedback.pb.h"
#include "services/feedback/core/consensus.h"

namespace greenloop::feedback {

/// An item as stored, with what its verdict needs.
struct ItemRecord {
  std::int64_t item_id = 0;
  v1::Dataset dataset = v1::DATASET_UNSPECIFIED;
  std::uint64_t sample_index = 0;
  std::optional<std::uint32_t> given_label;
  std::uint32_t ratings_count = 0;
  std::uint32_t skips_count = 0;
  absl::Time decide_time;  // the database's clock at the deciding transaction
};

/// An item's ratings and the models of its raters.
struct ItemRatings {
  std::vector<Observation> ratings;
  std::map<std::string, std::vector<double>> confusions;  // Dawid–Skene, row-major K×K
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> gold;  // (right, answered)
  std::map<std::string, std::vector<std::uint32_t>> masks;  // feature questions: cells per rater
};

/// A verdict and the category it decides (-1: undecidable), as stored.
struct BuiltVerdict {
  int decision = -1;
  v1::Verdict verdict;
};

/// Revision 1 of a complete item's verdict: each rater weighted by its Dawid–Skene confusion
/// when it has one of the campaign's size, else by its smoothed gold accuracy, else by
/// kDefaultRaterAccuracy. Feature questions: the consensus mask of ratings.masks (DecideMask),
/// each rater weighted by its smoothed gold accuracy or kDefaultRaterAccuracy.
absl::StatusOr<BuiltVerdict> FirstVerdict(const v1::CampaignSpec& spec, const ItemRecord& item,
                                          const ItemRatings& ratings);

/// "Too many raters skipped": as many skips as ratings wanted before k ratings came, on an item
/// neither decided nor gold. nullopt when that is not the case.
std::optional<BuiltVerdict> UndecidableVerdict(const v1::CampaignSpec& spec, const ItemRecord& item,
                                               bool decided, bool gold);

/// The next revision of an item's verdict when a re-estimate changes its decision: `latest` (the
/// newest revision, deciding `latest_decision`) with the new category and confidence. nullopt
/// when the decision stays, or the item was undecidable (-1).
std::optional<BuiltVerdict> RevisedVerdict(const v1::CampaignSpec& spec, const v1::Verdict& latest,
                                           int latest_decision, int category, double confidence,
                                           absl::Time decide_time);

}  // namespace greenloop::feedback
