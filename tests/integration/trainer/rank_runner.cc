// trainer_rank_runner: runs one rank of a small Fashion-MNIST run in its own process, as a
// greenloop-trainer worker would, with in-memory fakes of the energy collector and (on rank 0)
// of the feedback queue and its crowd. distributed_test.cc starts several and compares them.
//
//   trainer_rank_runner --rank=R --world=W --port=P --batch=B --mode=hitl --out=FILE ...
//
// --mode=hitl_features plants the decoy and lets rank 0's fake crowd answer the rule questions
// (asked at --ask steps). Writes key=value lines to --out: state, reason, message, step, samples,
// accuracy, relabelled, changes (count), changes_hash (order-sensitive hash of every change),
// rules (feature rules in force) and lambda (the RRR weight, all digits).
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>

#include "services/trainer/core/distributed.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/trainer.h"
#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

class HashingListener final : public TrainingListener {
 public:
  void OnEvent(v1::ProgressEventKind, const v1::Progress&, const std::string&) override {}
  void OnChanges(const std::vector<SampleChange>& changes) override {
    for (const SampleChange& c : changes) {
      ++count_;
      hash_ = hash_ * 1000003u ^ std::hash<std::string>{}(std::to_string(c.step) + "/" +
                                                          std::to_string(c.sample_index) + "/" +
                                                          std::to_string(c.new_label) + "/" +
                                                          std::string(ChangeActionName(c.action)));
    }
  }
  std::uint64_t count_ = 0;
  std::size_t hash_ = 17;
};

int Main(int argc, char** argv) {
  std::map<std::string, std::string> args = {{"rank", "0"},
                                             {"world", "1"},
                                             {"port", "0"},
                                             {"batch", "64"},
                                             {"max_train", "3000"},
                                             {"epochs", "2"},
                                             {"mode", "hitl"},
                                             {"noise", "0.4"},
                                             {"pool", "training_batches"},
                                             {"out", "/dev/stdout"},
                                             {"rendezvous_timeout_ms", "30000"},
                                             {"collective_timeout_ms", "10000"},
                                             {"threads", "1"},
                                             {"ask", "20"},
                                             {"lambda", "0"},
                                             {"checkpoint", ""},
                                             {"resume", "0"}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const auto eq = a.find('=');
    if (!a.starts_with("--") || eq == std::string::npos) {
      std::cerr << "usage: --key=value ...\n";
      return 2;
    }
    args[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }
  const auto rank = static_cast<std::uint32_t>(std::stoul(args["rank"]));
  const auto world = static_cast<std::uint32_t>(std::stoul(args["world"]));

  v1::RunConfig config;
  config.set_dataset(v1::DATASET_FASHION_MNIST);
  config.set_max_train_samples(std::stoull(args["max_train"]));
  config.set_batch_size(static_cast<std::uint32_t>(std::stoul(args["batch"])));
  config.set_seed(21);
  config.mutable_budget()->set_max_epochs(static_cast<std::uint32_t>(std::stoul(args["epochs"])));
  config.mutable_label_noise()->set_rate(std::stod(args["noise"]));
  config.mutable_label_noise()->set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  config.mutable_label_noise()->set_seed(2);
  const std::string mode = args["mode"];
  config.set_mode(mode == "hitl"            ? v1::MODE_HITL
                  : mode == "auto"          ? v1::MODE_AUTO
                  : mode == "hitl_features" ? v1::MODE_HITL_FEATURES
                  : mode == "hitl_combined" ? v1::MODE_HITL_COMBINED
                                            : v1::MODE_BASELINE);
  if (AsksForFeatures(config.mode())) {
    config.mutable_decoy()->set_enabled(true);
    config.mutable_feature_feedback()->set_ask_after_steps(
        static_cast<std::uint32_t>(std::stoul(args["ask"])));
    config.mutable_feature_feedback()->set_penalty_weight(std::stod(args["lambda"]));
  }
  if (JudgesSamples(config.mode())) config.set_select_every_steps(4);
  config.set_selection_pool(args["pool"] == "random" ? v1::SELECTION_POOL_RANDOM
                                                     : v1::SELECTION_POOL_TRAINING_BATCHES);
  config.mutable_auto_review()->set_flag_threshold(0.5);
  config.mutable_feedback()->set_endpoint("in-memory");
  config.mutable_feedback()->set_campaign_id("camp");
  config.mutable_feedback()->set_feature_campaign_id("camp-f");
  config.set_checkpoint_dir(args["checkpoint"]);  // empty: no checkpoints
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  if (!valid.ok()) {
    std::cerr << valid.status() << "\n";
    return 2;
  }
  DatasetCache cache{DatasetLocations{}};
  auto ds = LoadDataset(cache, valid->dataset(), valid->max_train_samples(), valid->label_noise(),
                        valid->validation_samples(), valid->decoy());
  if (!ds.ok()) {
    std::cerr << ds.status() << "\n";
    return 2;
  }

  std::ofstream out(args["out"]);
  auto report = [&](const TrainingOutcome& o, const HashingListener& l) {
    out << "state=" << v1::RunState_Name(o.state) << "\n"
        << "reason=" << v1::FinishReason_Name(o.finish_reason) << "\n"
        << "message=" << o.error_message << "\n"
        << "step=" << o.progress.step() << "\n"
        << "samples=" << o.progress.samples_processed() << "\n"
        << "accuracy=" << o.progress.eval_accuracy() << "\n"
        << "relabelled=" << o.progress.samples_relabelled() << "\n"
        << "changes=" << l.count_ << "\n"
        << "changes_hash=" << l.hash_ << "\n"
        << "rules=" << o.progress.feature_rules() << "\n"
        << "lambda=" << std::setprecision(17) << o.progress.feature_penalty_weight() << "\n";
    out.flush();
  };

  std::unique_ptr<Collective> collective;
  if (world > 1) {
    absl::StatusOr<std::unique_ptr<Collective>> c = ConnectGloo(
        {.run_id = "dist-test",
         .rendezvous_host = "127.0.0.1",
         .rendezvous_port = static_cast<std::uint16_t>(std::stoul(args["port"])),
         .rank = rank,
         .world_size = world,
         .rendezvous_timeout = std::chrono::milliseconds(std::stoll(args["rendezvous_timeout_ms"])),
         .collective_timeout =
             std::chrono::milliseconds(std::stoll(args["collective_timeout_ms"]))});
    if (!c.ok()) {
      TrainingOutcome failed;
      failed.error_message = std::string(c.status().message());
      report(failed, HashingListener());
      return 1;
    }
    collective = *std::move(c);
  }
  testing::FakeEnergyMeter energy;
  testing::FakeFeedbackQueue crowd(**ds, /*delay_polls=*/2);
  testing::FakeFeedbackQueue feature_crowd(**ds, /*delay_polls=*/2);  // hitl_combined's rules
  HashingListener listener;
  TrainingPorts ports;
  ports.energy = &energy;
  ports.feedback = rank == 0 ? &crowd : nullptr;
  ports.feature_feedback = rank == 0 ? &feature_crowd : nullptr;
  ports.collective = collective.get();
  ports.listener = &listener;
  RankOptions options;
  options.run_id = "dist-test";
  options.rank = rank;
  options.world_size = world;
  options.node = "node-a";
  options.pid = getpid();
  options.threads = std::stoi(args["threads"]);
  options.resume = args["resume"] == "1";
  TrainingOutcome outcome = Train(*valid, **ds, options, ports);
  report(outcome, listener);
  return outcome.state == v1::RUN_STATE_SUCCEEDED ? 0 : 1;
}

}  // namespace
}  // namespace greenloop::trainer

int main(int argc, char** argv) { return greenloop::trainer::Main(argc, argv); }
