#include "services/trainer/core/verdicts.h"

#include <fmt/format.h>

#include <algorithm>

#include "services/trainer/core/trainer_internal.pb.h"

namespace greenloop::trainer {

std::string_view ChangeSourceName(ChangeSource source) {
  return source == ChangeSource::kHuman ? "human" : "auto";
}

std::string_view ChangeActionName(ChangeAction action) {
  switch (action) {
    case ChangeAction::kKeep:
      return "keep";
    case ChangeAction::kRelabel:
      return "relabel";
    case ChangeAction::kDrop:
      return "drop";
    case ChangeAction::kReweight:
      return "reweight";
  }
  return "keep";
}

v1::VerdictPolicy WithDefaults(const v1::VerdictPolicy& policy) {
  v1::VerdictPolicy out = policy;
  if (out.min_confidence() == 0) out.set_min_confidence(0.6);
  if (out.on_wrong_label() == v1::WRONG_LABEL_ACTION_UNSPECIFIED) {
    out.set_on_wrong_label(v1::WRONG_LABEL_ACTION_RELABEL);
  }
  if (out.reweight_factor() == 0) out.set_reweight_factor(0.1);
  if (out.relevant_weight() == 0) out.set_relevant_weight(1.0);
  return out;
}

TrainingSetState::TrainingSetState(const Split& train) : TrainingSetState(train, false) {}

TrainingSetState::TrainingSetState(const Split& train, bool clean_labels)
    : train_(train),
      labels_(clean_labels ? train.clean_labels : train.labels),
      weights_(train.size(), 1.0f),
      active_(train.size(), 1),
      active_count_(train.size()) {
  position_of_.reserve(train.size());
  for (std::size_t i = 0; i < train.refs.size(); ++i) position_of_.emplace(train.refs[i], i);
}

std::optional<std::size_t> TrainingSetState::PositionOf(std::uint64_t ref) const {
  auto it = position_of_.find(ref);
  if (it == position_of_.end()) return std::nullopt;
  return it->second;
}

std::optional<SampleChange> TrainingSetState::Apply(const v1::Verdict& verdict, ChangeSource source,
                                                    const v1::VerdictPolicy& policy,
                                                    std::uint64_t step, int num_classes) {
  const std::optional<std::size_t> pos = PositionOf(verdict.sample().index());
  if (!pos) return std::nullopt;
  if (verdict.confidence() < policy.min_confidence()) return std::nullopt;
  if (verdict.decision_case() == v1::Verdict::kUndecidable ||
      verdict.decision_case() == v1::Verdict::DECISION_NOT_SET) {
    return std::nullopt;
  }
  if (!active_[*pos]) return std::nullopt;  // already dropped: nothing left to change

  SampleChange change;
  change.step = step;
  change.sample_index = verdict.sample().index();
  change.old_label = labels_[*pos];
  change.new_label = labels_[*pos];
  change.old_weight = weights_[*pos];
  change.new_weight = weights_[*pos];
  change.source = source;
  change.item_id = verdict.item_id();
  change.revision = verdict.revision();
  change.confidence = verdict.confidence();
  change.clean_label = train_.clean_labels[*pos];

  auto wrong_label = [&](std::optional<std::int64_t> replacement) {
    switch (policy.on_wrong_label()) {
      case v1::WRONG_LABEL_ACTION_REWEIGHT:
        change.action = ChangeAction::kReweight;
        change.new_weight = policy.reweight_factor();
        break;
      case v1::WRONG_LABEL_ACTION_DROP:
        change.action = ChangeAction::kDrop;
        break;
      default:
        if (replacement) {
          change.action = ChangeAction::kRelabel;
          change.new_label = *replacement;
          change.new_weight = 1.0;
        } else {
          change.action = ChangeAction::kDrop;
        }
    }
  };

  switch (verdict.decision_case()) {
    case v1::Verdict::kLabelCorrect:
      if (verdict.label_correct()) {
        change.action = ChangeAction::kKeep;
      } else {
        wrong_label(std::nullopt);
      }
      break;
    case v1::Verdict::kConsensusLabel: {
      const auto label = static_cast<std::int64_t>(verdict.consensus_label());
      if (label < 0 || label >= num_classes) return std::nullopt;
      if (label == labels_[*pos]) {
        change.action = ChangeAction::kKeep;
      } else {
        wrong_label(label);
      }
      break;
    }
    case v1::Verdict::kRelevant:
      if (verdict.relevant()) {
        change.action =
            policy.relevant_weight() == 1.0 ? ChangeAction::kKeep : ChangeAction::kReweight;
        change.new_weight = policy.relevant_weight();
      } else if (policy.drop_irrelevant()) {
        change.action = ChangeAction::kDrop;
      } else {
        change.action = ChangeAction::kKeep;
      }
      break;
    default:
      return std::nullopt;
  }

  switch (change.action) {
    case ChangeAction::kKeep:
      change.correct = change.old_label == change.clean_label;
      break;
    case ChangeAction::kRelabel:
      labels_[*pos] = change.new_label;
      change.correct = change.new_label == change.clean_label;
      break;
    case ChangeAction::kDrop:
      active_[*pos] = 0;
      --active_count_;
      change.new_weight = 0;
      change.correct = change.old_label != change.clean_label;
      break;
    case ChangeAction::kReweight:
      weights_[*pos] = static_cast<float>(change.new_weight);
      // Down-weighting is right for a wrong label; up-weighting for a right one.
      change.correct = change.new_weight < change.old_weight
                           ? change.old_label != change.clean_label
                           : change.old_label == change.clean_label;
      break;
  }
  return change;
}

absl::Status TrainingSetState::Restore(std::vector<std::int64_t> labels, std::vector<float> weights,
                                       std::vector<std::uint8_t> active) {
  if (labels.size() != labels_.size() || weights.size() != labels_.size() ||
      active.size() != labels_.size()) {
    return absl::InvalidArgumentError(fmt::format(
        "checkpoint holds {} samples, the training set has {}", labels.size(), labels_.size()));
  }
  labels_ = std::move(labels);
  weights_ = std::move(weights);
  active_ = std::move(active);
  active_count_ = 0;
  for (std::uint8_t a : active_) active_count_ += a != 0 ? 1 : 0;
  return absl::OkStatus();
}

std::string SerializeVerdicts(const std::vector<PendingVerdict>& verdicts) {
  internal::VerdictBatch batch;
  for (const PendingVerdict& p : verdicts) {
    internal::VerdictBatch::Entry* entry = batch.add_entries();
    *entry->mutable_verdict() = p.verdict;
    entry->set_automatic(p.source == ChangeSource::kAuto);
    entry->set_cursor(p.cursor);
    entry->set_queue_lag_seconds(p.queue_lag_seconds);
    if (p.rule) *entry->mutable_rule() = *p.rule;
    entry->set_feature_stream(p.feature_stream);
  }
  return batch.SerializeAsString();
}

absl::StatusOr<std::vector<PendingVerdict>> DeserializeVerdicts(const std::string& bytes) {
  internal::VerdictBatch batch;
  if (!batch.ParseFromString(bytes)) {
    return absl::InvalidArgumentError("verdict broadcast is not a VerdictBatch");
  }
  std::vector<PendingVerdict> out;
  out.reserve(static_cast<std::size_t>(batch.entries_size()));
  for (const internal::VerdictBatch::Entry& entry : batch.entries()) {
    out.push_back({.verdict = entry.verdict(),
                   .source = entry.automatic() ? ChangeSource::kAuto : ChangeSource::kHuman,
                   .cursor = entry.cursor(),
                   .queue_lag_seconds = entry.queue_lag_seconds(),
                   .rule = entry.has_rule() ? std::optional(entry.rule()) : std::nullopt,
                   .feature_stream = entry.feature_stream()});
  }
  return out;
}

std::uint64_t AppliedVerdicts::correct() const {
  return static_cast<std::uint64_t>(std::count_if(changes.begin(), changes.end(),
                                                  [](const SampleChange& c) { return c.correct; }));
}

namespace {

void CountChange(const SampleChange& change, v1::Progress& progress) {
  progress.set_verdicts_applied(progress.verdicts_applied() + 1);
  switch (change.action) {
    case ChangeAction::kRelabel:
      progress.set_samples_relabelled(progress.samples_relabelled() + 1);
      break;
    case ChangeAction::kDrop:
      progress.set_samples_dropped(progress.samples_dropped() + 1);
      break;
    case ChangeAction::kReweight:
      progress.set_samples_reweighted(progress.samples_reweighted() + 1);
      break;
    case ChangeAction::kKeep:
      break;
  }
  if (change.correct) progress.set_verdicts_correct(progress.verdicts_correct() + 1);
}

}  // namespace

AppliedVerdicts ApplyVerdicts(const std::vector<PendingVerdict>& verdicts, TrainingSetState& state,
                              const v1::VerdictPolicy& human_policy,
                              const v1::VerdictPolicy& auto_policy, std::uint64_t step,
                              int num_classes, v1::Progress& progress,
                              const std::function<void(const v1::Verdict&)>& on_human) {
  AppliedVerdicts out;
  for (const PendingVerdict& p : verdicts) {
    progress.set_verdicts_received(progress.verdicts_received() + 1);
    const bool human = p.source == ChangeSource::kHuman;
    if (human) {
      if (!p.cursor.empty()) out.cursor = p.cursor;
      out.queue_lag_seconds_sum += p.queue_lag_seconds;
      ++out.humans;
      if (on_human) on_human(p.verdict);
    }
    std::optional<SampleChange> change =
        state.Apply(p.verdict, p.source, human ? human_policy : auto_policy, step, num_classes);
    if (!change) continue;
    CountChange(*change, progress);
    out.changes.push_back(*std::move(change));
  }
  return out;
}

}  // namespace greenloop::trainer
