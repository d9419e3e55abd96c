#include "services/trainer/core/sample_judge.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "common/logging/logging.h"
#include "services/trainer/core/rater_items.h"
#include "services/trainer/core/run_config.h"

namespace greenloop::trainer {
namespace {

constexpr std::uint64_t kPoolSeedSalt = 0xC2B2AE3D27D4EB4FULL;

}  // namespace

SampleJudge::SampleJudge(const v1::RunConfig& config, const LoadedDataset& dataset,
                         const TrainingSetState& state, const SampleStats& stats,
                         FeedbackQueue* feedback, std::string run_id, EmitFn emit)
    : config_(config),
      ds_(dataset),
      state_(state),
      stats_(stats),
      feedback_(feedback),
      run_id_(std::move(run_id)),
      emit_(std::move(emit)),
      review_(WithDefaults(config.noise_review(), config.candidates_per_selection())),
      reviews_(JudgesSamples(config.mode()) && review_.enabled()),
      limit_(review_.min_outstanding_items(), review_.outstanding_seconds()),
      calibrator_(config.auto_review().flag_threshold()) {}

void SampleJudge::RecordBatch(const std::vector<std::int64_t>& positions,
                              const torch::Tensor& logits) {
  // Only the scored pool reads these; under the noise review they would grow without bound.
  if (!JudgesSamples(config_.mode()) || reviews_ ||
      config_.selection_pool() != v1::SELECTION_POOL_TRAINING_BATCHES) {
    return;
  }
  const torch::Tensor probs = torch::softmax(logits.detach(), 1).contiguous();
  const float* p = probs.data_ptr<float>();
  recent_positions_.insert(recent_positions_.end(), positions.begin(), positions.end());
  recent_probs_.insert(recent_probs_.end(), p, p + probs.numel());
}

void SampleJudge::EpochEnded(std::uint32_t epoch, std::uint64_t steps_per_epoch,
                             v1::Progress& progress) {
  if (!reviews_ || epoch < review_.warmup_epochs()) return;
  // Records made by a model that had hardly trained say little: reviewing at epoch ends, the
  // first half epoch is left out.
  const std::uint64_t min_record_step = review_.review_every_steps() > 0
                                            ? review_.review_every_steps()
                                            : std::max<std::uint64_t>(1, steps_per_epoch / 2);
  Review(min_record_step, progress);
}

void SampleJudge::StepEnded(const ScoringModel& model, v1::Progress& progress) {
  const std::uint64_t step = progress.step();
  const std::uint64_t every = review_.review_every_steps();
  if (reviews_ && every > 0 && step % every == 0) Review(every, progress);
  if (!JudgesSamples(config_.mode()) || config_.select_every_steps() == 0 ||
      step % config_.select_every_steps() != 0) {
    return;
  }
  if (reviews_) {
    EnqueueReviewed(progress);
  } else {
    Select(model, progress);
  }
}

void SampleJudge::ObserveHuman(const v1::Verdict& verdict) {
  if (config_.mode() == v1::MODE_HYBRID) calibrator_.Observe(verdict);
}

std::vector<PendingVerdict> SampleJudge::TakeAutoVerdicts() {
  std::vector<PendingVerdict> out;
  out.swap(auto_verdicts_);
  return out;
}

void SampleJudge::Restore(std::vector<std::uint64_t> asked, double threshold,
                          std::vector<std::pair<double, bool>> points,
                          std::map<std::uint64_t, double> in_band) {
  asked_.insert(asked.begin(), asked.end());
  calibrator_.Restore(threshold, std::move(points), std::move(in_band));
}

// Splits the training set by its loss statistics; confidently noisy samples become automatic
// verdicts, ambiguous ones the human queue.
void SampleJudge::Review(std::uint64_t min_record_step, v1::Progress& progress) {
  const ReviewSplit split = SplitForReview(
      stats_, state_.active(), state_.labels(), review_, SampleReviewMode(config_.mode()),
      [&](std::size_t p) { return decided_.contains(p) || asked_.contains(ds_.train.refs[p]); },
      min_record_step);
  // Every sample classified, fixed or asked about at least once.
  progress.set_samples_reviewed(std::min<std::uint64_t>(
      ds_.train.size(),
      std::max<std::uint64_t>(progress.samples_reviewed(),
                              split.classified + decided_.size() + asked_.size())));
  for (std::size_t i = 0; i < split.automatic.size(); ++i) {
    const auto position = static_cast<std::size_t>(split.automatic[i]);
    // A label known wrong is replaced by the model's class only where the model is sure of it;
    // otherwise the verdict only says "wrong", which the policy turns into a drop.
    const bool sure = stats_.predicted_probability(position) >= review_.relabel_probability();
    QueueAutoVerdict(position,
                     sure ? std::optional<std::int64_t>(stats_.predicted(position)) : std::nullopt,
                     split.automatic_posterior[i]);
    decided_.insert(position);
  }
  human_queue_.assign(split.human.begin(), split.human.end());
  human_posterior_.assign(split.human_posterior.begin(), split.human_posterior.end());
  human_next_ = 0;
  emit_(v1::PROGRESS_EVENT_KIND_SELECTION,
        fmt::format("noise review: {} samples classified (loss components {:.2f} / {:.2f}), {} "
                    "fixed automatically, {} queued for raters",
                    split.classified, split.fit.mean_low, split.fit.mean_high,
                    split.automatic.size(), split.human.size()));
}

// Enqueues the next items of the human queue, as many as the crowd's measured pace leaves room
// for. On an outage the items stay queued for the next call.
void SampleJudge::EnqueueReviewed(v1::Progress& progress) {
  const absl::Time now = absl::Now();
  const std::uint64_t room =
      std::min<std::uint64_t>(limit_.Room(now), config_.candidates_per_selection());
  std::vector<v1::ItemInput> items;
  std::vector<std::uint64_t> refs;
  std::size_t next = human_next_;
  for (; next < human_queue_.size() && items.size() < room; ++next) {
    const auto position = static_cast<std::size_t>(human_queue_[next]);
    const std::uint64_t ref = ds_.train.refs[position];
    if (!state_.active()[position] || asked_.contains(ref) || decided_.contains(position)) {
      continue;
    }
    v1::ItemInput item = ItemFor(ds_, position, state_.labels()[position]);
    if (stats_.predicted(position) >= 0) {
      item.mutable_model_prediction()->set_label(
          static_cast<std::uint32_t>(stats_.predicted(position)));
      item.mutable_model_prediction()->set_confidence(
          std::clamp<double>(stats_.predicted_probability(position), 0.0, 1.0));
    }
    item.set_priority(human_posterior_[next]);
    items.push_back(std::move(item));
    refs.push_back(ref);
  }
  if (items.empty() || !Enqueue(items, refs, progress)) return;
  human_next_ = next;
  limit_.Enqueued(items.size(), now);
  emit_(v1::PROGRESS_EVENT_KIND_SELECTION,
        fmt::format("enqueued {} reviewed samples ({} awaiting verdicts, {:.1f} verdicts/s)",
                    items.size(), limit_.outstanding(), limit_.Rate(now)));
}

bool SampleJudge::Enqueue(const std::vector<v1::ItemInput>& items,
                          const std::vector<std::uint64_t>& refs, v1::Progress& progress) {
  absl::Status s = feedback_ == nullptr
                       ? absl::FailedPreconditionError("this run has no feedback queue")
                       : feedback_->Enqueue(config_.feedback().campaign_id(), items);
  if (!s.ok()) {
    // Degraded, not fatal: training never waits for people; the next call retries.
    progress.set_feedback_errors(progress.feedback_errors() + 1);
    logging::Warn("cannot enqueue samples for raters; training goes on without humans",
                  {{"run", run_id_}, {"error", s.ToString()}});
    return false;
  }
  asked_.insert(refs.begin(), refs.end());
  progress.set_items_enqueued(progress.items_enqueued() + items.size());
  return true;
}

bool SampleJudge::Selectable(std::int64_t position) const {
  return state_.active()[static_cast<std::size_t>(position)] &&
         !asked_.contains(ds_.train.refs[static_cast<std::size_t>(position)]);
}

// The candidate pool and its class probabilities (pool.size() × classes, row-major).
// SELECTION_POOL_TRAINING_BATCHES: the samples recorded since the last selection, each with its
// newest scores; SELECTION_POOL_RANDOM (or nothing recorded yet): a fresh random pool scored by
// an extra forward pass, whose MACs are counted.
void SampleJudge::CandidatePool(const ScoringModel& model, v1::Progress& progress,
                                std::vector<std::int64_t>& pool, std::vector<float>& probs) {
  const auto classes = static_cast<std::size_t>(ds_.num_classes());
  if (config_.selection_pool() == v1::SELECTION_POOL_TRAINING_BATCHES &&
      !recent_positions_.empty()) {
    std::unordered_map<std::int64_t, std::size_t> newest;
    for (std::size_t i = 0; i < recent_positions_.size(); ++i) newest[recent_positions_[i]] = i;
    for (std::size_t i = 0; i < recent_positions_.size(); ++i) {
      const std::int64_t p = recent_positions_[i];
      if (newest[p] != i || !Selectable(p)) continue;
      pool.push_back(p);
      const auto row = recent_probs_.begin() + static_cast<std::ptrdiff_t>(i * classes);
      probs.insert(probs.end(), row, row + static_cast<std::ptrdiff_t>(classes));
    }
    recent_positions_.clear();
    recent_probs_.clear();
    return;
  }
  const std::size_t pool_target = std::min<std::size_t>(
      state_.active_count(), std::max<std::size_t>(8 * config_.candidates_per_selection(), 256));
  SeededRng rng(config_.seed() ^ (kPoolSeedSalt * progress.step()));
  std::unordered_set<std::int64_t> in_pool;
  for (std::size_t tries = 0; pool.size() < pool_target && tries < pool_target * 8; ++tries) {
    const auto p = static_cast<std::int64_t>(rng.Below(ds_.train.size()));
    if (Selectable(p) && in_pool.insert(p).second) pool.push_back(p);
  }
  if (pool.empty()) return;
  torch::NoGradGuard no_grad;
  model.model.eval();
  const torch::Tensor scored =
      torch::softmax(model.model.forward(GatherInput(ds_, ds_.train, model.train_images, pool)), 1)
          .contiguous();
  progress.set_macs(progress.macs() + static_cast<double>(pool.size()) * model.macs_per_sample);
  probs.assign(scored.data_ptr<float>(), scored.data_ptr<float>() + scored.numel());
}

// Scores a candidate pool and acts on the best candidates according to the mode.
void SampleJudge::Select(const ScoringModel& model, v1::Progress& progress) {
  std::vector<std::int64_t> pool;
  std::vector<float> probs;
  CandidatePool(model, progress, pool, probs);
  if (pool.empty()) return;
  std::vector<std::int64_t> given;
  given.reserve(pool.size());
  for (std::int64_t p : pool) given.push_back(state_.labels()[static_cast<std::size_t>(p)]);
  const std::vector<ScoredCandidate> best =
      RankCandidates(probs, given, static_cast<std::size_t>(ds_.num_classes()),
                     config_.selection_score(), config_.candidates_per_selection());
  std::vector<v1::ItemInput> items;
  std::vector<std::uint64_t> refs;
  std::size_t flagged = 0;
  for (const ScoredCandidate& s : best) {
    const auto position = static_cast<std::size_t>(pool[s.index]);
    const CandidateRoute route =
        RouteCandidate(SampleReviewMode(config_.mode()), s.other_p, calibrator_.threshold(),
                       config_.auto_review().human_band());
    if (route.automatic) {
      QueueAutoVerdict(position, s.other, s.other_p);
      ++flagged;
    }
    if (!route.human) continue;
    v1::ItemInput item = ItemFor(ds_, position, state_.labels()[position]);
    item.mutable_model_prediction()->set_label(static_cast<std::uint32_t>(s.top));
    item.mutable_model_prediction()->set_confidence(std::clamp(s.top_p, 0.0, 1.0));
    item.set_priority(s.score);
    items.push_back(std::move(item));
    refs.push_back(ds_.train.refs[position]);
    if (config_.mode() == v1::MODE_HYBRID) calibrator_.Offer(refs.back(), s.other_p);
  }
  std::string message = fmt::format("scored {} samples", pool.size());
  if (!items.empty()) {
    if (Enqueue(items, refs, progress)) {
      message += fmt::format(", enqueued {} candidates", items.size());
    } else {
      for (std::uint64_t ref : refs) calibrator_.Forget(ref);
      message += ", enqueue failed";
    }
  }
  if (flagged > 0) message += fmt::format(", {} flagged automatically", flagged);
  emit_(v1::PROGRESS_EVENT_KIND_SELECTION, message);
}

// Queues an automatic verdict on training sample `position`: its label is `label` when known,
// else only "wrong" (a drop under RELABEL).
void SampleJudge::QueueAutoVerdict(std::size_t position, std::optional<std::int64_t> label,
                                   double confidence) {
  v1::Verdict v;
  v.mutable_sample()->set_dataset(ds_.dataset);
  v.mutable_sample()->set_index(ds_.train.refs[position]);
  v.set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  v.set_given_label(static_cast<std::uint32_t>(state_.labels()[position]));
  if (label) {
    v.set_consensus_label(static_cast<std::uint32_t>(*label));
    v.set_suggested_action(v1::VERDICT_ACTION_RELABEL);
  } else {
    v.set_label_correct(false);
    v.set_suggested_action(v1::VERDICT_ACTION_DROP);
  }
  v.set_confidence(confidence);
  v.set_revision(1);
  auto_verdicts_.push_back({.verdict = std::move(v), .source = ChangeSource::kAuto});
}

}  // namespace greenloop::trainer
