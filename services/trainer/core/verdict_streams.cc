#include "services/trainer/core/verdict_streams.h"

#include <fmt/format.h>

#include <utility>

#include "services/trainer/core/rater_items.h"
#include "services/trainer/core/run_config.h"

namespace greenloop::trainer {

VerdictStreams::VerdictStreams(const v1::RunConfig& config, const LoadedDataset& dataset,
                               std::string run_id, FeedbackQueue* feedback,
                               FeedbackQueue* feature_feedback)
    : config_(config),
      dataset_(dataset),
      run_id_(std::move(run_id)),
      feedback_(feedback),
      feature_feedback_(feature_feedback) {}

void VerdictStreams::Restore(std::string cursor, std::string feature_cursor) {
  cursor_ = std::move(cursor);
  feature_cursor_ = std::move(feature_cursor);
}

absl::Status VerdictStreams::Open() {
  if (feedback_ == nullptr || (Combined() && feature_feedback_ == nullptr)) {
    return absl::FailedPreconditionError(
        "MODE_HITL, MODE_HYBRID, MODE_HITL_FEATURES and MODE_HITL_COMBINED need a feedback "
        "queue");
  }
  const v1::FeedbackTarget& target = config_.feedback();
  if (!AsksForFeatures(config_.mode())) {
    return OpenOne(*feedback_, target.campaign_id(), LabelCampaignFor(dataset_, run_id_, target),
                   cursor_);
  }
  const v1::CampaignSpec features = config_.feature_feedback().item_questions() > 0
                                        ? MaskCampaignFor(dataset_, run_id_, target)
                                        : RuleCampaignFor(dataset_, run_id_, target);
  if (!Combined()) return OpenOne(*feedback_, target.campaign_id(), features, cursor_);
  if (absl::Status s = OpenOne(*feedback_, target.campaign_id(),
                               LabelCampaignFor(dataset_, run_id_, target), cursor_);
      !s.ok()) {
    return s;
  }
  return OpenOne(*feature_feedback_, target.feature_campaign_id(), features, feature_cursor_);
}

absl::Status VerdictStreams::OpenOne(FeedbackQueue& port, const std::string& campaign_id,
                                     const v1::CampaignSpec& spec, const std::string& cursor) {
  absl::Status s = port.EnsureCampaign(campaign_id, spec);
  // A campaign made beforehand with another display name or k is the experiment's choice.
  if (!s.ok() && !absl::IsAlreadyExists(s)) {
    return absl::Status(s.code(),
                        fmt::format("feedback service at {}: {}", config_.feedback().endpoint(),
                                    std::string(s.message())));
  }
  return port.StartWatching(campaign_id, cursor);
}

std::vector<VerdictStreams::Incoming> VerdictStreams::Take() {
  std::vector<Incoming> out;
  if (feedback_ == nullptr) return out;
  for (ReceivedVerdict& r : feedback_->TakeVerdicts()) out.push_back({std::move(r), false});
  if (Combined() && feature_feedback_ != nullptr) {
    for (ReceivedVerdict& r : feature_feedback_->TakeVerdicts()) {
      out.push_back({std::move(r), true});
    }
  }
  return out;
}

void VerdictStreams::Advance(const std::vector<PendingVerdict>& applied) {
  for (const PendingVerdict& v : applied) {
    if (!v.cursor.empty()) (v.feature_stream ? feature_cursor_ : cursor_) = v.cursor;
  }
}

void VerdictStreams::Stop() {
  for (FeedbackQueue* port : {feedback_, feature_feedback_}) {
    if (port != nullptr) port->StopWatching();
  }
}

const std::string& VerdictStreams::CampaignOf(bool feature_stream) const {
  return feature_stream ? FeatureCampaignId(config_) : config_.feedback().campaign_id();
}

}  // namespace greenloop::trainer
