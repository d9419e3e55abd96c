// The training loop on real data (small subsets of Fashion-MNIST and SpamAssassin) with in-memory
// fakes of the energy collector and the feedback queue.
#include "services/trainer/core/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "services/trainer/core/inference_bench.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

using testing::FakeEnergyMeter;
using testing::FakeFeedbackQueue;
using testing::RecordingListener;

DatasetCache& Cache() {
  static auto* cache = [] {
    DatasetLocations where;
    if (const char* dir = std::getenv("GREENLOOP_TEST_SPAM_ASSASSIN_DIR")) {
      where.spam_assassin_dir = dir;
    }
    return new DatasetCache(where);
  }();
  return *cache;
}

v1::RunConfig Config(v1::Mode mode) {
  v1::RunConfig c;
  c.set_dataset(v1::DATASET_FASHION_MNIST);
  c.set_mode(mode);
  c.set_seed(11);
  c.set_batch_size(64);
  c.mutable_budget()->set_max_epochs(2);
  if (mode != v1::MODE_BASELINE) {
    c.set_select_every_steps(4);
    c.set_candidates_per_selection(32);
  }
  if (UsesHumans(mode)) {
    c.mutable_feedback()->set_endpoint("fake:7102");
    c.mutable_feedback()->set_campaign_id("campaign-1");
  }
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(c);
  EXPECT_TRUE(valid.ok()) << valid.status();
  return *valid;
}

std::shared_ptr<const LoadedDataset> Load(const v1::RunConfig& c, std::uint64_t n) {
  v1::RunConfig copy = c;
  absl::StatusOr<std::shared_ptr<const LoadedDataset>> ds =
      LoadDataset(Cache(), copy.dataset(), n, copy.label_noise());
  EXPECT_TRUE(ds.ok()) << ds.status();
  return *ds;
}

std::shared_ptr<const LoadedDataset> LoadWithValidation(const v1::RunConfig& c, std::uint64_t n) {
  absl::StatusOr<std::shared_ptr<const LoadedDataset>> ds =
      LoadDataset(Cache(), c.dataset(), n, c.label_noise(), c.validation_samples());
  EXPECT_TRUE(ds.ok()) << ds.status();
  return *ds;
}

struct Ran {
  TrainingOutcome outcome;
  RecordingListener listener;
};

std::unique_ptr<Ran> RunOnce(const v1::RunConfig& config, const LoadedDataset& ds,
                             FakeFeedbackQueue* feedback = nullptr, bool resume = false,
                             std::function<bool()> stop = nullptr,
                             FakeEnergyMeter* energy = nullptr) {
  auto ran = std::make_unique<Ran>();
  FakeEnergyMeter own_energy;
  TrainingPorts ports;
  ports.energy = energy != nullptr ? energy : &own_energy;
  ports.feedback = feedback;
  ports.listener = &ran->listener;
  ports.stop_requested = std::move(stop);
  RankOptions options;
  options.run_id = "run-test";
  options.node = "node-a";
  options.pid = getpid();
  options.resume = resume;
  options.threads = 2;
  ran->outcome = Train(config, ds, options, ports);
  return ran;
}

double FinalAccuracy(const TrainingOutcome& o) { return o.progress.eval_accuracy(); }

// A model of the zoo trains through the whole loop, reports its layers, and its checkpoint is
// not resumed by a run that asks for another architecture.
TEST(Train, AZooModelTrainsAndItsCheckpointKeepsItsArchitecture) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  config.set_model_kind(v1::MODEL_KIND_MOBILENET);
  config.mutable_model_shape()->set_width(8);
  config.mutable_model_shape()->set_depth(1);
  config.mutable_budget()->set_max_epochs(0);
  config.mutable_budget()->set_max_steps(60);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-zoo-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  config.set_checkpoint_dir(dir.string());
  auto ds = Load(config, 1000);
  int steps = 0;
  auto first = RunOnce(config, *ds, nullptr, false, [&] { return ++steps > 30; });
  ASSERT_EQ(first->outcome.state, v1::RUN_STATE_STOPPED) << first->outcome.error_message;
  EXPECT_EQ(first->outcome.model.architecture(), "MODEL_KIND_MOBILENET width=8 depth=1");
  EXPECT_EQ(first->outcome.model.layers(0).name(), "stem");
  EXPECT_GT(first->outcome.model.backward_macs_per_sample(),
            first->outcome.model.macs_per_sample());
  v1::RunConfig other = config;
  other.set_model_kind(v1::MODEL_KIND_RESNET);
  other.clear_model_shape();
  auto refused = RunOnce(other, *ds, nullptr, /*resume=*/true);
  EXPECT_EQ(refused->outcome.state, v1::RUN_STATE_FAILED);
  EXPECT_THAT(refused->outcome.error_message,
              ::testing::HasSubstr("is of a MODEL_KIND_MOBILENET width=8 depth=1; this run's "
                                   "config asks for a MODEL_KIND_RESNET width=16 depth=1"));
  auto resumed = RunOnce(config, *ds, nullptr, /*resume=*/true);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(resumed->outcome.state, v1::RUN_STATE_SUCCEEDED) << resumed->outcome.error_message;
  EXPECT_EQ(resumed->outcome.progress.step(), 60u);
  EXPECT_GT(FinalAccuracy(resumed->outcome), 0.2);  // chance is 0.10
}

// After the run, the final model's forward passes are timed and metered per batch size, each
// batch size as a collector run of its own; a run on one thread sets LibTorch to one thread.
TEST(Train, TheInferenceBenchmarkMetersEachBatchSizeAsARunOfItsOwn) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  config.mutable_budget()->set_max_epochs(0);
  config.mutable_budget()->set_max_steps(20);
  config.set_threads(1);
  config.mutable_inference()->add_batch_sizes(1);
  config.mutable_inference()->add_batch_sizes(64);
  config.mutable_inference()->set_seconds_per_batch(0.3);
  auto ds = Load(config, 1000);
  FakeEnergyMeter energy;
  auto ran = RunOnce(config, *ds, nullptr, false, nullptr, &energy);
  ASSERT_EQ(ran->outcome.state, v1::RUN_STATE_SUCCEEDED) << ran->outcome.error_message;
  EXPECT_EQ(torch::get_num_threads(), 1);
  ASSERT_EQ(ran->outcome.inference.size(), 2u);
  EXPECT_EQ(energy.registers(), 3);  // the training run, then one per batch size
  EXPECT_EQ(energy.unregisters(), 3);
  for (const v1::InferenceFigures& f : ran->outcome.inference) {
    EXPECT_EQ(f.error(), "");
    EXPECT_GE(f.samples(), f.batch_size());
    EXPECT_EQ(f.samples() % f.batch_size(), 0u);
    EXPECT_GE(f.seconds(), 0.3);
    EXPECT_GT(f.energy_joules(), 0);
    EXPECT_DOUBLE_EQ(f.joules_per_sample(), f.energy_joules() / static_cast<double>(f.samples()));
    EXPECT_DOUBLE_EQ(f.macs(), static_cast<double>(f.samples()) * 333056);
  }
  const v1::InferenceFigures& one = ran->outcome.inference[0];
  const v1::InferenceFigures& batch = ran->outcome.inference[1];
  EXPECT_EQ(batch.energy_run_id(), "run-test-i64");
  EXPECT_GT(batch.latency_ms(), one.latency_ms());
  std::printf(
      "inference: batch 1 %.3f ms %.0f samples/s %.3g J/sample; batch 64 %.3f ms %.0f "
      "samples/s %.3g J/sample (fake meter)\n",
      one.latency_ms(), one.samples_per_second(), one.joules_per_sample(), batch.latency_ms(),
      batch.samples_per_second(), batch.joules_per_sample());
  EXPECT_EQ(InferenceRunId(std::string(63, 'r'), 256), std::string(58, 'r') + "-i256");
}

TEST(Train, BaselineLearnsFashionMnistAndReportsItsSizeAndEnergy) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  auto ds = Load(config, 2000);
  FakeEnergyMeter energy;
  auto ran = RunOnce(config, *ds, nullptr, false, nullptr, &energy);
  const TrainingOutcome& o = ran->outcome;
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  EXPECT_EQ(o.finish_reason, v1::FINISH_REASON_EPOCH_BUDGET);
  EXPECT_GT(FinalAccuracy(o), 0.65);  // chance is 0.10
  EXPECT_EQ(o.progress.step(), 2u * (2000 / 64));
  EXPECT_EQ(o.progress.samples_processed(), o.progress.step() * 64);
  EXPECT_EQ(o.model.parameter_count(), 8u * 9 + 8 + 16 * 8 * 9 + 16 + 784 * 64 + 64 + 64 * 10 + 10);
  EXPECT_EQ(o.model.macs_per_sample(), 784u * 72 + 196 * 16 * 72 + 784 * 64 + 640);
  EXPECT_EQ(ran->listener.model().parameter_count(), o.model.parameter_count());
  // One evaluation per epoch, energy cumulative and growing.
  std::vector<EvaluationPoint> curve = ran->listener.curve();
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_GT(curve[0].energy_joules, 0);
  EXPECT_GT(curve[1].energy_joules, curve[0].energy_joules);
  EXPECT_EQ(energy.registers(), 1);
  EXPECT_EQ(energy.unregisters(), 1);
  EXPECT_FALSE(energy.registered("run-test"));
  EXPECT_TRUE(ran->listener.changes().empty());
}

TEST(Train, BagOfWordsLearnsSpamAssassin) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  config.set_dataset(v1::DATASET_SPAM_ASSASSIN);
  config.set_model_kind(v1::MODEL_KIND_BAG_OF_WORDS);
  config.set_learning_rate(0.01);
  config.mutable_budget()->set_max_epochs(4);
  auto ds = Load(config, 2000);
  auto ran = RunOnce(config, *ds);
  ASSERT_EQ(ran->outcome.state, v1::RUN_STATE_SUCCEEDED) << ran->outcome.error_message;
  EXPECT_GT(FinalAccuracy(ran->outcome), 0.90);  // ham is 69 %
  EXPECT_GT(ran->outcome.model.macs_per_sample(), 64u * 20);
}

// A selection scores the samples trained on since the previous one from their own training pass
// (no extra forward pass); SELECTION_POOL_RANDOM scores a fresh random pool of 256 instead. Both
// find candidates and hand them to the crowd.
TEST(Train, SelectionPoolIsTheTrainingBatchesUnlessRandomIsAsked) {
  for (v1::SelectionPool pool : {v1::SELECTION_POOL_UNSPECIFIED, v1::SELECTION_POOL_RANDOM}) {
    SCOPED_TRACE(v1::SelectionPool_Name(pool));
    v1::RunConfig c = Config(v1::MODE_HITL);
    c.set_select_every_steps(2);
    c.set_selection_pool(pool);
    c = *ValidateRunConfig(c);
    auto ds = Load(c, 2000);
    FakeFeedbackQueue crowd(*ds, /*delay_polls=*/1);
    auto ran = RunOnce(c, *ds, &crowd);
    ASSERT_EQ(ran->outcome.state, v1::RUN_STATE_SUCCEEDED) << ran->outcome.error_message;
    std::size_t selections = 0;
    for (const RecordingListener::Event& e : ran->listener.events()) {
      if (e.kind != v1::PROGRESS_EVENT_KIND_SELECTION) continue;
      ++selections;
      std::size_t scored = 0;
      ASSERT_EQ(std::sscanf(e.message.c_str(), "scored %zu samples", &scored), 1) << e.message;
      if (pool == v1::SELECTION_POOL_RANDOM) {
        EXPECT_EQ(scored, 256u) << e.message;
      } else {
        EXPECT_LE(scored, 2u * 64) << e.message;  // two batches of 64, never asked before
        EXPECT_GT(scored, 0u) << e.message;
      }
    }
    EXPECT_GT(selections, 20u);
    EXPECT_GT(ran->outcome.progress.items_enqueued(), 20u * 32);
  }
}

// The headline: with 40 % of the labels wrong, a run that hands its most suspicious samples to a
// (simulated, perfect) crowd beats the baseline at the same step count, and so does the
// automatic stand-in.
class NoisyLabels : public ::testing::Test {
 public:
  static v1::RunConfig Noisy(v1::Mode mode) {
    v1::RunConfig c = Config(mode);
    c.mutable_label_noise()->set_rate(0.4);
    c.mutable_label_noise()->set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
    c.mutable_label_noise()->set_seed(5);
    c.mutable_budget()->set_max_epochs(4);
    return c;
  }
  static double Baseline() {
    static const double accuracy = [] {
      v1::RunConfig c = Noisy(v1::MODE_BASELINE);
      auto ds = Load(c, 3000);
      auto ran = RunOnce(c, *ds);
      EXPECT_EQ(ran->outcome.state, v1::RUN_STATE_SUCCEEDED) << ran->outcome.error_message;
      std::cout << "baseline accuracy with 40% noise: " << FinalAccuracy(ran->outcome) << "\n";
      return FinalAccuracy(ran->outcome);
    }();
    return accuracy;
  }
};

TEST_F(NoisyLabels, HitlWithACrowdBeatsBaselineAtTheSameStepCount) {
  v1::RunConfig c = Noisy(v1::MODE_HITL);
  auto ds = Load(c, 3000);
  FakeFeedbackQueue crowd(*ds, /*delay_polls=*/3);
  auto ran = RunOnce(c, *ds, &crowd);
  const TrainingOutcome& o = ran->outcome;
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  std::cout << "hitl accuracy with 40% noise: " << FinalAccuracy(o) << " relabelled "
            << o.progress.samples_relabelled() << " enqueued " << o.progress.items_enqueued()
            << "\n";
  EXPECT_GT(FinalAccuracy(o), Baseline() + 0.02);
  EXPECT_EQ(o.progress.step(), 4u * (3000 / 64));
  EXPECT_GT(o.progress.items_enqueued(), 500u);
  EXPECT_GT(o.progress.samples_relabelled(), 300u);
  EXPECT_EQ(crowd.campaigns(), 1u);
  // Every enqueued item carries a PNG payload, the given label and the model's prediction.
  std::vector<v1::ItemInput> items = crowd.enqueued();
  ASSERT_FALSE(items.empty());
  EXPECT_EQ(items[0].payload().png().substr(1, 3), "PNG");
  EXPECT_TRUE(items[0].has_given_label());
  EXPECT_TRUE(items[0].has_model_prediction());
  // Loss-based selection finds wrong labels far above their 40 % base rate, and every change is
  // recorded with its source and checked against the clean label.
  std::vector<SampleChange> changes = ran->listener.changes();
  ASSERT_FALSE(changes.empty());
  std::size_t relabels = 0;
  for (const SampleChange& ch : changes) {
    EXPECT_EQ(ch.source, ChangeSource::kHuman);
    EXPECT_TRUE(ch.correct);  // a perfect crowd is always right
    relabels += ch.action == ChangeAction::kRelabel ? 1 : 0;
  }
  EXPECT_GT(static_cast<double>(relabels) / static_cast<double>(changes.size()), 0.6);
  // ... and the progress says so: every applied verdict of a perfect crowd was right.
  EXPECT_EQ(o.progress.verdicts_correct(), o.progress.verdicts_applied());
  EXPECT_EQ(o.progress.verdicts_applied(), changes.size());
}

TEST_F(NoisyLabels, AutoBeatsBaselineAtTheSameStepCount) {
  v1::RunConfig c = Noisy(v1::MODE_AUTO);
  c.mutable_auto_review()->set_flag_threshold(0.4);
  c.set_select_every_steps(2);
  c.set_candidates_per_selection(64);
  // Re-scoring a random pool of 512 every 2 steps looks at each sample about 4 times an epoch, and
  // flags one once the model has grown sure of another class: 761 changes (87 % right) here, where
  // the training-batch pool (each sample scored once an epoch, when trained on) made 245–368 and
  // ended below the baseline. Automatic review wants the random pool; humans are bounded by the
  // crowd, not the pool (the HITL test above uses the default).
  c.set_selection_pool(v1::SELECTION_POOL_RANDOM);
  auto ds = Load(c, 3000);
  auto ran = RunOnce(c, *ds);
  const TrainingOutcome& o = ran->outcome;
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  std::uint64_t right = 0;
  std::vector<SampleChange> changes = ran->listener.changes();
  for (const SampleChange& ch : changes) {
    EXPECT_EQ(ch.source, ChangeSource::kAuto);
    right += ch.correct ? 1 : 0;
  }
  std::cout << "auto accuracy with 40% noise: " << FinalAccuracy(o) << " changes " << changes.size()
            << " right " << right << "\n";
  EXPECT_GT(FinalAccuracy(o), Baseline() + 0.01);
  EXPECT_GT(changes.size(), 100u);
  EXPECT_GT(static_cast<double>(right) / static_cast<double>(changes.size()), 0.6);
}

// Hybrid: the automatic score acts on what it is sure of, the uncertain band goes to the crowd, and
// both kinds of change land; the mix beats the baseline at the same step count.
TEST_F(NoisyLabels, HybridActsAutomaticallyAndAsksHumansAboutTheUncertainOnes) {
  v1::RunConfig c = Noisy(v1::MODE_HYBRID);
  c.mutable_auto_review()->set_flag_threshold(0.6);
  auto ds = Load(c, 3000);
  FakeFeedbackQueue crowd(*ds, /*delay_polls=*/3);
  auto ran = RunOnce(c, *ds, &crowd);
  const TrainingOutcome& o = ran->outcome;
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  std::size_t human = 0, automatic = 0;
  for (const SampleChange& ch : ran->listener.changes()) {
    human += ch.source == ChangeSource::kHuman ? 1 : 0;
    automatic += ch.source == ChangeSource::kAuto ? 1 : 0;
  }
  std::cout << "hybrid accuracy with 40% noise: " << FinalAccuracy(o) << " human changes " << human
            << " automatic changes " << automatic << " enqueued " << o.progress.items_enqueued()
            << "\n";
  EXPECT_GT(human, 0u) << "the uncertain band went to the crowd";
  EXPECT_GT(automatic, 0u) << "the confident flags were acted on without asking";
  EXPECT_GT(o.progress.items_enqueued(), 0u);
  EXPECT_EQ(crowd.campaigns(), 1u);
  EXPECT_GT(FinalAccuracy(o), Baseline());
}

TEST(Train, CheckpointAndResumeReproduceAnUninterruptedRun) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-ckpt-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  v1::RunConfig c = Config(v1::MODE_AUTO);
  c.mutable_label_noise()->set_rate(0.3);
  c.mutable_label_noise()->set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  c.mutable_auto_review()->set_flag_threshold(0.5);
  c.set_checkpoint_dir((dir / "straight").string());
  auto ds = Load(c, 1500);
  auto straight = RunOnce(c, *ds);
  ASSERT_EQ(straight->outcome.state, v1::RUN_STATE_SUCCEEDED) << straight->outcome.error_message;
  EXPECT_TRUE(HasCheckpoint(c.checkpoint_dir(), "run-test", 0));

  // Stopped mid-epoch 2 (a checkpoint at the stop), then resumed to the end.
  c.set_checkpoint_dir((dir / "resumed").string());
  const std::uint64_t per_epoch = 1500 / 64;
  std::uint64_t polls = 0;
  auto first = RunOnce(c, *ds, nullptr, false, [&] { return ++polls > per_epoch + 5; });
  ASSERT_EQ(first->outcome.state, v1::RUN_STATE_STOPPED) << first->outcome.error_message;
  EXPECT_EQ(first->outcome.finish_reason, v1::FINISH_REASON_STOPPED);
  EXPECT_EQ(first->outcome.progress.step(), per_epoch + 6);
  ASSERT_TRUE(HasCheckpoint(c.checkpoint_dir(), "run-test", 0));
  auto second = RunOnce(c, *ds, nullptr, /*resume=*/true);
  ASSERT_EQ(second->outcome.state, v1::RUN_STATE_SUCCEEDED) << second->outcome.error_message;
  EXPECT_EQ(second->outcome.progress.step(), straight->outcome.progress.step());
  EXPECT_EQ(second->outcome.progress.samples_processed(),
            straight->outcome.progress.samples_processed());
  EXPECT_EQ(second->outcome.progress.samples_relabelled(),
            straight->outcome.progress.samples_relabelled());
  EXPECT_NEAR(FinalAccuracy(second->outcome), FinalAccuracy(straight->outcome), 0.005);
  std::filesystem::remove_all(dir);
}

TEST(Train, UnreachableCollectorFailsTheRunWithAClearMessage) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  auto ds = Load(config, 500);
  FakeEnergyMeter energy;
  energy.FailRegister(absl::UnavailableError("connection refused"));
  auto ran = RunOnce(config, *ds, nullptr, false, nullptr, &energy);
  EXPECT_EQ(ran->outcome.state, v1::RUN_STATE_FAILED);
  EXPECT_EQ(ran->outcome.finish_reason, v1::FINISH_REASON_ERROR);
  EXPECT_THAT(ran->outcome.error_message, ::testing::HasSubstr("does not train unmeasured"));
  EXPECT_EQ(ran->outcome.progress.step(), 0u);
}

TEST(Train, StopsAtTargetAccuracyAndAtTheEnergyBudget) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  config.set_target_accuracy(0.5);
  config.set_eval_every_steps(5);
  config.mutable_budget()->set_max_epochs(5);
  auto ds = Load(config, 2000);
  auto ran = RunOnce(config, *ds);
  EXPECT_EQ(ran->outcome.finish_reason, v1::FINISH_REASON_TARGET_REACHED);
  ASSERT_TRUE(ran->outcome.steps_to_target.has_value());
  EXPECT_LT(*ran->outcome.steps_to_target, 5u * (2000 / 64));
  EXPECT_TRUE(ran->outcome.energy_to_target_joules.has_value());

  config.set_target_accuracy(0);
  config.set_eval_every_steps(0);
  config.mutable_budget()->set_max_energy_joules(1.0);  // 20 W fake: 50 ms of CPU
  auto budget = RunOnce(config, *ds);
  EXPECT_EQ(budget->outcome.state, v1::RUN_STATE_SUCCEEDED) << budget->outcome.error_message;
  EXPECT_EQ(budget->outcome.finish_reason, v1::FINISH_REASON_ENERGY_BUDGET);
  EXPECT_LT(budget->outcome.progress.step(), 5u * (2000 / 64));
}

// Issue 17, hole 5: a budgeted run whose collector stops answering does not go on under a stale
// figure: it stops with a checkpoint once its energy has gone unread for the configured time, and
// its figures say they are incomplete.
TEST(Train, ABudgetedRunStopsWhenItsEnergyCannotBeReadAndSaysItIsIncomplete) {
  v1::RunConfig config = Config(v1::MODE_BASELINE);
  config.mutable_budget()->set_max_epochs(50);
  config.mutable_budget()->set_max_energy_joules(1e9);  // a budget the run never reaches
  config.mutable_budget()->set_max_energy_stale_seconds(0.2);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-stale-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  config.set_checkpoint_dir(dir.string());
  auto ds = Load(config, 2000);
  FakeEnergyMeter energy;
  energy.GoDownAfterReads(2);  // the projection's reading and one budget check, then an outage
  auto ran = RunOnce(config, *ds, nullptr, false, nullptr, &energy);
  const TrainingOutcome& o = ran->outcome;
  EXPECT_EQ(o.state, v1::RUN_STATE_STOPPED) << o.error_message;
  EXPECT_EQ(o.finish_reason, v1::FINISH_REASON_ENERGY_UNAVAILABLE);
  EXPECT_THAT(o.error_message, ::testing::HasSubstr("config.budget.max_energy_stale_seconds"));
  EXPECT_TRUE(o.progress.energy_incomplete());
  EXPECT_LT(o.progress.step(), 50u * (2000 / 64)) << "it trained on a stale figure to the end";
  EXPECT_FALSE(o.checkpoint_path.empty()) << "stopped without a checkpoint to resume from";
  std::filesystem::remove_all(dir);
  // Without a budget the run goes on, its figures marked incomplete.
  config.mutable_budget()->set_max_energy_joules(0);
  config.mutable_budget()->set_max_epochs(1);
  config.clear_checkpoint_dir();
  FakeEnergyMeter down;
  down.GoDownAfterReads(0);
  auto unbudgeted = RunOnce(config, *ds, nullptr, false, nullptr, &down);
  EXPECT_EQ(unbudgeted->outcome.state, v1::RUN_STATE_SUCCEEDED);
  EXPECT_TRUE(unbudgeted->outcome.progress.energy_incomplete());
}

// The protocol and method of issue 12: a clean validation split decides, the noise review fixes
// the confidently noisy labels after one epoch, InfoBatch pruning shortens the epochs, every pass
// is counted in MACs, and the test split is evaluated once at the end.
v1::RunConfig Reviewed(v1::Mode mode) {
  v1::RunConfig c = NoisyLabels::Noisy(mode);
  c.set_validation_samples(1000);
  c.set_eval_every_steps(20);
  c.set_eval_smoothing(2);
  c.mutable_noise_review()->set_enabled(true);
  c.mutable_pruning()->set_ratio(0.5);
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(c);
  EXPECT_TRUE(valid.ok()) << valid.status();
  return *valid;
}

TEST_F(NoisyLabels, NoiseReviewFixesLabelsAfterTheWarmUpAndPruningShortensEpochs) {
  const v1::RunConfig c = Reviewed(v1::MODE_AUTO);
  auto ds = LoadWithValidation(c, 3000);
  auto ran = RunOnce(c, *ds);
  const TrainingOutcome& o = ran->outcome;
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  std::uint64_t right = 0;
  const std::vector<SampleChange> changes = ran->listener.changes();
  for (const SampleChange& ch : changes) {
    EXPECT_EQ(ch.source, ChangeSource::kAuto);
    EXPECT_GT(ch.step, 3000u / 64 - 1) << "a change before the warm-up epoch ended";
    right += ch.correct ? 1 : 0;
  }
  std::cout << "reviewed auto: test " << *o.test_accuracy << " changes " << changes.size()
            << " right " << right << " pruned " << o.progress.samples_pruned() << " steps "
            << o.progress.step() << "\n";
  // The whole training set is reviewed, not a sample of it, and most of the 1200 wrong labels
  // are found and fixed.
  EXPECT_GE(o.progress.samples_reviewed(), 2900u);
  EXPECT_GT(changes.size(), 600u);
  EXPECT_GT(static_cast<double>(right) / static_cast<double>(changes.size()), 0.8);
  // Pruned epochs are shorter: fewer steps than 4 full epochs.
  EXPECT_GT(o.progress.samples_pruned(), 500u);
  EXPECT_LT(o.progress.step(), 4u * (3000 / 64));
  // The test split was evaluated once, at the end; the validation split decided.
  ASSERT_TRUE(o.test_accuracy.has_value());
  ASSERT_TRUE(o.best_test_accuracy.has_value());
  ASSERT_TRUE(o.best_smoothed_eval_accuracy.has_value());
  // About the baseline's accuracy for fewer steps. One seed, so the margin is what CPU numerics
  // move it by: within a point on the machine this was written on, 1.8 points below (0.7392 vs
  // 0.7575) on an AMD EPYC one. A review that relabelled wrongly would cost far more (the labels
  // are 40 % wrong).
  EXPECT_GT(*o.test_accuracy, Baseline() - 0.025);
  // Modelled work: training passes, plus evaluations of 1000 validation images each.
  const double forward = static_cast<double>(o.model.macs_per_sample());
  EXPECT_DOUBLE_EQ(o.progress.eval_macs(),
                   static_cast<double>(ran->listener.curve().size()) * 1000 * forward);
  EXPECT_DOUBLE_EQ(o.progress.macs() - o.progress.eval_macs(),
                   3 * static_cast<double>(o.progress.samples_processed()) * forward);
}

TEST_F(NoisyLabels, ReviewedHitlAsksHumansAtTheCrowdsPace) {
  v1::RunConfig c = Reviewed(v1::MODE_HITL);
  c.mutable_noise_review()->set_min_outstanding_items(64);
  c.mutable_noise_review()->set_outstanding_seconds(0.001);  // never more than the minimum
  auto ds = LoadWithValidation(c, 3000);
  FakeFeedbackQueue crowd(*ds, /*delay_polls=*/3);
  auto ran = RunOnce(c, *ds, &crowd);
  const TrainingOutcome& o = ran->outcome;
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  EXPECT_GT(o.progress.items_enqueued(), 300u);
  EXPECT_GT(o.progress.samples_relabelled(), 200u);
  EXPECT_EQ(o.progress.verdicts_correct(), o.progress.verdicts_applied());
  // Items go out only after the warm-up, most suspicious first, and never more than the
  // outstanding limit ahead of the verdicts.
  const std::vector<v1::ItemInput> items = crowd.enqueued();
  ASSERT_GT(items.size(), 2u);
  EXPECT_GE(items[0].priority(), items[1].priority());
  EXPECT_EQ(items[0].payload().png().substr(1, 3), "PNG");
  std::size_t wrong = 0;
  for (const v1::ItemInput& item : items) {
    const auto p = static_cast<std::size_t>(item.sample().index());
    wrong += ds->train.labels[p] != ds->train.clean_labels[p] ? 1 : 0;
  }
  // The review finds wrong labels far above their 40 % base rate.
  EXPECT_GT(static_cast<double>(wrong) / static_cast<double>(items.size()), 0.7);
}

TEST_F(NoisyLabels, CleanReferenceTrainsOnTheCleanLabels) {
  v1::RunConfig c = NoisyLabels::Noisy(v1::MODE_CLEAN);
  auto ds = Load(c, 3000);
  auto ran = RunOnce(c, *ds);
  ASSERT_EQ(ran->outcome.state, v1::RUN_STATE_SUCCEEDED) << ran->outcome.error_message;
  EXPECT_TRUE(ran->listener.changes().empty());
  EXPECT_GT(FinalAccuracy(ran->outcome), Baseline() + 0.03);
}

TEST(RunConfig, PruningAndReviewKeysAreChecked) {
  v1::RunConfig c = Config(v1::MODE_BASELINE);
  c.set_mode(v1::MODE_PRUNE);
  EXPECT_FALSE(ValidateRunConfig(c).ok()) << "MODE_PRUNE without a ratio";
  c.mutable_pruning()->set_ratio(1.0);
  absl::StatusOr<v1::RunConfig> bad = ValidateRunConfig(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("config.pruning.ratio"));
  c.mutable_pruning()->set_ratio(0.3);
  EXPECT_TRUE(ValidateRunConfig(c).ok());
  v1::RunConfig r = Config(v1::MODE_AUTO);
  r.mutable_noise_review()->set_auto_threshold(0.8);
  r.mutable_noise_review()->set_human_threshold(0.9);
  bad = ValidateRunConfig(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("config.noise_review.human_threshold"));
}

}  // namespace
}  // namespace greenloop::trainer
