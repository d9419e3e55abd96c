// trainer_bench: training throughput and peak memory of the greenloop trainer's own loop
// (services/trainer/core/trainer.h, the code greenloop-trainer runs), on Fashion-MNIST with the
// small CNN. run_bench.sh runs it next to the same training in PyTorch (pytorch_bench.py).
//
//   trainer_bench --samples=10000 --batch=64 --threads=2 --steps=300 --warmup=30
//                 [--world=2 --rank=R --port=P]
//
// Prints one line: greenloop rank=R world=W samples_per_s=... peak_rss_mb=... steps=...
// accuracy=... samples_per_s counts the samples of all ranks (global batch) over the timed steps,
// which exclude warm-up, data loading and the final evaluation.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "services/trainer/core/distributed.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/trainer.h"
#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

class Timer final : public TrainingListener {
 public:
  Timer(std::uint64_t warmup, std::uint64_t last) : warmup_(warmup), last_(last) {}
  void OnEvent(v1::ProgressEventKind kind, const v1::Progress& p, const std::string&) override {
    if (kind != v1::PROGRESS_EVENT_KIND_STEP) return;
    if (p.step() == warmup_) {
      start_ = std::chrono::steady_clock::now();
      start_samples_ = p.samples_processed();
    }
    if (p.step() == last_) {
      end_ = std::chrono::steady_clock::now();
      end_samples_ = p.samples_processed();
    }
  }
  double SamplesPerSecond() const {
    const double s = std::chrono::duration<double>(end_ - start_).count();
    return s > 0 ? static_cast<double>(end_samples_ - start_samples_) / s : 0;
  }

 private:
  std::uint64_t warmup_, last_;
  std::chrono::steady_clock::time_point start_, end_;
  std::uint64_t start_samples_ = 0, end_samples_ = 0;
};

int Main(int argc, char** argv) {
  std::map<std::string, std::string> a = {{"samples", "10000"}, {"batch", "64"},  {"threads", "2"},
                                          {"steps", "300"},     {"warmup", "30"}, {"world", "1"},
                                          {"rank", "0"},        {"port", "29517"}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const auto eq = arg.find('=');
    if (!arg.starts_with("--") || eq == std::string::npos) {
      std::cerr << "usage: trainer_bench --key=value ...\n";
      return 2;
    }
    a[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  const std::uint64_t warmup = std::stoull(a["warmup"]);
  const std::uint64_t steps = std::stoull(a["steps"]);
  const auto world = static_cast<std::uint32_t>(std::stoul(a["world"]));
  const auto rank = static_cast<std::uint32_t>(std::stoul(a["rank"]));
  v1::RunConfig config;
  config.set_dataset(v1::DATASET_FASHION_MNIST);
  config.set_mode(v1::MODE_BASELINE);
  config.set_max_train_samples(std::stoull(a["samples"]));
  config.set_batch_size(static_cast<std::uint32_t>(std::stoul(a["batch"])));
  config.set_seed(1);
  config.mutable_budget()->set_max_steps(warmup + steps);
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  if (!valid.ok()) {
    std::cerr << valid.status() << "\n";
    return 2;
  }
  DatasetCache cache{DatasetLocations{}};
  auto ds = LoadDataset(cache, valid->dataset(), valid->max_train_samples(), valid->label_noise(),
                        valid->validation_samples());
  if (!ds.ok()) {
    std::cerr << ds.status() << "\n";
    return 2;
  }
  std::unique_ptr<Collective> collective;
  if (world > 1) {
    auto c = ConnectGloo({.run_id = "bench",
                          .rendezvous_host = "127.0.0.1",
                          .rendezvous_port = static_cast<std::uint16_t>(std::stoul(a["port"])),
                          .rank = rank,
                          .world_size = world});
    if (!c.ok()) {
      std::cerr << c.status() << "\n";
      return 1;
    }
    collective = *std::move(c);
  }
  testing::FakeEnergyMeter energy;
  Timer timer(warmup, warmup + steps);
  TrainingPorts ports{.energy = &energy, .collective = collective.get(), .listener = &timer};
  RankOptions options{.run_id = "bench",
                      .rank = rank,
                      .world_size = world,
                      .node = "bench",
                      .pid = getpid(),
                      .threads = std::stoi(a["threads"]),
                      .step_event_every = 1};
  TrainingOutcome outcome = Train(*valid, **ds, options, ports);
  if (outcome.state != v1::RUN_STATE_SUCCEEDED) {
    std::cerr << "run failed: " << outcome.error_message << "\n";
    return 1;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "greenloop rank=%u world=%u samples_per_s=%.1f peak_rss_mb=%.1f steps=%llu accuracy=%.4f\n",
      rank, world, timer.SamplesPerSecond(), static_cast<double>(usage.ru_maxrss) / 1024.0,
      static_cast<unsigned long long>(outcome.progress.step()), outcome.progress.eval_accuracy());
  return 0;
}

}  // namespace
}  // namespace greenloop::trainer

int main(int argc, char** argv) { return greenloop::trainer::Main(argc, argv); }
