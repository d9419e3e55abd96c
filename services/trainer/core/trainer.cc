#include "services/trainer/core/trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "common/logging/logging.h"
#include "google/protobuf/util/time_util.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/noise_review.h"
#include "services/trainer/core/png.h"
#include "services/trainer/core/pruning.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/trainer_internal.pb.h"
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

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Control values summed with the gradients in the one all-reduce of every step.
enum Control : std::size_t {
  kStop = 0,            // > 0: some rank was asked to stop
  kVerdictCount = 1,    // verdicts rank 0 is about to broadcast
  kEnergyExceeded = 2,  // > 0: some rank saw the energy budget used up
  kSamples = 3,         // samples trained this step, all ranks
  kControlSize = 4,
};

constexpr std::uint64_t kEpochSeedSalt = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kPoolSeedSalt = 0xC2B2AE3D27D4EB4FULL;
constexpr std::uint64_t kPruneSeedSalt = 0x165667B19E3779F9ULL;

// A run-ending condition, carried out of the loop.
struct Finish {
  v1::RunState state;
  v1::FinishReason reason;
  std::string message;
};

google::protobuf::Timestamp Now() { return google::protobuf::util::TimeUtil::GetCurrentTime(); }

absl::Status WriteFileAtomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(fmt::format("cannot write {}", tmp.string()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return absl::InternalError(fmt::format("cannot write {}", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return absl::InternalError(fmt::format("cannot rename {}: {}", tmp.string(), ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("cannot read {}", path.string()));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

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
        review_(WithDefaults(config.noise_review(), config.candidates_per_selection())),
        limit_(review_.min_outstanding_items(), review_.outstanding_seconds()),
        stats_(dataset.train.size()),
        flag_threshold_(config.auto_review().flag_threshold()) {}

  TrainingOutcome Run() {
    TrainingOutcome outcome;
    bool registered = false;
    Finish finish{v1::RUN_STATE_FAILED, v1::FINISH_REASON_ERROR, ""};
    try {
      absl::Status status = Setup();
      if (status.ok()) {
        status = ports_.energy->Register(opts_.run_id, opts_.pid, opts_.rank);
        if (!status.ok()) {
          status = absl::Status(
              status.code(), fmt::format("cannot register with the energy collector at {} "
                                         "(greenloop does not train unmeasured): {}",
                                         config_.energy_endpoint(), std::string(status.message())));
        }
        registered = status.ok();
      }
      if (status.ok()) status = StartFeedback();
      if (status.ok()) {
        absl::StatusOr<Finish> f = Train();
        if (f.ok()) {
          finish = *f;
        } else {
          status = f.status();
        }
      }
      if (!status.ok())
        finish = {v1::RUN_STATE_FAILED, v1::FINISH_REASON_ERROR, std::string(status.message())};
    } catch (const std::exception& e) {
      finish = {v1::RUN_STATE_FAILED, v1::FINISH_REASON_ERROR,
                fmt::format("training failed: {}", FirstLine(e.what()))};
    }
    if (ports_.feedback != nullptr && opts_.rank == 0 && UsesHumans(config_.mode())) {
      ports_.feedback->StopWatching();
    }
    if (registered) {
      // One last reading, so that the figures include the tail of the run.
      if (absl::StatusOr<double> e = ports_.energy->RunEnergyJoules(opts_.run_id); e.ok()) {
        progress_.set_node_energy_joules(*e);
        if (collective_->world_size() == 1) progress_.set_energy_joules(*e);
      }
      if (absl::Status s = ports_.energy->Unregister(opts_.run_id, opts_.pid); !s.ok()) {
        logging::Warn("cannot unregister from the energy collector",
                      {{"run", opts_.run_id}, {"error", s.ToString()}});
      }
    }
    if (finish.state != v1::RUN_STATE_FAILED && !ds_.validation.labels.empty()) {
      try {
        FinalTest(outcome);
      } catch (const std::exception& e) {
        logging::Warn("cannot evaluate the test split",
                      {{"run", opts_.run_id}, {"error", FirstLine(e.what())}});
      }
    }
    progress_.set_state(finish.state);
    *progress_.mutable_update_time() = Now();
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
    return outcome;
  }

 private:
  static std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

  static v1::VerdictPolicy AutoPolicy(const v1::VerdictPolicy& policy) {
    v1::VerdictPolicy p = policy;
    if (p.auto_on_wrong_label() != v1::WRONG_LABEL_ACTION_UNSPECIFIED) {
      p.set_on_wrong_label(p.auto_on_wrong_label());
    }
    return p;
  }

  // Whether this run records per-sample statistics (for pruning or the noise review).
  bool RecordsStats() const { return Prunes() || Reviews(); }
  bool Prunes() const { return MayPrune(config_.mode()) && config_.pruning().ratio() > 0; }
  bool Reviews() const { return JudgesSamples(config_.mode()) && review_.enabled(); }
  // The split evaluations use: the clean validation split when the run has one.
  const Split& EvalSplit() const {
    return ds_.validation.labels.empty() ? ds_.test : ds_.validation;
  }
  const torch::Tensor& EvalImages() const {
    return ds_.validation.labels.empty() ? test_images_ : validation_images_;
  }

  std::uint32_t rank() const { return collective_->rank(); }
  std::uint32_t world() const { return collective_->world_size(); }
  std::uint64_t global_batch() const {
    return static_cast<std::uint64_t>(config_.batch_size()) * world();
  }

  absl::Status Setup() {
    if (opts_.threads > 0) torch::set_num_threads(opts_.threads);
    torch::manual_seed(config_.seed());
    absl::StatusOr<std::shared_ptr<ClassifierImpl>> model = MakeModel(config_.model_kind(), ds_);
    if (!model.ok()) return model.status();
    model_ = *model;
    model_info_ = DescribeModel(*model_, config_.model_kind(), ds_);
    if (ports_.listener != nullptr) ports_.listener->OnModel(model_info_);
    optimizer_ = std::make_unique<torch::optim::Adam>(
        model_->parameters(), torch::optim::AdamOptions(config_.learning_rate()));
    train_images_ = ImagesTensor(ds_.train, ds_);
    test_images_ = ImagesTensor(ds_.test, ds_);
    if (!ds_.validation.labels.empty()) validation_images_ = ImagesTensor(ds_.validation, ds_);
    for (const torch::Tensor& p : model_->parameters()) {
      grad_size_ += static_cast<std::size_t>(p.numel());
    }
    if (ds_.train.size() < global_batch()) {
      return absl::InvalidArgumentError(fmt::format(
          "the training set holds {} samples, fewer than one global batch ({} × {} ranks)",
          ds_.train.size(), config_.batch_size(), world()));
    }
    // Which ranks share a node, so that a node's energy is counted once in the run's total.
    absl::StatusOr<std::vector<std::string>> nodes = collective_->AllGather(opts_.node);
    if (!nodes.ok()) return nodes.status();
    ranks_on_node_ = static_cast<double>(std::count(nodes->begin(), nodes->end(), opts_.node));

    progress_.set_state(v1::RUN_STATE_RUNNING);
    progress_.set_epoch(1);
    const std::uint64_t per_epoch = StepsPerEpoch(ds_.train.size());
    std::uint64_t planned = 0;
    if (config_.budget().max_epochs() > 0) planned = per_epoch * config_.budget().max_epochs();
    if (config_.budget().max_steps() > 0) {
      planned = planned == 0 ? config_.budget().max_steps()
                             : std::min<std::uint64_t>(planned, config_.budget().max_steps());
    }
    progress_.set_planned_steps(planned);
    if (opts_.resume && !config_.checkpoint_dir().empty()) {
      absl::Status s = LoadCheckpoint();
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
    if (epoch_order_.empty()) NewEpochOrder();
    return absl::OkStatus();
  }

  absl::Status StartFeedback() {
    if (!UsesHumans(config_.mode()) || rank() != 0) return absl::OkStatus();
    if (ports_.feedback == nullptr) {
      return absl::FailedPreconditionError("MODE_HITL and MODE_HYBRID need a feedback queue");
    }
    v1::CampaignSpec spec;
    spec.set_display_name(fmt::format("{}: check labels", opts_.run_id));
    spec.set_run_id(opts_.run_id);
    spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
    for (int i = 0; i < ds_.num_classes(); ++i) {
      v1::Label* label = spec.add_labels();
      label->set_name(ds_.label_names[static_cast<std::size_t>(i)]);
      label->set_display_name(ds_.label_display_names[static_cast<std::size_t>(i)]);
    }
    absl::Status s = ports_.feedback->EnsureCampaign(config_.feedback().campaign_id(), spec);
    // A campaign made beforehand with another display name or k is the experiment's choice.
    if (!s.ok() && !absl::IsAlreadyExists(s)) {
      return absl::Status(s.code(),
                          fmt::format("feedback service at {}: {}", config_.feedback().endpoint(),
                                      std::string(s.message())));
    }
    return ports_.feedback->StartWatching(config_.feedback().campaign_id(), cursor_);
  }

  std::uint64_t StepsPerEpoch(std::size_t active) const {
    return std::max<std::uint64_t>(1, active / global_batch());
  }

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
      // --- one step ---------------------------------------------------------------------
      if (step_in_epoch_ < steps_this_epoch_) {
        absl::StatusOr<std::optional<Finish>> stepped = Step();
        if (!stepped.ok()) return stepped.status();
        if (*stepped) return **stepped;
        if (config_.eval_every_steps() > 0 && progress_.step() % config_.eval_every_steps() == 0) {
          absl::StatusOr<std::optional<Finish>> f = Evaluate();
          if (!f.ok()) return f.status();
          if (*f) return **f;
        }
        if (config_.budget().max_steps() > 0 && progress_.step() >= config_.budget().max_steps()) {
          if (config_.eval_every_steps() == 0 ||
              progress_.step() % config_.eval_every_steps() != 0) {
            absl::StatusOr<std::optional<Finish>> f = Evaluate();
            if (!f.ok()) return f.status();
            if (*f) return **f;
          }
          WriteCheckpoint(false);
          return Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_STEP_BUDGET, ""};
        }
        continue;
      }
      // --- epoch end --------------------------------------------------------------------
      if (config_.eval_every_steps() == 0) {
        absl::StatusOr<std::optional<Finish>> f = Evaluate();
        if (!f.ok()) return f.status();
        if (*f) {
          WriteCheckpoint(true);
          return **f;
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
        return Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_EPOCH_BUDGET, ""};
      }
      GREENLOOP_RETURN_IF_ERROR_LOOP(EndEpochStats());
      progress_.set_epoch(progress_.epoch() + 1);
      NewEpochOrder();
    }
  }

  // Epoch end: every rank gets the whole epoch's per-sample statistics, then rank 0 runs the
  // noise review once the warm-up is over.
  absl::Status EndEpochStats() {
    if (!RecordsStats()) return absl::OkStatus();
    if (world() > 1) {
      std::vector<float> buffer = stats_.EpochBuffer();
      GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->AllReduceSum(buffer));
      stats_.Absorb(buffer);
    }
    stats_.NewEpoch();
    if (Reviews() && rank() == 0 && progress_.epoch() >= review_.warmup_epochs()) Review();
    return absl::OkStatus();
  }

  // Records made by a model that had hardly trained say little: the first review_every_steps
  // steps (or, reviewing at epoch ends, the first half epoch) are left out.
  std::uint64_t MinRecordStep() const {
    return review_.review_every_steps() > 0 ? review_.review_every_steps()
                                            : std::max<std::uint64_t>(1, steps_this_epoch_ / 2);
  }

  // Rank 0: splits the training set by its loss statistics; confidently noisy samples become
  // automatic verdicts (applied at the next step on every rank), ambiguous ones the human queue.
  void Review() {
    const ReviewSplit split = SplitForReview(
        stats_, state_.active(), state_.labels(), review_, config_.mode(),
        [&](std::size_t p) { return decided_.contains(p) || asked_.contains(ds_.train.refs[p]); },
        MinRecordStep());
    // Every sample classified, fixed or asked about at least once.
    progress_.set_samples_reviewed(std::min<std::uint64_t>(
        ds_.train.size(),
        std::max<std::uint64_t>(progress_.samples_reviewed(),
                                split.classified + decided_.size() + asked_.size())));
    for (std::size_t i = 0; i < split.automatic.size(); ++i) {
      const auto position = static_cast<std::size_t>(split.automatic[i]);
      // A label known wrong is replaced by the model's class only where the model is sure of
      // it; otherwise the verdict only says "wrong", which the policy turns into a drop.
      const bool sure = stats_.predicted_probability(position) >= review_.relabel_probability();
      QueueAutoVerdict(
          position, sure ? std::optional<std::int64_t>(stats_.predicted(position)) : std::nullopt,
          split.automatic_posterior[i]);
      decided_.insert(position);
    }
    human_queue_.assign(split.human.begin(), split.human.end());
    human_posterior_.assign(split.human_posterior.begin(), split.human_posterior.end());
    human_next_ = 0;
    Emit(v1::PROGRESS_EVENT_KIND_SELECTION,
         fmt::format("noise review: {} samples classified (loss components {:.2f} / {:.2f}), {} "
                     "fixed automatically, {} queued for raters",
                     split.classified, split.fit.mean_low, split.fit.mean_high,
                     split.automatic.size(), split.human.size()));
  }

  // Takes one optimizer step; returns a Finish when the run must end here.
  absl::StatusOr<std::optional<Finish>> Step() {
    // This rank's slice of the global batch, without samples dropped since the epoch began.
    const std::uint64_t base =
        step_in_epoch_ * global_batch() + static_cast<std::uint64_t>(rank()) * config_.batch_size();
    std::vector<std::int64_t> positions;
    positions.reserve(config_.batch_size());
    for (std::uint64_t i = base; i < base + config_.batch_size() && i < epoch_order_.size(); ++i) {
      const std::int64_t p = epoch_order_[i];
      if (state_.active()[static_cast<std::size_t>(p)]) positions.push_back(p);
    }
    model_->train();
    optimizer_->zero_grad();
    double batch_loss = 0;
    double batch_correct = 0;
    if (!positions.empty()) {
      ModelInput input = GatherInput(ds_, ds_.train, train_images_, positions);
      std::vector<std::int64_t> labels;
      std::vector<float> weights;
      labels.reserve(positions.size());
      weights.reserve(positions.size());
      for (std::int64_t p : positions) {
        labels.push_back(state_.labels()[static_cast<std::size_t>(p)]);
        weights.push_back(state_.weights()[static_cast<std::size_t>(p)] *
                          epoch_scale_[static_cast<std::size_t>(p)]);
      }
      torch::Tensor target = torch::tensor(labels, torch::kInt64);
      torch::Tensor weight = torch::tensor(weights, torch::kFloat32);
      torch::Tensor logits = model_->forward(input);
      torch::Tensor per_sample = torch::nn::functional::cross_entropy(
          logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
      // Normalised by the nominal batch, so that every rank's gradient weighs the same.
      torch::Tensor loss = (per_sample * weight).sum() / static_cast<double>(config_.batch_size());
      loss.backward();
      batch_loss = per_sample.mean().item<double>();
      batch_correct = logits.argmax(1).eq(target).sum().item<double>();
      if (RecordsStats()) {
        const torch::Tensor losses = per_sample.detach().contiguous();
        const torch::Tensor probs = torch::softmax(logits.detach(), 1).contiguous();
        stats_.Record(positions,
                      std::span<const float>(losses.data_ptr<float>(),
                                             static_cast<std::size_t>(losses.numel())),
                      std::span<const float>(probs.data_ptr<float>(),
                                             static_cast<std::size_t>(probs.numel())),
                      ds_.num_classes(), progress_.step() + 1);
      }
      // Only Select() reads these; with the noise review it never runs, and the buffers would
      // grow without bound.
      if (rank() == 0 && JudgesSamples(config_.mode()) && !Reviews() &&
          config_.selection_pool() == v1::SELECTION_POOL_TRAINING_BATCHES) {
        RecordScores(positions, logits);
      }
    }

    // Verdicts waiting on rank 0 (human ones from the stream, automatic ones from selection).
    if (rank() == 0 && ports_.feedback != nullptr && UsesHumans(config_.mode())) {
      std::vector<ReceivedVerdict> received = ports_.feedback->TakeVerdicts();
      limit_.Answered(received.size());
      for (ReceivedVerdict& r : received) {
        const double lag =
            r.verdict.has_decide_time()
                ? absl::ToDoubleSeconds(
                      r.receive_time -
                      absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(
                          r.verdict.decide_time())))
                : 0.0;
        pending_.push_back({.verdict = std::move(r.verdict),
                            .source = ChangeSource::kHuman,
                            .cursor = std::move(r.cursor),
                            .queue_lag_seconds = std::max(0.0, lag)});
      }
    }

    std::array<float, kControlSize> control{};
    control[kStop] = ports_.stop_requested && ports_.stop_requested() ? 1.0f : 0.0f;
    control[kVerdictCount] = rank() == 0 ? static_cast<float>(pending_.size()) : 0.0f;
    control[kEnergyExceeded] = energy_exceeded_ ? 1.0f : 0.0f;
    control[kSamples] = static_cast<float>(positions.size());
    if (world() > 1) {
      GREENLOOP_RETURN_IF_ERROR_LOOP(SyncGradients(control));
    }
    optimizer_->step();

    progress_.set_step(progress_.step() + 1);
    ++step_in_epoch_;
    progress_.set_samples_processed(progress_.samples_processed() +
                                    static_cast<std::uint64_t>(control[kSamples]));
    // Forward and backward: about three forward passes' worth of multiply-accumulates.
    progress_.set_macs(progress_.macs() + 3.0 * static_cast<double>(control[kSamples]) *
                                              static_cast<double>(model_info_.macs_per_sample()));
    window_loss_ += batch_loss;
    window_correct_ += batch_correct;
    window_samples_ += static_cast<double>(positions.size());
    ++window_steps_;

    if (control[kVerdictCount] > 0) {
      absl::Status s = ApplyPending();
      if (!s.ok()) return s;
    }
    if (progress_.step() % opts_.step_event_every == 0) {
      progress_.set_train_loss(window_steps_ > 0 ? window_loss_ / window_steps_ : 0);
      progress_.set_train_accuracy(window_samples_ > 0 ? window_correct_ / window_samples_ : 0);
      window_loss_ = window_correct_ = window_samples_ = 0;
      window_steps_ = 0;
      UpdateEta();
      Emit(v1::PROGRESS_EVENT_KIND_STEP, "");
    }
    if (control[kStop] > 0) {
      WriteCheckpoint(false);
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_STOPPED, v1::FINISH_REASON_STOPPED, "stopped"});
    }
    if (control[kEnergyExceeded] > 0) {
      WriteCheckpoint(false);
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_ENERGY_BUDGET, ""});
    }
    if (progress_.step() == config_.projection_warmup_steps()) {
      absl::Status s = RefreshEnergy();
      if (!s.ok()) return s;
      Project();
      first_projection_ = progress_.has_projected_total_energy_joules()
                              ? std::optional<double>(progress_.projected_total_energy_joules())
                              : std::nullopt;
    } else if (config_.budget().max_energy_joules() > 0 &&
               progress_.step() % opts_.energy_check_every == 0) {
      absl::Status s = RefreshEnergy();
      if (!s.ok()) return s;
    }
    if (Reviews() && rank() == 0 && review_.review_every_steps() > 0 &&
        progress_.step() % review_.review_every_steps() == 0) {
      Review();
    }
    if (JudgesSamples(config_.mode()) && progress_.step() % config_.select_every_steps() == 0 &&
        rank() == 0) {
      if (Reviews()) {
        EnqueueReviewed();
      } else {
        Select();
      }
    }
    return std::optional<Finish>();
  }

  // Sums gradients and control values across ranks in one all-reduce, then averages gradients.
  absl::Status SyncGradients(std::array<float, kControlSize>& control) {
    buffer_.resize(grad_size_ + kControlSize);
    std::size_t offset = 0;
    std::vector<torch::Tensor> params = model_->parameters();
    for (const torch::Tensor& p : params) {
      const auto n = static_cast<std::size_t>(p.numel());
      if (p.grad().defined()) {
        torch::Tensor g = p.grad().contiguous();
        std::memcpy(buffer_.data() + offset, g.data_ptr<float>(), n * sizeof(float));
      } else {
        std::fill_n(buffer_.data() + offset, n, 0.0f);
      }
      offset += n;
    }
    std::copy(control.begin(), control.end(),
              buffer_.begin() + static_cast<std::ptrdiff_t>(offset));
    GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->AllReduceSum(buffer_));
    const float scale = 1.0f / static_cast<float>(world());
    offset = 0;
    for (torch::Tensor& p : params) {
      const auto n = static_cast<std::int64_t>(p.numel());
      torch::Tensor summed =
          torch::from_blob(buffer_.data() + offset, p.sizes(), torch::kFloat32) * scale;
      if (p.mutable_grad().defined()) {
        p.mutable_grad().copy_(summed);
      } else {
        p.mutable_grad() = summed.clone();
      }
      offset += static_cast<std::size_t>(n);
    }
    std::copy(buffer_.begin() + static_cast<std::ptrdiff_t>(offset), buffer_.end(),
              control.begin());
    return absl::OkStatus();
  }

  // Broadcasts rank 0's pending verdicts and applies them on every rank, in the same order.
  absl::Status ApplyPending() {
    std::string bytes = rank() == 0 ? SerializeVerdicts(pending_) : std::string();
    pending_.clear();
    GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->Broadcast(bytes));
    absl::StatusOr<std::vector<PendingVerdict>> verdicts = DeserializeVerdicts(bytes);
    if (!verdicts.ok()) return verdicts.status();
    std::vector<SampleChange> changes;
    double lag_sum = 0;
    std::uint64_t humans = 0;
    for (const PendingVerdict& p : *verdicts) {
      progress_.set_verdicts_received(progress_.verdicts_received() + 1);
      if (p.source == ChangeSource::kHuman) {
        if (!p.cursor.empty()) cursor_ = p.cursor;
        lag_sum += p.queue_lag_seconds;
        ++humans;
        Calibrate(p.verdict);
      }
      std::optional<SampleChange> change = state_.Apply(
          p.verdict, p.source, p.source == ChangeSource::kAuto ? auto_policy_ : policy_,
          progress_.step(), ds_.num_classes());
      if (!change) continue;
      progress_.set_verdicts_applied(progress_.verdicts_applied() + 1);
      switch (change->action) {
        case ChangeAction::kRelabel:
          progress_.set_samples_relabelled(progress_.samples_relabelled() + 1);
          break;
        case ChangeAction::kDrop:
          progress_.set_samples_dropped(progress_.samples_dropped() + 1);
          break;
        case ChangeAction::kReweight:
          progress_.set_samples_reweighted(progress_.samples_reweighted() + 1);
          break;
        case ChangeAction::kKeep:
          break;
      }
      ++changes_total_;
      if (change->correct) {
        ++changes_correct_;
        progress_.set_verdicts_correct(progress_.verdicts_correct() + 1);
      }
      changes.push_back(*std::move(change));
    }
    if (humans > 0 && ports_.listener != nullptr) {
      ports_.listener->OnQueueLag(lag_sum / static_cast<double>(humans));
    }
    if (ports_.listener != nullptr && !changes.empty()) ports_.listener->OnChanges(changes);
    Emit(v1::PROGRESS_EVENT_KIND_VERDICTS_APPLIED,
         fmt::format("{} verdicts received, {} applied", verdicts->size(), changes.size()));
    return absl::OkStatus();
  }

  // MODE_HYBRID: a human answer about an item that the automatic score left undecided moves the
  // flag threshold to the value that best separates what humans called wrong from right.
  void Calibrate(const v1::Verdict& verdict) {
    if (config_.mode() != v1::MODE_HYBRID) return;
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
    calibration_.emplace_back(it->second, said_wrong);
    in_band_.erase(it);
    double best = flag_threshold_;
    std::size_t best_errors = SIZE_MAX;
    for (const auto& [candidate, ignored] : calibration_) {
      (void)ignored;
      std::size_t errors = 0;
      for (const auto& [p, wrong] : calibration_) errors += (p >= candidate) != wrong ? 1 : 0;
      if (errors < best_errors || (errors == best_errors && candidate > best)) {
        best_errors = errors;
        best = candidate;
      }
    }
    flag_threshold_ = std::clamp(best, 0.5, 0.99);
  }

  // SELECTION_POOL_TRAINING_BATCHES (rank 0): keeps the class probabilities of the samples just
  // trained on, from their own training forward pass, for the next Select().
  void RecordScores(const std::vector<std::int64_t>& positions, const torch::Tensor& logits) {
    const torch::Tensor probs = torch::softmax(logits.detach(), 1).contiguous();
    const float* p = probs.data_ptr<float>();
    recent_positions_.insert(recent_positions_.end(), positions.begin(), positions.end());
    recent_probs_.insert(recent_probs_.end(), p, p + probs.numel());
  }

  // Whether `position` may be a candidate: still trained on and never asked about.
  bool Selectable(std::int64_t position) const {
    return state_.active()[static_cast<std::size_t>(position)] &&
           !asked_.contains(ds_.train.refs[static_cast<std::size_t>(position)]);
  }

  // The candidate pool and its class probabilities (pool.size() × classes, row-major).
  // SELECTION_POOL_TRAINING_BATCHES: the samples recorded since the last selection, each with its
  // newest scores; SELECTION_POOL_RANDOM (or nothing recorded yet): a fresh random pool scored by
  // an extra forward pass.
  void CandidatePool(std::vector<std::int64_t>& pool, std::vector<float>& probs) {
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
    const std::uint32_t wanted = config_.candidates_per_selection();
    const std::size_t pool_target =
        std::min<std::size_t>(state_.active_count(), std::max<std::size_t>(8 * wanted, 256));
    SeededRng rng(config_.seed() ^ (kPoolSeedSalt * progress_.step()));
    std::unordered_set<std::int64_t> in_pool;
    for (std::size_t tries = 0; pool.size() < pool_target && tries < pool_target * 8; ++tries) {
      const auto p = static_cast<std::int64_t>(rng.Below(ds_.train.size()));
      if (Selectable(p) && in_pool.insert(p).second) pool.push_back(p);
    }
    if (pool.empty()) return;
    torch::NoGradGuard no_grad;
    model_->eval();
    const torch::Tensor scored =
        torch::softmax(model_->forward(GatherInput(ds_, ds_.train, train_images_, pool)), 1)
            .contiguous();
    progress_.set_macs(progress_.macs() + static_cast<double>(pool.size()) *
                                              static_cast<double>(model_info_.macs_per_sample()));
    probs.assign(scored.data_ptr<float>(), scored.data_ptr<float>() + scored.numel());
  }

  // Rank 0: scores a candidate pool and acts on the best candidates according to the mode.
  void Select() {
    const std::uint32_t wanted = config_.candidates_per_selection();
    std::vector<std::int64_t> pool;
    std::vector<float> probs;
    CandidatePool(pool, probs);
    if (pool.empty()) return;
    const auto classes = static_cast<std::size_t>(ds_.num_classes());
    const float* pr = probs.data();
    struct Scored {
      std::size_t index;  // into pool
      double score;
      std::int64_t other;  // most probable class other than the given label
      double other_p;
      std::int64_t top;
      double top_p;
    };
    std::vector<Scored> scored;
    scored.reserve(pool.size());
    for (std::size_t i = 0; i < pool.size(); ++i) {
      const float* row = pr + i * classes;
      const std::int64_t given = state_.labels()[static_cast<std::size_t>(pool[i])];
      Scored s{i, 0, -1, 0, 0, 0};
      double first = 0;
      double second = 0;
      double entropy = 0;
      for (std::size_t k = 0; k < classes; ++k) {
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
      switch (config_.selection_score()) {
        case v1::SELECTION_SCORE_MARGIN:
          s.score = 1.0 - (first - second);
          break;
        case v1::SELECTION_SCORE_ENTROPY:
          s.score = entropy;
          break;
        default:
          s.score = -std::log(std::max<double>(row[given], 1e-12));
      }
      scored.push_back(s);
    }
    std::stable_sort(scored.begin(), scored.end(),
                     [](const Scored& a, const Scored& b) { return a.score > b.score; });
    if (scored.size() > wanted) scored.resize(wanted);

    std::vector<v1::ItemInput> items;
    std::vector<std::uint64_t> item_refs;
    std::size_t flagged = 0;
    for (const Scored& s : scored) {
      const auto position = static_cast<std::size_t>(pool[s.index]);
      const std::uint64_t ref = ds_.train.refs[position];
      const std::int64_t given = state_.labels()[position];
      const double thr = flag_threshold_;
      const double band = config_.auto_review().human_band();
      bool automatic = false;
      bool human = false;
      switch (config_.mode()) {
        case v1::MODE_AUTO:
          automatic = s.other_p >= thr;
          break;
        case v1::MODE_HITL:
          human = true;
          break;
        case v1::MODE_HYBRID:
          automatic = s.other_p >= thr + band;
          human = !automatic && std::abs(s.other_p - thr) < band;
          break;
        default:
          break;
      }
      if (automatic) {
        QueueAutoVerdict(position, s.other, s.other_p);
        ++flagged;
      }
      if (human) {
        v1::ItemInput item;
        item.mutable_sample()->set_dataset(ds_.dataset);
        item.mutable_sample()->set_index(ref);
        FillPayload(position, item);
        item.set_given_label(static_cast<std::uint32_t>(given));
        item.mutable_model_prediction()->set_label(static_cast<std::uint32_t>(s.top));
        item.mutable_model_prediction()->set_confidence(std::clamp(s.top_p, 0.0, 1.0));
        item.set_priority(s.score);
        items.push_back(std::move(item));
        item_refs.push_back(ref);
        if (config_.mode() == v1::MODE_HYBRID) in_band_[ref] = s.other_p;
      }
    }
    std::string message = fmt::format("scored {} samples", pool.size());
    if (!items.empty()) {
      absl::Status s = ports_.feedback->Enqueue(config_.feedback().campaign_id(), items);
      if (s.ok()) {
        for (std::uint64_t ref : item_refs) asked_.insert(ref);
        progress_.set_items_enqueued(progress_.items_enqueued() + items.size());
        message += fmt::format(", enqueued {} candidates", items.size());
      } else {
        // Degraded, not fatal: training never waits for people; the next selection retries.
        ++enqueue_failures_;
        progress_.set_feedback_errors(progress_.feedback_errors() + 1);
        for (std::uint64_t ref : item_refs) in_band_.erase(ref);
        logging::Warn("cannot enqueue candidates; training goes on",
                      {{"run", opts_.run_id}, {"error", s.ToString()}});
        message += fmt::format(", enqueue failed: {}", std::string(s.message()));
      }
    }
    if (flagged > 0) message += fmt::format(", {} flagged automatically", flagged);
    Emit(v1::PROGRESS_EVENT_KIND_SELECTION, message);
  }

  // Rank 0: queues an automatic verdict on training sample `position` (applied at the next step
  // on every rank): its label is `label` when known, else only "wrong" (a drop under RELABEL).
  void QueueAutoVerdict(std::size_t position, std::optional<std::int64_t> label,
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
    pending_.push_back({.verdict = std::move(v), .source = ChangeSource::kAuto});
  }

  // The display payload of training sample `position`.
  void FillPayload(std::size_t position, v1::ItemInput& item) const {
    if (ds_.image_pixels() > 0) {
      const auto n = static_cast<std::size_t>(ds_.image_pixels());
      item.mutable_payload()->set_png(EncodeGreyscalePng(
          std::span<const std::uint8_t>(ds_.train.pixels.data() + position * n, n), ds_.image_rows,
          ds_.image_cols));
    } else {
      item.mutable_payload()->set_text(ds_.train_display_text[position]);
    }
  }

  // Rank 0, noise review: enqueues the next items of the human queue, as many as the crowd's
  // measured pace leaves room for (OutstandingLimit). An outage is counted, never fatal: the items
  // stay queued and training goes on without humans meanwhile.
  void EnqueueReviewed() {
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
      v1::ItemInput item;
      item.mutable_sample()->set_dataset(ds_.dataset);
      item.mutable_sample()->set_index(ref);
      FillPayload(position, item);
      item.set_given_label(static_cast<std::uint32_t>(state_.labels()[position]));
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
    if (items.empty()) return;
    absl::Status s = ports_.feedback->Enqueue(config_.feedback().campaign_id(), items);
    if (!s.ok()) {
      progress_.set_feedback_errors(progress_.feedback_errors() + 1);
      logging::Warn("cannot enqueue reviewed samples; training goes on without humans",
                    {{"run", opts_.run_id}, {"error", s.ToString()}});
      return;
    }
    human_next_ = next;
    asked_.insert(refs.begin(), refs.end());
    limit_.Enqueued(items.size(), now);
    progress_.set_items_enqueued(progress_.items_enqueued() + items.size());
    Emit(v1::PROGRESS_EVENT_KIND_SELECTION,
         fmt::format("enqueued {} reviewed samples ({} awaiting verdicts, {:.1f} verdicts/s)",
                     items.size(), limit_.outstanding(), limit_.Rate(now)));
  }

  // Reads this node's energy and composes the run's total over the ranks (a node counted once).
  absl::Status RefreshEnergy() {
    absl::StatusOr<double> node = ports_.energy->RunEnergyJoules(opts_.run_id);
    if (node.ok()) {
      progress_.set_node_energy_joules(*node);
    } else {
      logging::Warn("cannot read the run's energy; keeping the last figure",
                    {{"run", opts_.run_id}, {"error", node.status().ToString()}});
    }
    float share[1] = {static_cast<float>(progress_.node_energy_joules() / ranks_on_node_)};
    if (world() > 1) GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->AllReduceSum(share));
    progress_.set_energy_joules(world() > 1 ? share[0] : progress_.node_energy_joules());
    if (config_.budget().max_energy_joules() > 0 &&
        progress_.energy_joules() >= config_.budget().max_energy_joules()) {
      energy_exceeded_ = true;
    }
    return absl::OkStatus();
  }

  void Project() {
    if (progress_.step() == 0 || progress_.planned_steps() == 0) return;
    if (progress_.step() < config_.projection_warmup_steps()) return;
    const double per_step = progress_.energy_joules() / static_cast<double>(progress_.step());
    progress_.set_projected_total_energy_joules(per_step *
                                                static_cast<double>(progress_.planned_steps()));
  }

  void UpdateEta() {
    const double elapsed =
        elapsed_before_ + std::chrono::duration<double>(Clock::now() - start_).count();
    progress_.set_elapsed_seconds(elapsed);
    if (progress_.step() >= config_.projection_warmup_steps() && progress_.planned_steps() > 0 &&
        progress_.step() > 0) {
      const double per_step = elapsed / static_cast<double>(progress_.step());
      const double left = progress_.planned_steps() > progress_.step()
                              ? static_cast<double>(progress_.planned_steps() - progress_.step())
                              : 0.0;
      progress_.set_eta_seconds(per_step * left);
    }
  }

  struct SplitScore {
    double correct = 0;
    double loss = 0;
    double count = 0;
  };

  // Scores the model on `split` (`images`: its ImagesTensor) in inference batches; with `shard`,
  // only this rank's share (every world()-th sample).
  SplitScore ScoreSplit(const Split& split, const torch::Tensor& images, bool shard) {
    torch::NoGradGuard no_grad;
    model_->eval();
    SplitScore score;
    std::vector<std::int64_t> positions;
    const std::size_t first = shard ? rank() : 0;
    const std::size_t stride = shard ? world() : 1;
    for (std::size_t i = first; i < split.size(); i += stride) {
      positions.push_back(static_cast<std::int64_t>(i));
    }
    constexpr std::size_t kEvalBatch = 1024;
    for (std::size_t start = 0; start < positions.size(); start += kEvalBatch) {
      const std::size_t end = std::min(positions.size(), start + kEvalBatch);
      std::span<const std::int64_t> chunk(positions.data() + start, end - start);
      torch::Tensor logits = model_->forward(GatherInput(ds_, split, images, chunk));
      std::vector<std::int64_t> labels;
      for (std::int64_t p : chunk) labels.push_back(split.labels[static_cast<std::size_t>(p)]);
      torch::Tensor target = torch::tensor(labels, torch::kInt64);
      score.loss += torch::nn::functional::cross_entropy(
                        logits, target,
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                        .item<double>();
      score.correct += logits.argmax(1).eq(target).sum().item<double>();
      score.count += static_cast<double>(chunk.size());
    }
    return score;
  }

  // After the run (validation runs): the test split, once, on the final model and on the model
  // as it was at the best smoothed validation accuracy. Outside the run's energy.
  void FinalTest(TrainingOutcome& outcome) {
    const SplitScore final_score = ScoreSplit(ds_.test, test_images_, false);
    if (final_score.count > 0) outcome.test_accuracy = final_score.correct / final_score.count;
    if (best_state_.empty()) {
      outcome.best_test_accuracy = outcome.test_accuracy;
      return;
    }
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> now = ModelState();
      for (std::size_t i = 0; i < now.size() && i < best_state_.size(); ++i) {
        now[i].copy_(best_state_[i]);
      }
    }
    const SplitScore best_score = ScoreSplit(ds_.test, test_images_, false);
    if (best_score.count > 0) outcome.best_test_accuracy = best_score.correct / best_score.count;
  }

  // The model's parameters and buffers (batch-norm statistics), in a fixed order.
  std::vector<torch::Tensor> ModelState() const {
    std::vector<torch::Tensor> out = model_->parameters();
    for (const torch::Tensor& b : model_->buffers()) out.push_back(b);
    return out;
  }

  // Moving average of the last eval_smoothing evaluations, once that many exist.
  std::optional<double> Smoothed(double accuracy) {
    recent_evals_.push_back(accuracy);
    const std::size_t window = std::max<std::uint32_t>(1, config_.eval_smoothing());
    while (recent_evals_.size() > window) recent_evals_.erase(recent_evals_.begin());
    if (recent_evals_.size() < window) return std::nullopt;
    return std::accumulate(recent_evals_.begin(), recent_evals_.end(), 0.0) /
           static_cast<double>(window);
  }

  absl::StatusOr<std::optional<Finish>> Evaluate() {
    const SplitScore score = ScoreSplit(EvalSplit(), EvalImages(), true);
    progress_.set_macs(progress_.macs() + static_cast<double>(EvalSplit().size()) *
                                              static_cast<double>(model_info_.macs_per_sample()));
    progress_.set_eval_macs(progress_.eval_macs() +
                            static_cast<double>(EvalSplit().size()) *
                                static_cast<double>(model_info_.macs_per_sample()));
    float sums[3] = {static_cast<float>(score.correct), static_cast<float>(score.loss),
                     static_cast<float>(score.count)};
    if (world() > 1) GREENLOOP_RETURN_IF_ERROR_LOOP(collective_->AllReduceSum(sums));
    const double accuracy = sums[2] > 0 ? sums[0] / sums[2] : 0;
    progress_.set_eval_accuracy(accuracy);
    progress_.set_eval_loss(sums[2] > 0 ? sums[1] / sums[2] : 0);
    GREENLOOP_RETURN_IF_ERROR_LOOP(RefreshEnergy());
    Project();
    UpdateEta();
    const std::optional<double> smoothed = Smoothed(accuracy);
    if (smoothed && (!best_smoothed_ || *smoothed > *best_smoothed_)) {
      best_smoothed_ = smoothed;
      if (!ds_.validation.labels.empty() && rank() == 0) {
        torch::NoGradGuard no_grad;
        best_state_.clear();
        for (const torch::Tensor& t : ModelState()) best_state_.push_back(t.detach().clone());
      }
    }
    if (!best_accuracy_ || accuracy > *best_accuracy_) best_accuracy_ = accuracy;

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
                     ds_.validation.labels.empty() ? "test" : "validation", accuracy,
                     progress_.step(), progress_.energy_joules()));
    if (config_.target_accuracy() > 0 && smoothed && *smoothed >= config_.target_accuracy()) {
      if (!energy_to_target_) {
        energy_to_target_ = progress_.energy_joules();
        steps_to_target_ = progress_.step();
      }
      return std::optional<Finish>(
          Finish{v1::RUN_STATE_SUCCEEDED, v1::FINISH_REASON_TARGET_REACHED, ""});
    }
    if (energy_exceeded_) {
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

  fs::path RankDir() const {
    return RankCheckpointDir(config_.checkpoint_dir(), opts_.run_id, opts_.rank);
  }

  void WriteCheckpoint(bool epoch_finished) {
    if (config_.checkpoint_dir().empty()) return;
    absl::Status s = TryWriteCheckpoint(epoch_finished);
    if (!s.ok()) {
      // A lost checkpoint costs a restart its progress, not the run.
      logging::Warn("cannot write checkpoint",
                    {{"run", opts_.run_id}, {"rank", opts_.rank}, {"error", s.ToString()}});
    }
  }

  absl::Status TryWriteCheckpoint(bool epoch_finished) {
    const fs::path dir = RankDir();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      return absl::InternalError(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
    const std::string name = fmt::format("epoch-{}-step-{}", progress_.epoch(), progress_.step());
    const fs::path tmp = dir / (name + ".tmp");
    const fs::path final_dir = dir / name;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    {
      torch::serialize::OutputArchive model_archive;
      model_->save(model_archive);
      model_archive.save_to((tmp / "model.pt").string());
      torch::serialize::OutputArchive optimizer_archive;
      optimizer_->save(optimizer_archive);
      optimizer_archive.save_to((tmp / "optimizer.pt").string());
    }
    internal::CheckpointState st;
    st.set_run_id(opts_.run_id);
    st.set_rank(opts_.rank);
    st.set_world_size(world());
    st.set_epoch(progress_.epoch());
    st.set_step(progress_.step());
    st.set_step_in_epoch(step_in_epoch_);
    st.set_epoch_finished(epoch_finished);
    for (std::int64_t p : epoch_order_) st.add_epoch_order(static_cast<std::uint64_t>(p));
    for (std::int64_t l : state_.labels()) st.add_labels(l);
    for (float w : state_.weights()) st.add_weights(w);
    st.set_active(std::string(state_.active().begin(), state_.active().end()));
    std::vector<std::uint64_t> asked(asked_.begin(), asked_.end());
    std::sort(asked.begin(), asked.end());
    for (std::uint64_t a : asked) st.add_asked(a);
    st.set_verdict_cursor(cursor_);
    *st.mutable_progress() = progress_;
    if (best_accuracy_) st.set_best_eval_accuracy(*best_accuracy_);
    if (energy_to_target_) st.set_energy_to_target_joules(*energy_to_target_);
    if (steps_to_target_) st.set_steps_to_target(*steps_to_target_);
    if (first_projection_) st.set_projected_total_energy_joules(*first_projection_);
    st.set_flag_threshold(flag_threshold_);
    for (const auto& [p, wrong] : calibration_) {
      internal::CalibrationPoint* c = st.add_calibration();
      c->set_other_class_probability(p);
      c->set_human_said_wrong(wrong);
    }
    for (const auto& [ref, p] : in_band_) (*st.mutable_in_band())[ref] = p;
    st.set_elapsed_seconds(elapsed_before_ +
                           std::chrono::duration<double>(Clock::now() - start_).count());
    GREENLOOP_RETURN_IF_ERROR_LOOP(WriteFileAtomically(tmp / "state.pb", st.SerializeAsString()));
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir, ec);
    if (ec)
      return absl::InternalError(
          fmt::format("cannot publish {}: {}", final_dir.string(), ec.message()));
    GREENLOOP_RETURN_IF_ERROR_LOOP(WriteFileAtomically(dir / "LATEST", name));
    // Keep only the latest checkpoint.
    for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_directory() && entry.path().filename() != name) fs::remove_all(entry.path(), ec);
    }
    checkpoint_path_ = final_dir.string();
    Emit(v1::PROGRESS_EVENT_KIND_CHECKPOINT, fmt::format("checkpoint {}", name));
    return absl::OkStatus();
  }

  absl::Status LoadCheckpoint() {
    const fs::path dir = RankDir();
    absl::StatusOr<std::string> latest = ReadFile(dir / "LATEST");
    if (!latest.ok()) return latest.status();
    const fs::path path = dir / *latest;
    absl::StatusOr<std::string> bytes = ReadFile(path / "state.pb");
    if (!bytes.ok())
      return absl::DataLossError(fmt::format("checkpoint {} has no state.pb", path.string()));
    internal::CheckpointState st;
    if (!st.ParseFromString(*bytes) || st.run_id() != opts_.run_id) {
      return absl::DataLossError(
          fmt::format("checkpoint {} is not one of run {}", path.string(), opts_.run_id));
    }
    if (st.world_size() != world()) {
      return absl::FailedPreconditionError(
          fmt::format("checkpoint {} was written by a run of {} ranks; this one has {}",
                      path.string(), st.world_size(), world()));
    }
    {
      torch::serialize::InputArchive model_archive;
      model_archive.load_from((path / "model.pt").string());
      model_->load(model_archive);
      torch::serialize::InputArchive optimizer_archive;
      optimizer_archive.load_from((path / "optimizer.pt").string());
      optimizer_->load(optimizer_archive);
    }
    GREENLOOP_RETURN_IF_ERROR_LOOP(
        state_.Restore(std::vector<std::int64_t>(st.labels().begin(), st.labels().end()),
                       std::vector<float>(st.weights().begin(), st.weights().end()),
                       std::vector<std::uint8_t>(st.active().begin(), st.active().end())));
    progress_ = st.progress();
    progress_.set_state(v1::RUN_STATE_RUNNING);
    asked_.insert(st.asked().begin(), st.asked().end());
    cursor_ = st.verdict_cursor();
    if (st.has_best_eval_accuracy()) best_accuracy_ = st.best_eval_accuracy();
    if (st.has_energy_to_target_joules()) energy_to_target_ = st.energy_to_target_joules();
    if (st.has_steps_to_target()) steps_to_target_ = st.steps_to_target();
    if (st.has_projected_total_energy_joules())
      first_projection_ = st.projected_total_energy_joules();
    flag_threshold_ = st.flag_threshold();
    for (const internal::CalibrationPoint& c : st.calibration()) {
      calibration_.emplace_back(c.other_class_probability(), c.human_said_wrong());
    }
    for (const auto& [ref, p] : st.in_band()) in_band_[ref] = p;
    elapsed_before_ = st.elapsed_seconds();
    checkpoint_path_ = path.string();
    if (st.epoch_finished()) {
      progress_.set_epoch(st.epoch() + 1);
      NewEpochOrder();
    } else {
      progress_.set_epoch(st.epoch());
      epoch_order_.assign(st.epoch_order().begin(), st.epoch_order().end());
      epoch_scale_.assign(state_.active().size(), 1.0f);  // pruning weights restart at 1
      step_in_epoch_ = st.step_in_epoch();
      steps_this_epoch_ = StepsPerEpoch(epoch_order_.size());
    }
    logging::Info("resumed from checkpoint", {{"run", opts_.run_id},
                                              {"rank", opts_.rank},
                                              {"path", path.string()},
                                              {"step", progress_.step()}});
    return absl::OkStatus();
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
  const v1::NoiseReview review_;
  OutstandingLimit limit_;
  SampleStats stats_;
  std::vector<float> epoch_scale_;  // per training position: this epoch's pruning weight factor
  std::unordered_set<std::size_t> decided_;  // positions fixed automatically (rank 0)
  std::vector<std::int64_t> human_queue_;    // noise review: positions for raters, in order
  std::vector<double> human_posterior_;
  std::size_t human_next_ = 0;
  std::vector<double> recent_evals_;
  std::optional<double> best_smoothed_;
  std::vector<torch::Tensor> best_state_;  // model state at best_smoothed_ (validation runs)

  std::shared_ptr<ClassifierImpl> model_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  v1::ModelInfo model_info_;
  torch::Tensor train_images_;
  torch::Tensor test_images_;
  torch::Tensor validation_images_;
  std::size_t grad_size_ = 0;
  std::vector<float> buffer_;
  double ranks_on_node_ = 1;

  v1::Progress progress_;
  std::vector<std::int64_t> epoch_order_;
  std::uint64_t step_in_epoch_ = 0;
  std::uint64_t steps_this_epoch_ = 0;
  std::vector<PendingVerdict> pending_;
  std::unordered_set<std::uint64_t> asked_;
  std::string cursor_;
  double flag_threshold_;
  std::vector<std::pair<double, bool>> calibration_;
  std::map<std::uint64_t, double> in_band_;

  std::optional<double> best_accuracy_;
  std::optional<double> energy_to_target_;
  std::optional<std::uint64_t> steps_to_target_;
  std::optional<double> first_projection_;
  bool energy_exceeded_ = false;
  std::string checkpoint_path_;
  std::vector<EvaluationPoint> curve_;
  std::uint64_t changes_correct_ = 0;
  // SELECTION_POOL_TRAINING_BATCHES: samples trained on since the last selection and their class
  // probabilities (rank 0).
  std::vector<std::int64_t> recent_positions_;
  std::vector<float> recent_probs_;
  std::uint64_t changes_total_ = 0;
  std::uint64_t enqueue_failures_ = 0;

  double window_loss_ = 0;
  double window_correct_ = 0;
  double window_samples_ = 0;
  std::uint64_t window_steps_ = 0;
  Clock::time_point start_ = Clock::now();
  double elapsed_before_ = 0;
};

}  // namespace

std::string RankCheckpointDir(const std::string& checkpoint_dir, const std::string& run_id,
                              std::uint32_t rank) {
  return (fs::path(checkpoint_dir) / run_id / fmt::format("rank-{}", rank)).string();
}

bool HasCheckpoint(const std::string& checkpoint_dir, const std::string& run_id,
                   std::uint32_t rank) {
  if (checkpoint_dir.empty()) return false;
  std::error_code ec;
  return fs::exists(fs::path(RankCheckpointDir(checkpoint_dir, run_id, rank)) / "LATEST", ec);
}

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
