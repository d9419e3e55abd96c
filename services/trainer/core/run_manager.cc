#include "services/trainer/core/run_manager.h"

#include <fmt/format.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>

#include "common/logging/logging.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/run_recorder.h"
#include "services/trainer/core/trainer.h"

namespace greenloop::trainer {
namespace {

using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;

constexpr std::uint32_t kDefaultPageSize = 50;
constexpr std::uint32_t kMaxPageSize = 500;

std::string ListFilterKey(const v1::ListRunsRequest& request) {
  std::string key = request.experiment_id();
  for (int s : request.states()) key += fmt::format(",{}", s);
  return fmt::format("{:x}", std::hash<std::string>{}(key)&0xffffffffULL);
}

// Connects the clients of the feedback service at the run's endpoint: one, or two in
// MODE_HITL_COMBINED, one per campaign stream. The error names the service.
absl::StatusOr<std::vector<std::unique_ptr<FeedbackQueue>>> ConnectFeedback(
    const RunDependencies& deps, const v1::RunConfig& config) {
  const std::size_t count = config.mode() == v1::MODE_HITL_COMBINED ? 2 : 1;
  std::vector<std::unique_ptr<FeedbackQueue>> clients;
  for (std::size_t i = 0; i < count; ++i) {
    absl::StatusOr<std::unique_ptr<FeedbackQueue>> f = deps.feedback(config.feedback().endpoint());
    if (!f.ok()) {
      return absl::Status(f.status().code(),
                          fmt::format("feedback service at {}: {}", config.feedback().endpoint(),
                                      std::string(f.status().message())));
    }
    clients.push_back(*std::move(f));
  }
  return clients;
}

}  // namespace

bool IsTerminal(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_STOPPED;
}

// --- ProgressSubscription --------------------------------------------------------------------

ProgressSubscription::ProgressSubscription(std::chrono::milliseconds min_step_interval,
                                           std::size_t max_queued)
    : min_step_interval_(min_step_interval), max_queued_(max_queued) {}

std::optional<v1::StreamProgressResponse> ProgressSubscription::Next(
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || finished_; });
  if (queue_.empty()) return std::nullopt;
  v1::StreamProgressResponse event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

bool ProgressSubscription::done() const {
  std::lock_guard lock(mu_);
  return finished_ && queue_.empty();
}

bool ProgressSubscription::shut_down() const {
  std::lock_guard lock(mu_);
  return shutdown_;
}

void ProgressSubscription::Push(v1::StreamProgressResponse event) {
  std::lock_guard lock(mu_);
  if (finished_) return;
  if (event.kind() == v1::PROGRESS_EVENT_KIND_STEP) {
    const auto now = std::chrono::steady_clock::now();
    // Thinned to one per min interval; dropped when the client reads too slowly.
    if (now - last_step_ < min_step_interval_ || queue_.size() >= max_queued_) return;
    last_step_ = now;
  }
  queue_.push_back(std::move(event));
  cv_.notify_all();
}

void ProgressSubscription::Finish(bool shutdown) {
  std::lock_guard lock(mu_);
  finished_ = true;
  shutdown_ = shutdown_ || shutdown;
  cv_.notify_all();
}

// --- RunManager internals --------------------------------------------------------------------

struct RunManager::Record {
  v1::Run run;  // guarded by RunManager::mu_
  std::atomic<bool> stop{false};
  std::thread thread;                                            // guarded by mu_
  std::uint64_t sequence = 0;                                    // guarded by mu_
  std::vector<std::weak_ptr<ProgressSubscription>> subscribers;  // guarded by mu_
};

struct RunManager::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : steps(prometheus::BuildCounter()
                  .Name("greenloop_trainer_steps_total")
                  .Help("Optimizer steps taken by this worker")
                  .Register(r)
                  .Add({})),
        samples(prometheus::BuildCounter()
                    .Name("greenloop_trainer_samples_total")
                    .Help("Training samples processed by all ranks of this worker's runs")
                    .Register(r)
                    .Add({})),
        step_rate(prometheus::BuildGauge()
                      .Name("greenloop_trainer_steps_per_second")
                      .Help("Steps per second of the active run since it started training")
                      .Register(r)
                      .Add({})),
        train_loss(prometheus::BuildGauge()
                       .Name("greenloop_trainer_train_loss")
                       .Help("Mean training loss since the previous step event")
                       .Register(r)
                       .Add({})),
        eval_accuracy(prometheus::BuildGauge()
                          .Name("greenloop_trainer_eval_accuracy")
                          .Help("Test accuracy at the latest evaluation, in [0, 1]")
                          .Register(r)
                          .Add({})),
        energy(prometheus::BuildGauge()
                   .Name("greenloop_trainer_run_energy_joules")
                   .Help("Active energy of the active run so far, whole run, in joules")
                   .Register(r)
                   .Add({})),
        changes(prometheus::BuildCounter()
                    .Name("greenloop_trainer_samples_changed_total")
                    .Help("Training samples changed by verdicts, by action")
                    .Register(r)),
        dropped(changes.Add({{"action", "drop"}})),
        relabelled(changes.Add({{"action", "relabel"}})),
        reweighted(changes.Add({{"action", "reweight"}})),
        verdicts(prometheus::BuildCounter()
                     .Name("greenloop_trainer_verdicts_total")
                     .Help("Verdicts received, and applied to the training set")
                     .Register(r)),
        verdicts_received(verdicts.Add({{"outcome", "received"}})),
        verdicts_applied(verdicts.Add({{"outcome", "applied"}})),
        enqueued(prometheus::BuildCounter()
                     .Name("greenloop_trainer_items_enqueued_total")
                     .Help("Samples enqueued for human raters")
                     .Register(r)
                     .Add({})),
        queue_lag(prometheus::BuildGauge()
                      .Name("greenloop_trainer_verdict_queue_lag_seconds")
                      .Help("Mean seconds from a verdict's decision to its application, latest "
                            "batch of human verdicts")
                      .Register(r)
                      .Add({})),
        runs(prometheus::BuildCounter()
                 .Name("greenloop_trainer_runs_total")
                 .Help("Runs ended on this worker, by final state")
                 .Register(r)),
        active(prometheus::BuildGauge()
                   .Name("greenloop_trainer_run_active")
                   .Help("1 while this worker trains a run")
                   .Register(r)
                   .Add({})),
        projected(prometheus::BuildGauge()
                      .Name("greenloop_trainer_projected_energy_joules")
                      .Help("Early projection of the active run's total energy (joules per step "
                            "× planned steps); 0 before the warm-up ends")
                      .Register(r)
                      .Add({})),
        budget(prometheus::BuildGauge()
                   .Name("greenloop_trainer_energy_budget_joules")
                   .Help("Energy budget of the active run (Budget.max_energy_joules); 0 when none")
                   .Register(r)
                   .Add({})) {}

  // Adds what `now` counts beyond `before`.
  void Advance(const v1::Progress& before, const v1::Progress& now) {
    auto delta = [](std::uint64_t b, std::uint64_t n) {
      return n > b ? static_cast<double>(n - b) : 0.0;
    };
    steps.Increment(delta(before.step(), now.step()));
    samples.Increment(delta(before.samples_processed(), now.samples_processed()));
    dropped.Increment(delta(before.samples_dropped(), now.samples_dropped()));
    relabelled.Increment(delta(before.samples_relabelled(), now.samples_relabelled()));
    reweighted.Increment(delta(before.samples_reweighted(), now.samples_reweighted()));
    verdicts_received.Increment(delta(before.verdicts_received(), now.verdicts_received()));
    verdicts_applied.Increment(delta(before.verdicts_applied(), now.verdicts_applied()));
    enqueued.Increment(delta(before.items_enqueued(), now.items_enqueued()));
    train_loss.Set(now.train_loss());
    if (now.has_eval_accuracy()) eval_accuracy.Set(now.eval_accuracy());
    energy.Set(now.energy_joules());
    if (now.has_projected_total_energy_joules()) projected.Set(now.projected_total_energy_joules());
    if (now.elapsed_seconds() > 0) {
      step_rate.Set(static_cast<double>(now.step()) / now.elapsed_seconds());
    }
  }

  prometheus::Counter& steps;
  prometheus::Counter& samples;
  prometheus::Gauge& step_rate;
  prometheus::Gauge& train_loss;
  prometheus::Gauge& eval_accuracy;
  prometheus::Gauge& energy;
  prometheus::Family<prometheus::Counter>& changes;
  prometheus::Counter& dropped;
  prometheus::Counter& relabelled;
  prometheus::Counter& reweighted;
  prometheus::Family<prometheus::Counter>& verdicts;
  prometheus::Counter& verdicts_received;
  prometheus::Counter& verdicts_applied;
  prometheus::Counter& enqueued;
  prometheus::Gauge& queue_lag;
  prometheus::Family<prometheus::Counter>& runs;
  prometheus::Gauge& active;
  prometheus::Gauge& projected;
  prometheus::Gauge& budget;
};

// Turns the loop's reports into the run record, events, stored curves and metrics.
class RunManager::Listener final : public TrainingListener {
 public:
  Listener(RunManager& manager, std::shared_ptr<Record> record)
      : manager_(manager),
        record_(std::move(record)),
        recorder_(manager_.store_, record_->run.run_id(), record_->run.rank()) {}

  void OnEvent(v1::ProgressEventKind kind, const v1::Progress& progress,
               const std::string& message) override {
    v1::Progress before;
    {
      std::lock_guard lock(manager_.mu_);
      before = record_->run.progress();
      *record_->run.mutable_progress() = progress;
      if (progress.has_eval_accuracy() &&
          (!record_->run.has_best_eval_accuracy() ||
           progress.eval_accuracy() > record_->run.best_eval_accuracy())) {
        record_->run.set_best_eval_accuracy(progress.eval_accuracy());
      }
      const double target = record_->run.config().target_accuracy();
      if (kind == v1::PROGRESS_EVENT_KIND_EVALUATION && target > 0 &&
          progress.eval_accuracy() >= target && !record_->run.has_energy_to_target_joules()) {
        record_->run.set_energy_to_target_joules(progress.energy_joules());
        record_->run.set_steps_to_target(progress.step());
      }
      if (kind == v1::PROGRESS_EVENT_KIND_CHECKPOINT) {
        record_->run.set_checkpoint_path(message.starts_with("checkpoint ") ? message.substr(11)
                                                                            : message);
      }
    }
    if (manager_.metrics_) manager_.metrics_->Advance(before, progress);
    manager_.Publish(*record_, kind, message);
    if (kind == v1::PROGRESS_EVENT_KIND_EVALUATION || kind == v1::PROGRESS_EVENT_KIND_CHECKPOINT) {
      v1::Run copy;
      {
        std::lock_guard lock(manager_.mu_);
        copy = record_->run;
      }
      manager_.Persist(copy);
    }
  }

  void OnModel(const v1::ModelInfo& info) override {
    std::lock_guard lock(manager_.mu_);
    *record_->run.mutable_model() = info;
  }

  // The curve and the change log are written off the training thread (RunRecorder); the
  // listener's end (with the run's) waits for them, so a run reported ended has them stored.
  void OnEvaluation(const EvaluationPoint& point) override { recorder_.AddEvaluation(point); }

  void OnChanges(const std::vector<SampleChange>& changes) override {
    // Every rank applies the same changes; rank 0 records them.
    if (record_->run.rank() == 0) recorder_.AddChanges(changes);
  }

  void OnQueueLag(double seconds) override {
    if (manager_.metrics_) manager_.metrics_->queue_lag.Set(seconds);
  }

 private:
  RunManager& manager_;
  std::shared_ptr<Record> record_;
  RunRecorder recorder_;
};

// --- RunManager ------------------------------------------------------------------------------

RunManager::RunManager(WorkerSettings settings, DatasetCache* datasets,
                       RunDependencies dependencies, RunStore* store,
                       std::shared_ptr<prometheus::Registry> registry)
    : settings_(std::move(settings)),
      datasets_(datasets),
      deps_(std::move(dependencies)),
      store_(store),
      metrics_(registry ? std::make_unique<Metrics>(*registry) : nullptr) {}

RunManager::~RunManager() { Shutdown(); }

absl::Status RunManager::LoadStoredRuns() {
  if (store_ == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<v1::Run>> runs = store_->LoadRuns(settings_.node);
  if (!runs.ok()) return runs.status();
  std::vector<v1::Run> orphans;
  {
    std::lock_guard lock(mu_);
    for (v1::Run& run : *runs) {
      if (runs_.contains(run.run_id())) continue;
      if (!IsTerminal(run.state())) {
        run.set_state(v1::RUN_STATE_FAILED);
        run.set_finish_reason(v1::FINISH_REASON_ERROR);
        run.set_error_message(
            "the worker stopped while the run was active (crash or kill); resume it with "
            "StartRun and resume set");
        run.mutable_progress()->set_state(v1::RUN_STATE_FAILED);
        *run.mutable_end_time() = TimeUtil::GetCurrentTime();
        orphans.push_back(run);
      }
      auto record = std::make_shared<Record>();
      record->run = std::move(run);
      runs_.emplace(record->run.run_id(), record);
    }
  }
  for (const v1::Run& run : orphans) Persist(run);
  return absl::OkStatus();
}

absl::StatusOr<v1::Run> RunManager::StartRun(const v1::StartRunRequest& raw) {
  absl::StatusOr<v1::StartRunRequest> valid = ValidateStartRun(raw);
  if (!valid.ok()) return valid.status();
  const v1::StartRunRequest& request = *valid;
  // What the run will use: the checkpoint folder under this worker's root, endpoints it allows.
  absl::StatusOr<v1::RunConfig> resolved = ApplyWorkerPolicy(request.config(), settings_.policy);
  if (!resolved.ok()) return resolved.status();
  v1::StartRunRequest effective = request;
  *effective.mutable_config() = *std::move(resolved);
  std::shared_ptr<Record> record;
  std::shared_ptr<Record> previous;
  std::thread previous_thread;  // the ended run's, joined outside the lock
  {
    std::lock_guard lock(mu_);
    if (shutting_down_) return absl::UnavailableError("the worker is shutting down");
    auto it = runs_.find(request.run_id());
    if (it != runs_.end()) {
      const v1::Run& known = it->second->run;
      const bool same = known.rank() == request.rank() &&
                        known.world_size() == request.world_size() &&
                        MessageDifferencer::Equals(known.config(), request.config());
      if (!same) {
        return absl::AlreadyExistsError(
            fmt::format("run {} is known with a different config or rank; pick another run_id",
                        request.run_id()));
      }
      if (!IsTerminal(known.state())) return known;  // a retry: the run as it is
      if (!request.resume()) {
        return absl::AlreadyExistsError(
            fmt::format("run {} already ended ({}); set resume to continue it from its checkpoint",
                        request.run_id(), v1::RunState_Name(known.state())));
      }
      if (known.state() == v1::RUN_STATE_SUCCEEDED) {
        return absl::FailedPreconditionError(
            fmt::format("run {} already succeeded; there is nothing to resume", request.run_id()));
      }
      previous = it->second;
    }
    if (!active_.empty()) {
      return absl::FailedPreconditionError(
          fmt::format("this worker is busy with run {}; stop it or use another worker", active_));
    }
    if (!request.resume() &&
        HasCheckpoint(effective.config().checkpoint_dir(), request.run_id(), request.rank())) {
      return absl::FailedPreconditionError(fmt::format(
          "{} already holds a checkpoint of run {}; set resume to continue it, or remove it",
          RankCheckpointDir(effective.config().checkpoint_dir(), request.run_id(), request.rank()),
          request.run_id()));
    }
    record = std::make_shared<Record>();
    v1::Run& run = record->run;
    if (previous) {
      run = previous->run;  // counters and results carry over; the checkpoint has the rest
      previous_thread = std::move(previous->thread);
      run.clear_end_time();
      run.clear_error_message();
      run.set_finish_reason(v1::FINISH_REASON_UNSPECIFIED);
      record->sequence = previous->sequence;
    } else {
      run.set_run_id(request.run_id());
      run.set_rank(request.rank());
      run.set_world_size(request.world_size());
      run.set_node(settings_.node);
      *run.mutable_config() = request.config();
      *run.mutable_create_time() = TimeUtil::GetCurrentTime();
    }
    run.set_state(v1::RUN_STATE_PENDING);
    run.mutable_progress()->set_state(v1::RUN_STATE_PENDING);
    runs_[request.run_id()] = record;
    active_ = request.run_id();
  }
  if (previous_thread.joinable()) previous_thread.join();
  v1::Run accepted;
  {
    std::lock_guard lock(mu_);
    accepted = record->run;
  }
  Persist(accepted);
  if (metrics_) {
    metrics_->active.Set(1);
    metrics_->projected.Set(0);
    metrics_->budget.Set(accepted.config().budget().max_energy_joules());
  }
  logging::Info("run accepted", {{"run", request.run_id()},
                                 {"rank", request.rank()},
                                 {"world_size", request.world_size()},
                                 {"mode", v1::Mode_Name(request.config().mode())},
                                 {"resume", request.resume()}});
  {
    // Under the lock: Shutdown() takes the threads out under it, and one that began since the
    // run was accepted would never join a thread started now.
    std::lock_guard lock(mu_);
    if (shutting_down_) {
      record->run.set_state(v1::RUN_STATE_STOPPED);
      record->run.set_finish_reason(v1::FINISH_REASON_STOPPED);
      record->run.set_error_message("the worker is shutting down");
      if (active_ == request.run_id()) active_.clear();
      return absl::UnavailableError("the worker is shutting down");
    }
    record->thread = std::thread(&RunManager::RunThread, this, record, effective);
  }
  return accepted;
}

void RunManager::RunThread(std::shared_ptr<Record> record, v1::StartRunRequest request) {
  const std::string& run_id = request.run_id();
  TrainingOutcome outcome;
  auto fail = [&](const absl::Status& status) {
    outcome.state = v1::RUN_STATE_FAILED;
    outcome.finish_reason = v1::FINISH_REASON_ERROR;
    outcome.error_message = std::string(status.message());
  };
  std::unique_ptr<EnergyMeter> energy;
  std::vector<std::unique_ptr<FeedbackQueue>> feedback;  // [1]: MODE_HITL_COMBINED's feature stream
  std::unique_ptr<Collective> collective;
  std::shared_ptr<const LoadedDataset> dataset;
  absl::Status status = absl::OkStatus();
  {
    absl::StatusOr<std::shared_ptr<const LoadedDataset>> ds =
        LoadDataset(*datasets_, request.config().dataset(), request.config().max_train_samples(),
                    request.config().label_noise(), request.config().validation_samples(),
                    // The clean reference trains on the images as shipped, and is scored on the
                    // same validation and test images as the other modes.
                    request.config().decoy(), request.config().mode() != v1::MODE_CLEAN);
    if (ds.ok()) {
      dataset = *ds;
    } else {
      status = ds.status();
    }
  }
  if (status.ok()) {
    absl::StatusOr<std::unique_ptr<EnergyMeter>> e =
        deps_.energy(request.config().energy_endpoint());
    if (e.ok()) {
      energy = *std::move(e);
    } else {
      status = absl::Status(e.status().code(), fmt::format("energy collector at {}: {}",
                                                           request.config().energy_endpoint(),
                                                           std::string(e.status().message())));
    }
  }
  if (status.ok() && request.rank() == 0 && UsesHumans(request.config().mode())) {
    absl::StatusOr<std::vector<std::unique_ptr<FeedbackQueue>>> f =
        ConnectFeedback(deps_, request.config());
    if (f.ok()) {
      feedback = *std::move(f);
    } else {
      status = f.status();
    }
  }
  if (status.ok() && request.world_size() > 1) {
    absl::StatusOr<std::unique_ptr<Collective>> c = deps_.collective(request);
    if (c.ok()) {
      collective = *std::move(c);
    } else {
      status = c.status();
    }
  }
  if (!status.ok()) {
    fail(status);
  } else if (record->stop.load()) {
    outcome.state = v1::RUN_STATE_STOPPED;
    outcome.finish_reason = v1::FINISH_REASON_STOPPED;
  } else {
    {
      std::lock_guard lock(mu_);
      record->run.set_state(v1::RUN_STATE_RUNNING);
      record->run.mutable_progress()->set_state(v1::RUN_STATE_RUNNING);
      *record->run.mutable_start_time() = TimeUtil::GetCurrentTime();
    }
    Listener listener(*this, record);
    TrainingPorts ports;
    ports.energy = energy.get();
    ports.feedback = feedback.empty() ? nullptr : feedback[0].get();
    ports.feature_feedback = feedback.size() > 1 ? feedback[1].get() : nullptr;
    ports.collective = collective.get();
    ports.listener = &listener;
    ports.stop_requested = [&record] { return record->stop.load(); };
    RankOptions options;
    options.run_id = run_id;
    options.rank = request.rank();
    options.world_size = request.world_size();
    options.node = settings_.node;
    options.pid = settings_.pid;
    options.resume = request.resume();
    options.threads = settings_.threads;
    outcome = Train(request.config(), *dataset, options, ports);
  }
  collective.reset();  // leave the process group before reporting the end
  v1::Run final_run;
  {
    std::lock_guard lock(mu_);
    v1::Run& run = record->run;
    run.set_state(outcome.state);
    run.set_finish_reason(outcome.finish_reason);
    if (outcome.state == v1::RUN_STATE_STOPPED && outcome.error_message == "stopped") {
      // The stop reason, when StopRun gave one, was set by StopRun.
    } else {
      run.set_error_message(outcome.error_message);
    }
    if (outcome.progress.step() > 0 || run.progress().step() == 0) {
      *run.mutable_progress() = outcome.progress;
    }
    run.mutable_progress()->set_state(outcome.state);
    if (outcome.model.parameter_count() > 0) *run.mutable_model() = outcome.model;
    if (outcome.best_eval_accuracy) run.set_best_eval_accuracy(*outcome.best_eval_accuracy);
    if (outcome.energy_to_target_joules) {
      run.set_energy_to_target_joules(*outcome.energy_to_target_joules);
    }
    if (outcome.steps_to_target) run.set_steps_to_target(*outcome.steps_to_target);
    if (outcome.test_accuracy) run.set_test_accuracy(*outcome.test_accuracy);
    if (outcome.best_test_accuracy) run.set_best_test_accuracy(*outcome.best_test_accuracy);
    if (outcome.decoy_saliency) run.set_decoy_saliency(*outcome.decoy_saliency);
    if (outcome.explanation) *run.mutable_explanation() = *outcome.explanation;
    *run.mutable_inference() = {outcome.inference.begin(), outcome.inference.end()};
    if (outcome.best_smoothed_eval_accuracy) {
      run.set_best_smoothed_eval_accuracy(*outcome.best_smoothed_eval_accuracy);
    }
    if (outcome.projection_relative_error) {
      run.set_projection_relative_error(*outcome.projection_relative_error);
    }
    if (!outcome.checkpoint_path.empty()) run.set_checkpoint_path(outcome.checkpoint_path);
    *run.mutable_end_time() = TimeUtil::GetCurrentTime();
    final_run = run;
  }
  Persist(final_run);
  if (metrics_) {
    metrics_->runs.Add({{"state", v1::RunState_Name(outcome.state)}}).Increment();
    metrics_->active.Set(0);
  }
  const logging::Level level =
      outcome.state == v1::RUN_STATE_FAILED ? logging::Level::kWarn : logging::Level::kInfo;
  logging::Log(level, "run ended",
               {{"run", run_id},
                {"rank", request.rank()},
                {"state", v1::RunState_Name(outcome.state)},
                {"reason", v1::FinishReason_Name(outcome.finish_reason)},
                {"step", final_run.progress().step()},
                {"eval_accuracy", final_run.progress().eval_accuracy()},
                {"energy_joules", final_run.progress().energy_joules()},
                {"error", final_run.error_message()}});
  Publish(*record, v1::PROGRESS_EVENT_KIND_STATE_CHANGE,
          outcome.state == v1::RUN_STATE_FAILED ? final_run.error_message()
                                                : v1::FinishReason_Name(outcome.finish_reason));
  std::vector<std::shared_ptr<ProgressSubscription>> subscribers;
  {
    std::lock_guard lock(mu_);
    for (auto& weak : record->subscribers) {
      if (auto s = weak.lock()) subscribers.push_back(std::move(s));
    }
    record->subscribers.clear();
    if (active_ == run_id) active_.clear();
  }
  for (auto& s : subscribers) s->Finish(false);
  ended_.notify_all();
}

void RunManager::Publish(Record& record, v1::ProgressEventKind kind, const std::string& message) {
  std::vector<std::shared_ptr<ProgressSubscription>> subscribers;
  v1::StreamProgressResponse event;
  {
    std::lock_guard lock(mu_);
    event.set_run_id(record.run.run_id());
    event.set_sequence(++record.sequence);
    event.set_kind(kind);
    *event.mutable_progress() = record.run.progress();
    event.set_message(message);
    auto& subs = record.subscribers;
    subs.erase(std::remove_if(subs.begin(), subs.end(), [](auto& w) { return w.expired(); }),
               subs.end());
    for (auto& weak : subs) {
      if (auto s = weak.lock()) subscribers.push_back(std::move(s));
    }
  }
  for (auto& s : subscribers) s->Push(event);
}

void RunManager::Persist(const v1::Run& run) {
  if (store_ == nullptr) return;
  if (absl::Status s = store_->SaveRun(run); !s.ok()) {
    logging::Warn("cannot store the run", {{"run", run.run_id()}, {"error", s.ToString()}});
  }
}

absl::StatusOr<v1::Run> RunManager::StopRun(const std::string& run_id, const std::string& reason) {
  if (absl::Status s = ValidateIdentifier("run_id", run_id); !s.ok()) return s;
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError(fmt::format("this worker does not know run {}", run_id));
  }
  Record& record = *it->second;
  if (!IsTerminal(record.run.state()) && !record.stop.exchange(true)) {
    record.run.set_error_message(reason.empty() ? "stopped" : reason);
    logging::Info("stop requested", {{"run", run_id}, {"reason", reason}});
  }
  return record.run;
}

absl::StatusOr<v1::Run> RunManager::GetRun(const std::string& run_id) const {
  if (absl::Status s = ValidateIdentifier("run_id", run_id); !s.ok()) return s;
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError(fmt::format("this worker does not know run {}", run_id));
  }
  return it->second->run;
}

absl::StatusOr<v1::ListRunsResponse> RunManager::ListRuns(
    const v1::ListRunsRequest& request) const {
  for (int s : request.states()) {
    if (s == v1::RUN_STATE_UNSPECIFIED || !v1::RunState_IsValid(s)) {
      return absl::InvalidArgumentError("states: RUN_STATE_UNSPECIFIED is not a filter");
    }
  }
  const std::string filter = ListFilterKey(request);
  std::size_t offset = 0;
  if (!request.page().page_token().empty()) {
    const std::string& token = request.page().page_token();
    const std::size_t colon = token.find(':');
    if (colon == std::string::npos || token.substr(colon + 1) != filter) {
      return absl::InvalidArgumentError(
          "page_token does not belong to this request (filters changed?); start without one");
    }
    try {
      offset = std::stoul(token.substr(0, colon));
    } catch (const std::exception&) {
      return absl::InvalidArgumentError("page_token is malformed; start without one");
    }
  }
  std::uint32_t size = request.page().page_size();
  if (size == 0) size = kDefaultPageSize;
  size = std::min(size, kMaxPageSize);
  std::vector<v1::Run> matching;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, record] : runs_) {
      const v1::Run& run = record->run;
      if (!request.experiment_id().empty() &&
          run.config().experiment_id() != request.experiment_id()) {
        continue;
      }
      if (!request.states().empty() && std::find(request.states().begin(), request.states().end(),
                                                 run.state()) == request.states().end()) {
        continue;
      }
      matching.push_back(run);
    }
  }
  std::sort(matching.begin(), matching.end(), [](const v1::Run& a, const v1::Run& b) {
    const auto ta = TimeUtil::TimestampToNanoseconds(a.create_time());
    const auto tb = TimeUtil::TimestampToNanoseconds(b.create_time());
    return ta != tb ? ta > tb : a.run_id() < b.run_id();
  });
  v1::ListRunsResponse response;
  for (std::size_t i = offset; i < matching.size() && i < offset + size; ++i) {
    *response.add_runs() = matching[i];
  }
  if (offset + size < matching.size()) {
    response.set_next_page_token(fmt::format("{}:{}", offset + size, filter));
  }
  return response;
}

absl::StatusOr<std::shared_ptr<ProgressSubscription>> RunManager::Subscribe(
    const std::string& run_id, std::uint32_t min_interval_ms) {
  if (absl::Status s = ValidateIdentifier("run_id", run_id); !s.ok()) return s;
  auto subscription = std::make_shared<ProgressSubscription>(
      std::chrono::milliseconds(min_interval_ms == 0 ? 1000 : min_interval_ms),
      settings_.max_queued_events);
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError(fmt::format("this worker does not know run {}", run_id));
  }
  Record& record = *it->second;
  v1::StreamProgressResponse snapshot;
  snapshot.set_run_id(run_id);
  snapshot.set_sequence(record.sequence);
  snapshot.set_kind(v1::PROGRESS_EVENT_KIND_SNAPSHOT);
  *snapshot.mutable_progress() = record.run.progress();
  snapshot.mutable_progress()->set_state(record.run.state());
  snapshot.set_message(record.run.error_message());
  subscription->Push(std::move(snapshot));
  if (IsTerminal(record.run.state())) {
    subscription->Finish(false);
  } else if (shutting_down_) {
    subscription->Finish(true);
  } else {
    record.subscribers.push_back(subscription);
  }
  return subscription;
}

absl::StatusOr<v1::Run> RunManager::WaitForEnd(const std::string& run_id,
                                               std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    return absl::NotFoundError(fmt::format("this worker does not know run {}", run_id));
  }
  std::shared_ptr<Record> record = it->second;
  if (!ended_.wait_for(lock, timeout,
                       [&] { return IsTerminal(record->run.state()) && active_ != run_id; })) {
    return absl::DeadlineExceededError(fmt::format("run {} did not end in time", run_id));
  }
  return record->run;
}

void RunManager::Shutdown() {
  std::vector<std::shared_ptr<Record>> records;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
    for (auto& [id, record] : runs_) {
      record->stop.store(true);
      records.push_back(record);
      threads.push_back(std::move(record->thread));
    }
  }
  for (std::thread& t : threads) {
    if (t.joinable()) t.join();
  }
  std::lock_guard lock(mu_);
  for (auto& record : records) {
    for (auto& weak : record->subscribers) {
      if (auto s = weak.lock()) s->Finish(true);
    }
    record->subscribers.clear();
  }
}

}  // namespace greenloop::trainer
