// The feedback contract's rules that need no database: identifiers, campaign specs and their
// defaults, item batches, answers and how they map to categories, prompts, verdicts, cursors and
// page tokens.
//
// The core uses the contract's generated messages (greenloop/v1/feedback.pb.h, no gRPC) as its
// data types, as the trainer does, so there is no second domain model to keep in step.
//
// Categories: every answer is stored and reconciled as a category 0..K-1. LABEL_CHECK and
// RELEVANCE have K = 2 (0 = no, 1 = yes); LABEL_CHOICE has K = the number of labels (the label
// index). Feature questions (FEATURE_MASK, FEATURE_RULE) have K = 0: their category is a hash of
// the mask, and their consensus is per cell (feature_masks.h).
//
// Thread-safety: every function is pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "greenloop/v1/feedback.pb.h"
#include "services/feedback/core/consensus.h"

namespace greenloop::feedback {

/// Limits that come from config; the defaults are the contract's.
struct Limits {
  std::int64_t max_payload_bytes = 1 << 20;  // per item
  int max_batch_items = 500;
  int max_lease_items = 20;  // per Lease call
  int max_live_leases = 20;  // per rater
};

/// OK for 1 to 63 characters of [a-z0-9-] starting with a letter or digit; INVALID_ARGUMENT
/// naming `field` otherwise.
absl::Status ValidateClientId(std::string_view id, std::string_view field = "campaign_id");

/// Fills the spec's defaults (k = 3, TTL = 120 s, label shortcuts) and validates it, per
/// CreateCampaign's contract. INVALID_ARGUMENT naming the field.
absl::StatusOr<v1::CampaignSpec> NormalizeSpec(const v1::CampaignSpec& spec);

/// Number of categories answers to `spec` have (2, or the label count for LABEL_CHOICE; 0 for
/// feature questions, which statistics and re-estimates skip).
int Categories(const v1::CampaignSpec& spec);

/// Validates one item for `spec` (payload present and at most limits.max_payload_bytes, labels in
/// the set, confidence in [0, 1], gold answer fitting the question). INVALID_ARGUMENT whose
/// message starts with "items[<position>]".
absl::Status ValidateItem(const v1::CampaignSpec& spec, const v1::ItemInput& item, int position,
                          const Limits& limits);

/// The category of `answer` to `spec`'s question; INVALID_ARGUMENT when the answer is unset, of
/// the wrong kind, or a label outside the set.
absl::StatusOr<int> AnswerCategory(const v1::CampaignSpec& spec, const v1::Answer& answer);

/// The answer a category stands for (inverse of AnswerCategory); for feature questions an empty
/// mask, whose cells the caller fills from storage.
v1::Answer CategoryAnswer(const v1::CampaignSpec& spec, int category);

/// The question shown with an item: kind, prompt ("Is this a Sneaker?"), instructions, labels,
/// the given label and, when the campaign shows it, the model's prediction.
v1::Question MakeQuestion(const v1::CampaignSpec& spec, std::optional<std::uint32_t> given_label,
                          const v1::ModelPrediction* prediction);

/// Sets the verdict's decision and suggested action from a category (or undecidable when
/// `decision` is nullopt); verdict.given_label must already be set if the item has one.
void SetDecision(const v1::CampaignSpec& spec, std::optional<int> category, v1::Verdict* verdict);

/// An opaque WatchVerdicts cursor naming `seq` (the last verdict delivered) in `campaign_id`.
std::string EncodeCursor(std::string_view campaign_id, std::int64_t seq);
/// The seq of a cursor (0 for an empty one); INVALID_ARGUMENT when the cursor is malformed or was
/// issued for another campaign.
absl::StatusOr<std::int64_t> DecodeCursor(std::string_view campaign_id, std::string_view cursor);

/// A page token holding the key to continue after, bound to `scope` (the request's filter
/// fields), so a token reused with other filters is rejected.
std::string EncodePageToken(std::string_view scope, std::int64_t after);
/// The key of `token` (nullopt for an empty token); INVALID_ARGUMENT when malformed or issued for
/// another scope.
absl::StatusOr<std::optional<std::int64_t>> DecodePageToken(std::string_view scope,
                                                            std::string_view token);
/// The contract's page size: 0 → 50, capped at 500.
int PageSize(const v1::Page& page);

/// A database id sent as decimal text ("42"); nullopt for anything else (empty, signs, over 18
/// digits).
std::optional<std::int64_t> ParseId(std::string_view text);

}  // namespace greenloop::feedback
