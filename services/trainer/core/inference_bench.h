// The inference benchmark of a trained model (RunConfig.inference): for each batch size, forward
// passes over the test split for a few seconds, registered with the node's collector as a run of
// its own, so that their energy is attributed like a training run's and comes back per sample.
//
//   std::vector<v1::InferenceFigures> figures =
//       BenchmarkInference(model, dataset, test_images, config.inference(), model_info,
//                          {.meter = &meter, .run_id = "run-1", .pid = getpid()});
//
// This header includes LibTorch.
//
// Thread-safety: runs on the training thread, after the run has unregistered from the collector.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

// The collector run of batch size `batch_size` of run `run_id`: "<run id>-i<batch size>", the run
// id cut so that the whole stays within 63 characters.
std::string InferenceRunId(const std::string& run_id, std::uint32_t batch_size);

struct InferenceTarget {
  EnergyMeter* meter = nullptr;  // required
  std::string run_id;
  int pid = 0;
  // Polled between forward passes; true ends the benchmark (the batch sizes measured so far are
  // returned).
  std::function<bool()> stop = [] { return false; };
};

// Measures `model` (put in evaluation mode, under torch::InferenceMode) at each of
// `bench.batch_sizes()` in turn on the test split of `dataset` (`test_images`: ImagesTensor of it;
// undefined for text), wrapping around the split, for bench.seconds_per_batch() (0: 3) and at
// least one pass. A batch size whose collector run cannot be registered or read still gets its
// latency and throughput, its error set and no energy. Nothing for an empty test split.
std::vector<v1::InferenceFigures> BenchmarkInference(
    ClassifierImpl& model, const LoadedDataset& dataset, const torch::Tensor& test_images,
    const v1::InferenceBenchmark& bench, const v1::ModelInfo& info, const InferenceTarget& target);

}  // namespace greenloop::trainer
