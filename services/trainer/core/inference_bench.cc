#include "services/trainer/core/inference_bench.h"

#include <fmt/format.h>

#include <chrono>

namespace greenloop::trainer {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kDefaultSecondsPerBatch = 3.0;

// Forward passes of `batch` samples until `seconds` have passed (at least one); fills samples,
// seconds, latency and throughput.
void TimePasses(ClassifierImpl& model, const LoadedDataset& dataset, const torch::Tensor& images,
                std::uint32_t batch, double seconds, const std::function<bool()>& stop,
                v1::InferenceFigures& out) {
  const auto n = static_cast<std::int64_t>(dataset.test.size());
  std::vector<std::int64_t> positions(batch);
  std::int64_t next = 0;
  std::uint64_t passes = 0;
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  do {
    for (std::int64_t& p : positions) p = next++ % n;
    const ModelInput input = GatherInput(dataset, dataset.test, images, positions);
    const torch::Tensor logits = model.forward(input);
    (void)logits.sum().item<float>();  // the pass is done, not only queued
    ++passes;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds && !stop());
  out.set_samples(passes * batch);
  out.set_seconds(elapsed);
  out.set_latency_ms(1000.0 * elapsed / static_cast<double>(passes));
  out.set_samples_per_second(elapsed > 0 ? static_cast<double>(out.samples()) / elapsed : 0.0);
}

}  // namespace

std::string InferenceRunId(const std::string& run_id, std::uint32_t batch_size) {
  const std::string suffix = fmt::format("-i{}", batch_size);
  return run_id.substr(0, 63 - suffix.size()) + suffix;
}

std::vector<v1::InferenceFigures> BenchmarkInference(
    ClassifierImpl& model, const LoadedDataset& dataset, const torch::Tensor& test_images,
    const v1::InferenceBenchmark& bench, const v1::ModelInfo& info, const InferenceTarget& target) {
  std::vector<v1::InferenceFigures> out;
  if (dataset.test.size() == 0) return out;
  const double seconds =
      bench.seconds_per_batch() > 0 ? bench.seconds_per_batch() : kDefaultSecondsPerBatch;
  const bool was_training = model.is_training();
  model.eval();
  for (std::uint32_t batch : bench.batch_sizes()) {
    if (target.stop()) break;
    v1::InferenceFigures& f = out.emplace_back();
    f.set_batch_size(batch);
    f.set_energy_run_id(InferenceRunId(target.run_id, batch));
    absl::Status registered = target.meter->Register(f.energy_run_id(), target.pid, 0);
    {
      torch::InferenceMode inference;
      TimePasses(model, dataset, test_images, batch, seconds, target.stop, f);
    }
    f.set_macs(static_cast<double>(f.samples()) * static_cast<double>(info.macs_per_sample()));
    if (!registered.ok()) {
      f.set_error(
          fmt::format("cannot register with the collector: {}", std::string(registered.message())));
      continue;
    }
    absl::Status s = target.meter->Unregister(f.energy_run_id(), target.pid);
    absl::StatusOr<double> joules = target.meter->RunEnergyJoules(f.energy_run_id());
    if (!s.ok() || !joules.ok()) {
      f.set_error(fmt::format("cannot read the collector: {}",
                              std::string((!s.ok() ? s : joules.status()).message())));
      continue;
    }
    f.set_energy_joules(*joules);
    f.set_joules_per_sample(*joules / static_cast<double>(f.samples()));
  }
  model.train(was_training);
  return out;
}

}  // namespace greenloop::trainer
