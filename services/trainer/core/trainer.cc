#include "services/trainer/core/trainer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>

#include "common/logging/logging.h"
#include "google/protobuf/util/time_util.h"
#include "services/trainer/core/checkpoint.h"
#include "services/trainer/core/evaluation.h"
#include "services/trainer/core/feature_review.h"
#include "services/trainer/core/features.h"
#include "services/trainer/core/fused_adam.h"
#include "services/trainer/core/gradients.h"
#include "services/trainer/core/inference_bench.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/pruning.h"
#include "services/trainer/core/rater_items.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/run_energy.h"
#include "services/trainer/core/sample_judge.h"
#include "services/trainer/core/trainer_internal.pb.h"
#include "services/trainer/core/verdict_streams.h"
#include "services/trainer/core/verdicts.h"

// Returns from the enclosing function when `expr` (an absl::Status) is not OK. (common/status
// has the same macro, but its header pulls in gRPC, which core code does not include.)
#define GREENLOOP_RETURN_IF_ERROR_LOOP(expr) \
  do {                                       \
    absl::Status _s = (expr);                \
    if (!_s.ok()) return _s;                 \
  } while (false)

namespace greenloop::trainer {
namespace {

using Clock = std::chrono::steady_clock;

// Control values summed with the gradients in the one all-reduce of every step.
enum Control : std::size_t {
  kStop = 0,                // > 0: some rank was asked to stop
  kVerdictCount = 1,        // verdicts rank 0 is about to broadcast
  kEnergyExceeded = 2,      // > 0: some rank saw the energy budget used up
  kSamples = 3,             // samples trained this step, all ranks
  kExtraPasses = 4,         // sample-passes beyond a plain step (FeatureTraining)
  kFailed = 5,              // > 0: some rank's loss was not finite
  kCalibrationLoss = 6,     // λ calibration (FeatureTraining::Calibrating): cross-entropy, summed
  kCalibrationPenalty = 7,  // and the evenly-spread penalty, summed
  kCheckpoint = 8,          // > 0: rank 0's rule questions went out; every rank checkpoints
  kEnergyStale = 9,         // > 0: some rank could not read its energy for the budget's limit
  kControlSize = 10,
};

constexpr std::uint64_t kEpochSeedSalt = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kPruneSeedSalt = 0x165667B19E3779F9ULL;

// A run-ending condition, carried out of the loop.
struct Finish {
  v1::RunState state;
  v1::FinishReason reason;
  std::string message;
};
using MaybeFinish = absl::StatusOr<std::optional<Finish>>;

google::protobuf::Timestamp Now() { return google::protobuf::util::TimeUtil::GetCurrentTime(); }

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

v1::VerdictPolicy AutoPolicy(const v1::VerdictPolicy& policy) {
  v1::VerdictPolicy p = policy;
  if (p.auto_on_wrong_label() != v1::WRONG_LABEL_ACTION_UNSPECIFIED) {
    p.set_on_wrong_label(p.auto_on_wrong_label());
  }
  return p;
}

// Budget.max_energy_stale_seconds with its default.
double StaleLimitSeconds(const v1::RunConfig& config) {
  const double s = config.budget().max_energy_stale_seconds();
  return s > 0 ? s : 60.0;
}

// The port the feature questions go through: a second client in MODE_HITL_COMBINED (its own
// campaign and stream), the run's only one otherwise.
FeedbackQueue* FeaturePort(const v1::RunConfig& config, const TrainingPorts& ports) {
  return config.mode() == v1::MODE_HITL_COMBINED ? ports.feature_feedback : ports.feedback;
}

// The loss and correct predictions of one training batch.
struct BatchResult {
  double loss = 0;
  double correct = 0;
  double extra_passes = 0;  // FeatureTraining::TakeExtraPasses() of the step
  std::string failure;      // why the loss could not be used (not finite); empty when it could
};

// One rank's run: the step loop, epoch ends, evaluations and checkpoints. What it touches lives
// in modules of its own: the samples' judge (sample_judge.h), verdict application (verdicts.h),
// energy (run_energy.h), evaluation (evaluation.h) and checkpoint files (checkpoint.h).
class Loop final {
 public:
  Loop(const v1::RunConfig& config, const LoadedDataset& dataset, const RankOptions& options,
       const TrainingPorts& ports)
      : config_(config),
        ds_(dataset),
        opts_(options),
        ports_(ports),
        collective_(ports.collective != nullptr ? ports.collective : &local_),
        state_(dataset.train, config.mode() == v1::MODE_CLEAN),
        policy_(WithDefaults(config.verdict_policy())),
        auto_policy_(AutoPolicy(policy_)),
        stats_(dataset.train.size()),
        judge_(config, dataset, state_, stats_, ports.feedback, options.run_id,
               [this](v1::ProgressEventKind kind, const std::string& message) {
                 Emit(kind, message);
               }),
        energy_(*ports.energy, *collective_, options.run_id, options.pid, options.rank,
                config.budget().max_energy_joules(), absl::Seconds(StaleLimitSeconds(config))),
        smoother_(config.eval_smoothing()),
        features_(config.feature_feedback(), dataset),
        feature_review_(
            config, dataset, options.rank == 0 ? FeaturePort(config, ports) : nullptr,
            options.run_id,
            [this](v1::ProgressEventKind kind, const std::string& m) { Emit(kind, m); }),
        streams_(config, dataset, options.run_id, options.rank == 0 ? ports.feedback : nullptr,
                 options.rank == 0 ? ports.feature_feedback : nullptr) {}

  TrainingOutcome Run() {
    const Finish finish = Guarded();
    if (UsesHumans(config_.mode())) streams_.Stop();
    energy_.Finish(progress_);
    TrainingOutcome outcome;
    if (finish.state != v1::RUN_STATE_FAILED && !ds_.validation.labels.empty()) {
      try {
        FinalTest(outcome);
      } catch (const std::exception& e) {
        logging::Warn("cannot evaluate the test split",
                      {{"run", opts_.run_id}, {"error", FirstLine(e.what())}});
      }
    }
    if (finish.state != v1::RUN_STATE_FAILED && opts_.rank == 0 && model_ != nullptr) {
      try {
        outcome.inference = BenchmarkInference(
            *model_, ds_, test_images_, config_.inference(), model_info_,
            {.meter = ports_.energy, .run_id = opts_.run_id, .pid = opts_.pid, .stop = [this] {
               return ports_.stop_requested && ports_.stop_requested();
             }});
      } catch (const std::exception& e) {
        logging::Warn("cannot benchmark inference",
                      {{"run", opts_.run_id}, {"error", FirstLine(e.what())}});
      }
    }
    progress_.set_feature_rules(static_cast<std::uint32_t>(features_.rules()));
    progress_.set_feature_penalty_weight(features_.penalty_weight());
    progress_.set_state(finish.state);
    *progress_.mutable_update_time() = Now();
    Fill(finish, outcome);
    return outcome;
  }

 private:
  // Sets up, registers, trains; LibTorch's exceptions end the run as failed.
  Finish Guarded() {
    try {
      absl::Status status = Setup();
      if (status.ok()) status = energy_.Register(config_.energy_endpoint());
      if (status.ok()) status = StartFeedback();
      if (status.ok()) {
        absl::StatusOr<Finish> f = Train();
        if (f.ok()) return *f;
        status = f.status();
      }
      return {v1::RUN_STATE_FAILED, v1::FINISH_REASON_ERROR, std::string(status.message())};
    } catch (const std::exception& e) {
      return {v1::RUN_STATE_FAILED, v1::FINISH_REASON_ERROR,
              fmt::format("training failed: {}", FirstLine(e.what()))};
    }
  }

  void Fill(const Finish& finish, TrainingOutcome& outcome) const {
    outcome.state = finish.state;
    outcome.finish_reason = finish.reason;
    outcome.error_message = finish.message;
    outcome.progress = progress_;
    outcome.model = model_info_;
    outcome.best_eval_accuracy = best_accuracy_;
    outcome.best_smoothed_eval_accuracy = best_smoothed_;
    outcome.energy_to_target_joules = energy_to_target_;
    outcome.steps_to_target = steps_to_target_;
    if (first_projection_ && progress_.energy_joules() > 0) {
      outcome.projection_relative_error =
          (*first_projection_ - progress_.energy_joules()) / progress_.energy_joules();
    }
    outcome.checkpoint_path = checkpoint_path_;
    outcome.curve = curve_;
    outcome.changes_correct = changes_correct_;
    outcome.changes_total = changes_total_;
  }

  // Whether this run records per-sample statistics (for pruning or the noise review).
  bool RecordsStats() const { return Prunes() || judge_.Reviews(); }
  bool Prunes() const { return MayPrune(config_.mode()) && config_.pruning().ratio() > 0; }
  bool HasValidation() const { return !ds_.validation.labels.empty(); }
  // The split evaluations use: the clean validation split when the run has one.
  const Split& EvalSplit() const { return HasValidation() ? ds_.validation : ds_.test; }
  const torch::Tensor& EvalImages() const {
    return HasValidation() ? validation_images_ : test_images_;
  }
  double Elapsed() const {
    return elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
  }
  void AddMacs(double samples, double passes) {
    progress_.set_macs(progress_.macs() +
                       passes * samples * static_cast<double>(model_info_.macs_per_sample()));
  }

  std::uint32_t rank() const { return collective_->rank(); }
  std::uint32_t world() const { return collective_->world_size(); }
  std::uint64_t global_batch() const {
    return static_cast<std::uint64_t>(config_.batch_size()) * world();
  }
  std::uint64_t StepsPerEpoch(std::size_t active) const {
    return std::max<std::uint64_t>(1, active / global_batch());
  }

  absl::Status Setup() {
    // LibTorch's own default, read before any run changed it: a run that sets no threads does
    // not inherit the previous run's.
    static const int default_threads = torch::get_num_threads();
    torch::set_num_threads(config_.threads() > 0 ? static_cast<int>(config_.threads())
                           : opts_.threads > 0   ? opts_.threads
                                                 : default_threads);
    torch::manual_seed(config_.seed());
    absl::StatusOr<std::shared_ptr<ClassifierImpl>> model =
        MakeModel(config_.model_kind(), ds_, config_.model_shape());
    if (!model.ok()) return model.status();
    model_ = *model;
    model_info_ = DescribeModel(*model_, config_.model_kind(), config_.model_shape(), ds_);
    if (ports_.listener != nullptr) ports_.listener->OnModel(model_info_);
    optimizer_ = std::make_unique<FusedAdam>(model_->parameters(),
                                             torch::optim::AdamOptions(config_.learning_rate()));
    train_images_ = ImagesTensor(ds_.train, ds_);
    test_images_ = ImagesTensor(ds_.test, ds_);
    if (HasValidation()) validation_images_ = ImagesTensor(ds_.validation, ds_);
    GREENLOOP_RETURN_IF_ERROR_LOOP(features_.AddConfigRules(model_.get()));
    if (ds_.train.size() < global_batch()) {
      return absl::InvalidArgumentError(fmt::format(
          "the training set holds {} samples, fewer than one global batch ({} × {} ranks)",
          ds_.train.size(), config_.batch_size(), world()));
    }
    GREENLOOP_RETURN_IF_ERROR_LOOP(energy_.CountRanksOnNode(opts_.node));
    progress_.set_state(v1::RUN_STATE_RUNNING);
    progress_.set_epoch(1);
    progress_.set_planned_steps(PlannedSteps());
    if (opts_.resume && !config_.checkpoint_dir().empty()) {
      absl::Status s = LoadCheckpoint();
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
    if (epoch_order_.empty()) NewEpochOrder();
    return absl::OkStatus();
  }

  std::uint64_t PlannedSteps() const {
    const std::uint64_t per_epoch = StepsPerEpoch(ds_.train.size());
    std::uint64_t planned = 0;
    if (config_.budget().max_epochs() > 0) planned = per_epoch * config_.budget().max_epochs();
    if (config_.budget().max_steps() > 0) {
      planned = planned == 0 ? config_.budget().max_steps()
                             : std::min<std::uint64_t>(planned, config_.budget().max_steps());
    }
    return planned;
  }

  // Rank 0 of a mode that asks humans: the run's campaign(s), followed from the cursors.
  absl::Status StartFeedback() {
    if (!UsesHumans(config_.mode()) || rank() != 0) return absl::OkStatus();
    return streams_.Open();
  }

  // The epoch's sample order (seeded, the same on every rank), pruned when the run prunes.
  void NewEpochOrder() {
    std::vector<std::int64_t> active;
    if (Prunes()) {
      EpochPlan plan = PlanEpoch(state_.active(), stats_, config_.pruning(), progress_.epoch(),
                                 config_.budget().max_epochs(),
                                 config_.seed() ^ (kPruneSeedSalt * progress_.epoch()));
      active = std::move(plan.positions);
      epoch_scale_ = std::move(plan.scale);
      progress_.set_samples_pruned(progress_.samples_pruned() + plan.pruned);
    } else {
      active.reserve(state_.active_count());
      for (std::size_t i = 0; i < state_.active().size(); ++i) {
        if (state_.active()[i]) active.push_back(static_cast<std::int64_t>(i));
      }
      epoch_scale_.assign(state_.active().size(), 1.0f);
    }
    const std::vector<std::uint64_t> perm =
        SeededPermutation(active.size(), config_.seed() ^ (kEpochSeedSalt * progress_.epoch()));
    epoch_order_.resize(active.size());
    for (std::size_t i = 0; i < perm.size(); ++i) epoch_order_[i] = active[perm[i]];
    step_in_epoch_ = 0;
    steps_this_epoch_ = StepsPerEpoch(active.size());
  }

  absl::StatusOr<Finish> Train() {
    start_ = Clock::now();
    Emit(v1::PROGRESS_EVENT_KIND_STATE_CHANGE, "training");
    while (true) {
      MaybeFinish f = step_in_epoch_ < steps_this_epoch_ ? StepAndEvaluate() : EndEpoch();
      if (!f.ok()) return f.status();
      if (*f) return **f;
    }
  }

  // One step, the evaluation due after it, and the step budget.
  MaybeFinish StepAndEvaluate() {
    MaybeFinish f = Step();
    if (!f.ok() || *f) return f;
    const std::uint64_t every = config_.eval_every_steps();
    const bool evaluated = every > 0 && progress_.step() % every == 0;
    if (evaluated) {
      f = Evaluate();
      if (!f.ok() || *f) return f;
    }
    if (config_.budget().max_steps() == 0 || progress_.step() < config_.budget().max_steps()) {
      return std::optional<Finish>();
    }
    if (!evaluated) {
      f = Evaluate();
      if (!f.ok() || *f) return f;
    }
    WriteCheckpoint(false);
    return std::optional<Finish>(
        Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_STEP_BUDGET, ""});
  }

  // The end of an epoch: evaluation (when not evaluating every N steps), checkpoint, the epoch
  // budget, the epoch's statistics, and the next epoch's order.
  MaybeFinish EndEpoch() {
    if (config_.eval_every_steps() == 0) {
      MaybeFinish f = Evaluate();
      if (!f.ok()) return f;
      if (*f) {
        WriteCheckpoint(true);
        return f;
      }
    }
    WriteCheckpoint(true);
    Emit(v1::PROGRESS_EVENT_KIND_EPOCH_END, fmt::format("epoch {} ended", progress_.epoch()));
    logging::Info("epoch ended", {{"run", opts_.run_id},
                                  {"rank", opts_.rank},
                                  {"epoch", progress_.epoch()},
                                  {"step", progress_.step()},
                                  {"eval_accuracy", progress_.eval_accuracy()},
                                  {"energy_joules", progress_.energy_joules()},
                                  {"dropped", progress_.samples_dropped()},
                                  {"relabelled", progress_.samples_relabelled()}});
    if (config_.budget().max_epochs() > 0 && progress_.epoch() >= config_.budget().max_epochs()) {
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_EPOCH_BUDGET, ""});
    }
    GREENLOOP_RETURN_IF_ERROR_LOOP(EndEpochStats());
    progress_.set_epoch(progress_.epoch() + 1);
    NewEpochOrder();
    return std::optional<Finish>();
  }

  // Every rank gets the whole epoch's per-sample statistics; rank 0's judge reviews them.
  absl::Status EndEpochStats() {
    if (!RecordsStats()) return absl::OkStatus();
    if (world() > 1) {
      std::vector<float> buffer = stats_.EpochBuffer();
      GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->AllReduceSum(buffer));
      stats_.Absorb(buffer);
    }
    stats_.NewEpoch();
    if (rank() == 0) judge_.EpochEnded(progress_.epoch(), steps_this_epoch_, progress_);
    return absl::OkStatus();
  }

  // This rank's slice of the step's global batch, without samples dropped since the epoch began.
  std::vector<std::int64_t> BatchPositions() const {
    const std::uint64_t base =
        step_in_epoch_ * global_batch() + static_cast<std::uint64_t>(rank()) * config_.batch_size();
    std::vector<std::int64_t> positions;
    positions.reserve(config_.batch_size());
    for (std::uint64_t i = base; i < base + config_.batch_size() && i < epoch_order_.size(); ++i) {
      const std::int64_t p = epoch_order_[i];
      if (state_.active()[static_cast<std::size_t>(p)]) positions.push_back(p);
    }
    return positions;
  }

  // The forward and backward pass of `positions`, with their per-sample statistics recorded.
  BatchResult ForwardBackward(const std::vector<std::int64_t>& positions) {
    ModelInput input = GatherInput(ds_, ds_.train, train_images_, positions);
    std::vector<std::int64_t> labels;
    std::vector<float> weights;
    labels.reserve(positions.size());
    weights.reserve(positions.size());
    for (std::int64_t p : positions) {
      const auto i = static_cast<std::size_t>(p);
      labels.push_back(state_.labels()[i]);
      weights.push_back(state_.weights()[i] * epoch_scale_[i]);
    }
    torch::Tensor target = torch::tensor(labels, torch::kInt64);
    torch::Tensor weight = torch::tensor(weights, torch::kFloat32);
    const std::int64_t covered =
        features_.active() ? features_.Prepare(input, target, progress_.step(), positions) : 0;
    torch::Tensor logits = model_->forward(input);
    torch::Tensor per_sample = torch::nn::functional::cross_entropy(
        logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    // Normalised by the nominal batch, so that every rank's gradient weighs the same.
    const auto nominal = static_cast<double>(config_.batch_size());
    absl::StatusOr<torch::Tensor> loss = (per_sample * weight).sum() / nominal;
    if (covered > 0) loss = features_.AddPenalty(*model_, *loss, logits, input, nominal);
    BatchResult result{per_sample.mean().item<double>(),
                       logits.argmax(1).eq(target).sum().item<double>(),
                       features_.TakeExtraPasses(), ""};
    if (!loss.ok()) {
      result.failure = std::string(loss.status().message());  // every rank fails at this step
      return result;
    }
    loss->backward();
    if (RecordsStats()) {
      const torch::Tensor losses = per_sample.detach().contiguous();
      const torch::Tensor probs = torch::softmax(logits.detach(), 1).contiguous();
      stats_.Record(
          positions,
          std::span<const float>(losses.data_ptr<float>(),
                                 static_cast<std::size_t>(losses.numel())),
          std::span<const float>(probs.data_ptr<float>(), static_cast<std::size_t>(probs.numel())),
          ds_.num_classes(), progress_.step() + 1);
    }
    if (rank() == 0) judge_.RecordBatch(positions, logits);
    return result;
  }

  // Rank 0: the verdicts to broadcast at this step, automatic ones first (decided at the previous
  // step), then the human ones the streams brought.
  void CollectVerdicts() {
    for (PendingVerdict& v : judge_.TakeAutoVerdicts()) pending_.push_back(std::move(v));
    if (!UsesHumans(config_.mode())) return;
    std::uint64_t sample_verdicts = 0;
    for (VerdictStreams::Incoming& in : streams_.Take()) {
      ReceivedVerdict& r = in.received;
      if (!in.feature_stream) ++sample_verdicts;
      const double lag =
          r.verdict.has_decide_time()
              ? absl::ToDoubleSeconds(
                    r.receive_time -
                    absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(
                        r.verdict.decide_time())))
              : 0.0;
      std::optional<v1::FeatureRule> rule = feature_review_.RuleOf(r.verdict);
      pending_.push_back({.verdict = std::move(r.verdict),
                          .source = ChangeSource::kHuman,
                          .cursor = std::move(r.cursor),
                          .queue_lag_seconds = std::max(0.0, lag),
                          .rule = std::move(rule),
                          .feature_stream = in.feature_stream});
    }
    judge_.Answered(sample_verdicts);  // the crowd's pace on the sample questions
  }

  // Takes one optimizer step; returns a Finish when the run must end here.
  MaybeFinish Step() {
    const std::vector<std::int64_t> positions = BatchPositions();
    model_->train();
    model_->zero_grad(/*set_to_none=*/true);  // backward writes fresh gradients: no zero-fill
    const BatchResult batch = positions.empty() ? BatchResult{} : ForwardBackward(positions);
    if (rank() == 0) CollectVerdicts();
    std::array<float, kControlSize> control{};
    control[kStop] = ports_.stop_requested && ports_.stop_requested() ? 1.0f : 0.0f;
    control[kVerdictCount] = rank() == 0 ? static_cast<float>(pending_.size()) : 0.0f;
    control[kEnergyExceeded] = energy_.exceeded() ? 1.0f : 0.0f;
    control[kEnergyStale] = energy_.stale() ? 1.0f : 0.0f;
    control[kSamples] = static_cast<float>(positions.size());
    control[kExtraPasses] = static_cast<float>(batch.extra_passes);
    control[kFailed] = batch.failure.empty() ? 0.0f : 1.0f;
    control[kCheckpoint] = rank() == 0 && feature_review_.TakeJustAsked() ? 1.0f : 0.0f;
    const bool calibrating = features_.Calibrating(progress_.step());
    if (calibrating) {
      const std::array<float, 2> pair = features_.TakeCalibration();
      control[kCalibrationLoss] = pair[0];
      control[kCalibrationPenalty] = pair[1];
    }
    if (world() > 1) {
      std::vector<torch::Tensor> params = model_->parameters();
      GREENLOOP_RETURN_IF_ERROR_LOOP(AllReduceGradients(*collective_, params, control, buffer_));
    }
    if (control[kFailed] > 0) {
      return absl::InvalidArgumentError(
          batch.failure.empty()
              ? "another rank's loss is not finite (config.feature_feedback.penalty_weight)"
              : batch.failure);
    }
    if (calibrating) features_.Calibrate(control[kCalibrationLoss], control[kCalibrationPenalty]);
    optimizer_->step();
    CountStep(control[kSamples], batch, positions.size());
    AddMacs(control[kExtraPasses], 1.0);
    if (control[kVerdictCount] > 0) GREENLOOP_RETURN_IF_ERROR_LOOP(ApplyPending());
    // What was asked (a text question's words) must survive a crash before the epoch's end: the
    // raters' answers name positions in it.
    if (control[kCheckpoint] > 0) WriteCheckpoint(false);
    if (progress_.step() % opts_.step_event_every == 0) EmitStep();
    if (control[kStop] > 0) {
      WriteCheckpoint(false);
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_STOPPED, v1::FINISH_REASON_STOPPED, "stopped"});
    }
    if (control[kEnergyStale] > 0) {
      WriteCheckpoint(false);
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_STOPPED, v1::FINISH_REASON_ENERGY_UNAVAILABLE,
                 fmt::format("the run's energy could not be read for {:.0f} s and it has an energy "
                             "budget (config.budget.max_energy_stale_seconds): stopped with a "
                             "checkpoint; resume it when the energy collector is back",
                             StaleLimitSeconds(config_))});
    }
    if (control[kEnergyExceeded] > 0) {
      WriteCheckpoint(false);
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_ENERGY_BUDGET, ""});
    }
    GREENLOOP_RETURN_IF_ERROR_LOOP(CheckEnergy());
    if (rank() == 0) {
      const auto macs = static_cast<double>(model_info_.macs_per_sample());
      judge_.StepEnded({*model_, train_images_, macs}, progress_);
      feature_review_.StepEnded(*model_, train_images_, state_.labels(), macs, progress_);
    }
    return std::optional<Finish>();
  }

  void CountStep(float samples_all_ranks, const BatchResult& batch, std::size_t samples_here) {
    progress_.set_step(progress_.step() + 1);
    ++step_in_epoch_;
    progress_.set_samples_processed(progress_.samples_processed() +
                                    static_cast<std::uint64_t>(samples_all_ranks));
    // Forward and backward: about three forward passes' worth of multiply-accumulates.
    AddMacs(samples_all_ranks, 3.0);
    window_loss_ += batch.loss;
    window_correct_ += batch.correct;
    window_samples_ += static_cast<double>(samples_here);
    ++window_steps_;
  }

  void EmitStep() {
    progress_.set_feature_rules(static_cast<std::uint32_t>(features_.rules()));
    progress_.set_feature_penalty_weight(features_.penalty_weight());
    progress_.set_train_loss(window_steps_ > 0 ? window_loss_ / window_steps_ : 0);
    progress_.set_train_accuracy(window_samples_ > 0 ? window_correct_ / window_samples_ : 0);
    window_loss_ = window_correct_ = window_samples_ = 0;
    window_steps_ = 0;
    UpdateEta(progress_, Elapsed(), config_.projection_warmup_steps());
    Emit(v1::PROGRESS_EVENT_KIND_STEP, "");
  }

  // The projection at the end of the warm-up, and the energy budget every energy_check_every.
  absl::Status CheckEnergy() {
    if (progress_.step() == config_.projection_warmup_steps()) {
      GREENLOOP_RETURN_IF_ERROR_LOOP(energy_.Refresh(progress_));
      ProjectTotalEnergy(progress_, config_.projection_warmup_steps());
      first_projection_ = progress_.has_projected_total_energy_joules()
                              ? std::optional<double>(progress_.projected_total_energy_joules())
                              : std::nullopt;
    } else if (config_.budget().max_energy_joules() > 0 &&
               progress_.step() % opts_.energy_check_every == 0) {
      GREENLOOP_RETURN_IF_ERROR_LOOP(energy_.Refresh(progress_));
    }
    return absl::OkStatus();
  }

  // Broadcasts rank 0's pending verdicts and applies them on every rank, in the same order.
  absl::Status ApplyPending() {
    std::string bytes = rank() == 0 ? SerializeVerdicts(pending_) : std::string();
    pending_.clear();
    GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->Broadcast(bytes));
    absl::StatusOr<std::vector<PendingVerdict>> verdicts = DeserializeVerdicts(bytes);
    if (!verdicts.ok()) return verdicts.status();
    // Each stream's position after the whole batch, whichever kind of verdict came last.
    streams_.Advance(*verdicts);
    ApplyRules(*verdicts);
    const AppliedVerdicts applied =
        ApplyVerdicts(*verdicts, state_, policy_, auto_policy_, progress_.step(), ds_.num_classes(),
                      progress_, [this](const v1::Verdict& v) { judge_.ObserveHuman(v); });
    changes_total_ += applied.changes.size();
    changes_correct_ += applied.correct();
    if (ports_.listener != nullptr) {
      if (applied.humans > 0) {
        ports_.listener->OnQueueLag(applied.queue_lag_seconds_sum /
                                    static_cast<double>(applied.humans));
      }
      if (!applied.changes.empty()) ports_.listener->OnChanges(applied.changes);
    }
    Emit(v1::PROGRESS_EVENT_KIND_VERDICTS_APPLIED,
         fmt::format("{} verdicts received, {} applied", verdicts->size(), applied.changes.size()));
    return absl::OkStatus();
  }

  // Takes the feature-rule and feature-mask verdicts out of `verdicts` and, in the modes that ask
  // for features, puts their rules in force (every rank, in broadcast order). A verdict of another
  // kind than the mode asks (a campaign reused with another question) is dropped with a warning,
  // so a rule item's class index never relabels a training sample, nor a label verdict becomes a
  // rule.
  void ApplyRules(std::vector<PendingVerdict>& verdicts) {
    const bool features = AsksForFeatures(config_.mode());
    const bool samples_too = config_.mode() != v1::MODE_HITL_FEATURES;
    std::vector<PendingVerdict> samples;
    for (PendingVerdict& v : verdicts) {
      const bool is_rule = v.verdict.question_kind() == v1::QUESTION_KIND_FEATURE_RULE ||
                           v.verdict.question_kind() == v1::QUESTION_KIND_FEATURE_MASK;
      if (!is_rule && samples_too) {
        samples.push_back(std::move(v));
        continue;
      }
      progress_.set_verdicts_received(progress_.verdicts_received() + 1);
      if (!is_rule || !features) {
        logging::Warn("ignoring a verdict of another question kind than the run asks",
                      {{"run", opts_.run_id},
                       {"kind", v1::QuestionKind_Name(v.verdict.question_kind())},
                       {"campaign", streams_.CampaignOf(v.feature_stream)}});
        continue;
      }
      const std::optional<v1::FeatureRule>& rule = v.rule;  // decided on rank 0
      if (!rule) continue;
      if (absl::Status s = features_.AddRule(*rule, "verdict", model_.get(), optimizer_.get());
          !s.ok()) {
        logging::Warn("ignoring a rule verdict that does not fit the dataset",
                      {{"run", opts_.run_id}, {"error", s.ToString()}});
        continue;
      }
      progress_.set_verdicts_applied(progress_.verdicts_applied() + 1);
      if (!rule->has_sample()) {  // per-item masks are too many to tell one by one
        Emit(v1::PROGRESS_EVENT_KIND_VERDICTS_APPLIED,
             rule->irrelevant_tokens().empty()
                 ? fmt::format("rule for class {}: ignore {} cells", rule->label(),
                               rule->irrelevant_cells_size())
                 : fmt::format("rule for class {}: ignore the words {}", rule->label(),
                               fmt::join(rule->irrelevant_tokens(), ", ")));
      }
    }
    verdicts = std::move(samples);
  }

  // After the run (validation runs): the test split, once, on the final model and on the model
  // as it was at the best smoothed validation accuracy. Outside the run's energy.
  void FinalTest(TrainingOutcome& outcome) {
    const SplitScore final_score = ScoreSplit(*model_, ds_, ds_.test, test_images_);
    if (final_score.count > 0) outcome.test_accuracy = final_score.correct / final_score.count;
    outcome.decoy_saliency = DecoySaliency(*model_, ds_, ds_.test, test_images_);
    if (outcome.decoy_saliency) outcome.explanation = Explain(*model_, ds_, test_images_);
    if (best_state_.empty()) {
      outcome.best_test_accuracy = outcome.test_accuracy;
      return;
    }
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> now = ModelState(*model_);
      for (std::size_t i = 0; i < now.size() && i < best_state_.size(); ++i) {
        now[i].copy_(best_state_[i]);
      }
    }
    const SplitScore best_score = ScoreSplit(*model_, ds_, ds_.test, test_images_);
    if (best_score.count > 0) outcome.best_test_accuracy = best_score.correct / best_score.count;
  }

  // The evaluation split's accuracy over all ranks (each scores its share), its MACs counted.
  absl::StatusOr<double> ScoreEvaluation() {
    const SplitScore score = ScoreSplit(*model_, ds_, EvalSplit(), EvalImages(), rank(), world());
    const auto samples = static_cast<double>(EvalSplit().size());
    AddMacs(samples, 1.0);
    progress_.set_eval_macs(progress_.eval_macs() +
                            samples * static_cast<double>(model_info_.macs_per_sample()));
    float sums[3] = {static_cast<float>(score.correct), static_cast<float>(score.loss),
                     static_cast<float>(score.count)};
    if (world() > 1) GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->AllReduceSum(sums));
    progress_.set_eval_loss(sums[2] > 0 ? sums[1] / sums[2] : 0);
    return sums[2] > 0 ? sums[0] / sums[2] : 0.0;
  }

  // Keeps the best raw and smoothed accuracy, and (rank 0, validation runs) the model at the
  // best smoothed one, for the final test.
  void TrackBest(double accuracy, std::optional<double> smoothed) {
    if (smoothed && (!best_smoothed_ || *smoothed > *best_smoothed_)) {
      best_smoothed_ = smoothed;
      if (HasValidation() && rank() == 0) {
        torch::NoGradGuard no_grad;
        best_state_.clear();
        for (const torch::Tensor& t : ModelState(*model_))
          best_state_.push_back(t.detach().clone());
      }
    }
    if (!best_accuracy_ || accuracy > *best_accuracy_) best_accuracy_ = accuracy;
  }

  void RecordPoint(double accuracy) {
    EvaluationPoint point;
    point.step = progress_.step();
    point.epoch = progress_.epoch();
    point.samples_processed = progress_.samples_processed();
    point.eval_accuracy = accuracy;
    point.eval_loss = progress_.eval_loss();
    point.train_loss = progress_.train_loss();
    point.energy_joules = progress_.energy_joules();
    point.node_energy_joules = progress_.node_energy_joules();
    point.elapsed_seconds = progress_.elapsed_seconds();
    point.record_time = absl::Now();
    curve_.push_back(point);
    if (ports_.listener != nullptr) ports_.listener->OnEvaluation(point);
    Emit(v1::PROGRESS_EVENT_KIND_EVALUATION,
         fmt::format("{} accuracy {:.4f} at step {}, {:.1f} J",
                     HasValidation() ? "validation" : "test", accuracy, progress_.step(),
                     progress_.energy_joules()));
  }

  // One evaluation with the run's energy at that point; the target is read on the smoothed
  // accuracy.
  MaybeFinish Evaluate() {
    absl::StatusOr<double> accuracy = ScoreEvaluation();
    if (!accuracy.ok()) return accuracy.status();
    progress_.set_eval_accuracy(*accuracy);
    GREENLOOP_RETURN_IF_ERROR_LOOP(energy_.Refresh(progress_));
    ProjectTotalEnergy(progress_, config_.projection_warmup_steps());
    UpdateEta(progress_, Elapsed(), config_.projection_warmup_steps());
    const std::optional<double> smoothed = smoother_.Add(*accuracy);
    TrackBest(*accuracy, smoothed);
    RecordPoint(*accuracy);
    if (config_.target_accuracy() > 0 && smoothed && *smoothed >= config_.target_accuracy()) {
      if (!energy_to_target_) {
        energy_to_target_ = progress_.energy_joules();
        steps_to_target_ = progress_.step();
      }
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_TARGET_REACHED, ""});
    }
    if (energy_.exceeded()) {
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_ENERGY_BUDGET, ""});
    }
    return std::optional<Finish>();
  }

  void Emit(v1::ProgressEventKind kind, const std::string& message) {
    *progress_.mutable_update_time() = Now();
    if (ports_.listener != nullptr) ports_.listener->OnEvent(kind, progress_, message);
  }

  // --- checkpoints --------------------------------------------------------------------------

  std::string RankDir() const {
    return RankCheckpointDir(config_.checkpoint_dir(), opts_.run_id, opts_.rank);
  }

  // The loop's state, as a checkpoint keeps it.
  internal::CheckpointState CheckpointStateNow(bool epoch_finished) const {
    internal::CheckpointState st;
    st.set_run_id(opts_.run_id);
    st.set_rank(opts_.rank);
    st.set_world_size(world());
    st.set_architecture(model_info_.architecture());
    st.set_epoch(progress_.epoch());
    st.set_step(progress_.step());
    st.set_step_in_epoch(step_in_epoch_);
    st.set_epoch_finished(epoch_finished);
    for (std::int64_t p : epoch_order_) st.add_epoch_order(static_cast<std::uint64_t>(p));
    for (std::int64_t l : state_.labels()) st.add_labels(l);
    for (float w : state_.weights()) st.add_weights(w);
    st.set_active(std::string(state_.active().begin(), state_.active().end()));
    std::vector<std::uint64_t> asked(judge_.asked().begin(), judge_.asked().end());
    std::sort(asked.begin(), asked.end());
    for (std::uint64_t a : asked) st.add_asked(a);
    st.set_verdict_cursor(streams_.cursor());
    st.set_feature_verdict_cursor(streams_.feature_cursor());
    *st.mutable_progress() = progress_;
    if (best_accuracy_) st.set_best_eval_accuracy(*best_accuracy_);
    if (energy_to_target_) st.set_energy_to_target_joules(*energy_to_target_);
    if (steps_to_target_) st.set_steps_to_target(*steps_to_target_);
    if (first_projection_) st.set_projected_total_energy_joules(*first_projection_);
    const ThresholdCalibrator& calibrator = judge_.calibrator();
    st.set_flag_threshold(calibrator.threshold());
    for (const auto& [p, wrong] : calibrator.points()) {
      internal::CalibrationPoint* c = st.add_calibration();
      c->set_other_class_probability(p);
      c->set_human_said_wrong(wrong);
    }
    for (const auto& [ref, p] : calibrator.in_band()) (*st.mutable_in_band())[ref] = p;
    st.set_elapsed_seconds(Elapsed());
    for (const v1::FeatureRule& r : features_.added_rules()) *st.add_feature_rules() = r;
    st.set_feature_penalty_weight(features_.penalty_weight());
    st.set_rules_asked(feature_review_.asked());
    for (const v1::FeatureRule& q : feature_review_.questions()) *st.add_rule_questions() = q;
    return st;
  }

  void WriteCheckpoint(bool epoch_finished) {
    if (config_.checkpoint_dir().empty()) return;
    const std::string name = fmt::format("epoch-{}-step-{}", progress_.epoch(), progress_.step());
    absl::StatusOr<std::string> path =
        SaveCheckpoint(RankDir(), name, *model_, *optimizer_, CheckpointStateNow(epoch_finished));
    if (!path.ok()) {
      // A lost checkpoint costs a restart its progress, not the run.
      logging::Warn(
          "cannot write checkpoint",
          {{"run", opts_.run_id}, {"rank", opts_.rank}, {"error", path.status().ToString()}});
      return;
    }
    checkpoint_path_ = *path;
    Emit(v1::PROGRESS_EVENT_KIND_CHECKPOINT, fmt::format("checkpoint {}", name));
  }

  // The step every rank resumes from: the newest one all of them hold (a collective). NOT_FOUND
  // when no rank holds any.
  absl::StatusOr<std::uint64_t> AgreedResumeStep() {
    std::string mine;
    for (std::uint64_t step : CheckpointSteps(RankDir())) {
      mine += (mine.empty() ? "" : ",") + std::to_string(step);
    }
    absl::StatusOr<std::vector<std::string>> all = collective_->AllGather(mine);
    if (!all.ok()) return all.status();
    std::vector<std::vector<std::uint64_t>> per_rank;
    for (const std::string& list : *all) {
      std::vector<std::uint64_t>& steps = per_rank.emplace_back();
      for (std::size_t start = 0; start < list.size();) {
        const std::size_t end = std::min(list.find(',', start), list.size());
        steps.push_back(std::stoull(list.substr(start, end - start)));
        start = end + 1;
      }
    }
    absl::StatusOr<std::optional<std::uint64_t>> step = ResumeStep(per_rank, opts_.run_id);
    if (!step.ok()) return step.status();
    if (!step->has_value()) return absl::NotFoundError("no checkpoint to resume from");
    return **step;
  }

  absl::Status LoadCheckpoint() {
    absl::StatusOr<std::uint64_t> step = AgreedResumeStep();
    if (!step.ok()) return step.status();
    absl::StatusOr<LoadedCheckpoint> loaded = LoadCheckpointAt(
        RankDir(), *step, opts_.run_id, world(), *model_, *optimizer_, model_info_.architecture());
    if (!loaded.ok()) return loaded.status();
    const internal::CheckpointState& st = loaded->state;
    GREENLOOP_RETURN_IF_ERROR_LOOP(
        state_.Restore(std::vector<std::int64_t>(st.labels().begin(), st.labels().end()),
                       std::vector<float>(st.weights().begin(), st.weights().end()),
                       std::vector<std::uint8_t>(st.active().begin(), st.active().end())));
    progress_ = st.progress();
    progress_.set_state(v1::RUN_STATE_RUNNING);
    streams_.Restore(st.verdict_cursor(), st.feature_verdict_cursor());
    if (st.has_best_eval_accuracy()) best_accuracy_ = st.best_eval_accuracy();
    if (st.has_energy_to_target_joules()) energy_to_target_ = st.energy_to_target_joules();
    if (st.has_steps_to_target()) steps_to_target_ = st.steps_to_target();
    if (st.has_projected_total_energy_joules()) {
      first_projection_ = st.projected_total_energy_joules();
    }
    RestoreJudge(st);
    GREENLOOP_RETURN_IF_ERROR_LOOP(RestoreFeatures(st));
    elapsed_before_ = st.elapsed_seconds();
    checkpoint_path_ = loaded->path;
    RestoreEpoch(st);
    logging::Info("resumed from checkpoint", {{"run", opts_.run_id},
                                              {"rank", opts_.rank},
                                              {"path", loaded->path},
                                              {"step", progress_.step()}});
    return absl::OkStatus();
  }

  void RestoreJudge(const internal::CheckpointState& st) {
    std::vector<std::pair<double, bool>> points;
    for (const internal::CalibrationPoint& c : st.calibration()) {
      points.emplace_back(c.other_class_probability(), c.human_said_wrong());
    }
    judge_.Restore(std::vector<std::uint64_t>(st.asked().begin(), st.asked().end()),
                   st.flag_threshold(), std::move(points),
                   std::map<std::uint64_t, double>(st.in_band().begin(), st.in_band().end()));
  }

  // The raters' rules, λ and whether the rule questions went out (the config's rules are in force
  // already).
  absl::Status RestoreFeatures(const internal::CheckpointState& st) {
    for (int i = 0; i < st.feature_rules_size(); ++i) {
      GREENLOOP_RETURN_IF_ERROR_LOOP(
          features_.AddRule(st.feature_rules(i), fmt::format("checkpoint feature_rules[{}]", i)));
    }
    // A checkpoint written before calibration keeps the config's λ (or 0: calibrate again).
    if (st.feature_penalty_weight() > 0)
      features_.RestorePenaltyWeight(st.feature_penalty_weight());
    feature_review_.set_asked(st.rules_asked());
    feature_review_.set_questions({st.rule_questions().begin(), st.rule_questions().end()});
    return absl::OkStatus();
  }

  void RestoreEpoch(const internal::CheckpointState& st) {
    if (st.epoch_finished()) {
      progress_.set_epoch(st.epoch() + 1);
      NewEpochOrder();
      return;
    }
    progress_.set_epoch(st.epoch());
    epoch_order_.assign(st.epoch_order().begin(), st.epoch_order().end());
    epoch_scale_.assign(state_.active().size(), 1.0f);  // pruning weights restart at 1
    step_in_epoch_ = st.step_in_epoch();
    steps_this_epoch_ = StepsPerEpoch(epoch_order_.size());
  }

  const v1::RunConfig& config_;
  const LoadedDataset& ds_;
  const RankOptions opts_;
  const TrainingPorts ports_;
  LocalCollective local_;
  Collective* collective_;
  TrainingSetState state_;
  const v1::VerdictPolicy policy_;
  const v1::VerdictPolicy auto_policy_;  // automatic verdicts (auto_on_wrong_label)
  SampleStats stats_;
  SampleJudge judge_;  // rank 0's; idle on the others
  RunEnergy energy_;
  MovingAverage smoother_;
  FeatureTraining features_;      // the feature rules in force and how they act on training
  FeatureReview feature_review_;  // rank 0, modes that ask for features: asks raters for rules
  VerdictStreams streams_;        // rank 0, modes that ask humans: the campaigns' verdicts
  std::optional<double> best_smoothed_;
  std::vector<torch::Tensor> best_state_;  // model state at best_smoothed_ (validation runs)

  std::shared_ptr<ClassifierImpl> model_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  v1::ModelInfo model_info_;
  torch::Tensor train_images_;
  torch::Tensor test_images_;
  torch::Tensor validation_images_;
  std::vector<float> buffer_;  // the gradient all-reduce's

  v1::Progress progress_;
  std::vector<std::int64_t> epoch_order_;
  std::vector<float> epoch_scale_;  // per training position: this epoch's pruning weight factor
  std::uint64_t step_in_epoch_ = 0;
  std::uint64_t steps_this_epoch_ = 0;
  std::vector<PendingVerdict> pending_;  // rank 0: to broadcast at this step

  std::optional<double> best_accuracy_;
  std::optional<double> energy_to_target_;
  std::optional<std::uint64_t> steps_to_target_;
  std::optional<double> first_projection_;
  std::string checkpoint_path_;
  std::vector<EvaluationPoint> curve_;
  std::uint64_t changes_correct_ = 0;
  std::uint64_t changes_total_ = 0;

  double window_loss_ = 0;
  double window_correct_ = 0;
  double window_samples_ = 0;
  std::uint64_t window_steps_ = 0;
  Clock::time_point start_ = Clock::now();
  double elapsed_before_ = 0;
};

}  // namespace

TrainingOutcome Train(const v1::RunConfig& config, const LoadedDataset& dataset,
                      const RankOptions& options, const TrainingPorts& ports) {
  if (ports.energy == nullptr) {
    TrainingOutcome outcome;
    outcome.error_message = "no energy collector: greenloop does not train unmeasured";
    return outcome;
  }
  Loop loop(config, dataset, options, ports);
  return loop.Run();
}

}  // namespace greenloop::trainer
