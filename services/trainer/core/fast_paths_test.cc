// The trainer's fast paths (issue 15) compute what the plain ones do: the fused Adam step follows
// LibTorch's Adam step for step, channels-last convolutions give NCHW's outputs and gradients,
// the sliced, batched evaluation scores every sample exactly as a per-sample loop does, and a
// checkpoint keeps the layouts the fast paths need.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "services/trainer/core/checkpoint.h"
#include "services/trainer/core/evaluation.h"
#include "services/trainer/core/fused_adam.h"
#include "services/trainer/core/image_models.h"
#include "services/trainer/core/models.h"

namespace greenloop::trainer {
namespace {

LoadedDataset RandomImages(std::int64_t n) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = ds.image_cols = 28;
  for (int c = 0; c < 10; ++c) ds.label_names.push_back("c" + std::to_string(c));
  torch::manual_seed(7);
  const torch::Tensor pixels = torch::randint(0, 256, {n * 28 * 28}, torch::kUInt8);
  const torch::Tensor labels = torch::randint(0, 10, {n}, torch::kInt64);
  ds.test.pixels.assign(pixels.data_ptr<std::uint8_t>(), pixels.data_ptr<std::uint8_t>() + n * 784);
  ds.test.labels.assign(labels.data_ptr<std::int64_t>(), labels.data_ptr<std::int64_t>() + n);
  ds.test.clean_labels = ds.test.labels;
  ds.train = ds.test;
  return ds;
}

LoadedDataset RandomText(std::int64_t n) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.label_names = {"ham", "spam"};
  ds.vocabulary_size = 50;
  ds.mean_tokens_per_sample = 6;
  torch::manual_seed(8);
  ds.test.offsets.push_back(0);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t len = 1 + torch::randint(0, 12, {1}).item<std::int64_t>();
    for (std::int64_t t = 0; t < len; ++t) {
      ds.test.tokens.push_back(torch::randint(1, 50, {1}).item<std::int64_t>());
    }
    ds.test.offsets.push_back(static_cast<std::int64_t>(ds.test.tokens.size()));
    ds.test.labels.push_back(i % 3 == 0 ? 1 : 0);
  }
  ds.test.clean_labels = ds.test.labels;
  return ds;
}

std::shared_ptr<ClassifierImpl> Model(v1::ModelKind kind, const LoadedDataset& ds,
                                      std::uint64_t seed) {
  torch::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> model = MakeModel(kind, ds);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

double MaxAbsDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  }
  return worst;
}

// The loss of each of `steps` Adam steps on batches of `ds`'s test split.
std::vector<double> LossCurve(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                              const LoadedDataset& ds, int steps) {
  const torch::Tensor images = ImagesTensor(ds.test, ds);
  const torch::Tensor labels = torch::tensor(ds.test.labels, torch::kInt64);
  std::vector<double> curve;
  model.train();
  for (int s = 0; s < steps; ++s) {
    const std::int64_t begin = (s * 32) % (images.size(0) - 32);
    model.zero_grad(true);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        model.forward({images.slice(0, begin, begin + 32), {}}),
        labels.slice(0, begin, begin + 32));
    loss.backward();
    optimizer.step();
    curve.push_back(loss.item<double>());
  }
  return curve;
}

TEST(FusedAdam, FollowsLibTorchsAdamStepForStep) {
  const LoadedDataset ds = RandomImages(256);
  for (v1::ModelKind kind : {v1::MODEL_KIND_CNN, v1::MODEL_KIND_MLP, v1::MODEL_KIND_RESNET}) {
    SCOPED_TRACE(v1::ModelKind_Name(kind));
    std::shared_ptr<ClassifierImpl> plain = Model(kind, ds, 3);
    std::shared_ptr<ClassifierImpl> fused = Model(kind, ds, 3);
    torch::optim::Adam adam(plain->parameters(), torch::optim::AdamOptions(1e-3));
    FusedAdam fast(fused->parameters(), torch::optim::AdamOptions(1e-3));
    const std::vector<double> a = LossCurve(*plain, adam, ds, 40);
    const std::vector<double> b = LossCurve(*fused, fast, ds, 40);
    // Float rounding only. Adam divides by √v, so where a gradient is ~0 its sign (rounding) picks
    // the direction of a whole lr-sized step: parameters may part by a few lr over 40 steps.
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-3 * (1 + a[i])) << i;
    EXPECT_LT(a.back(), a.front());  // it did learn: the comparison is not of two idle models
    EXPECT_LT(MaxAbsDiff(plain->parameters(), fused->parameters()), 10 * 1e-3);
    // The same state, so a checkpoint of either loads into the other.
    const auto& sa = static_cast<torch::optim::AdamParamState&>(
        *adam.state().at(c10::guts::to_string(plain->parameters()[0].unsafeGetTensorImpl())));
    const auto& sb = static_cast<torch::optim::AdamParamState&>(
        *fast.state().at(c10::guts::to_string(fused->parameters()[0].unsafeGetTensorImpl())));
    EXPECT_EQ(sa.step(), sb.step());
    EXPECT_LT((sa.exp_avg_sq() - sb.exp_avg_sq()).abs().max().item<double>(), 1e-6);
  }
}

TEST(FusedAdam, TakesAdamsOwnStepWhereItCannotFuse) {
  const LoadedDataset ds = RandomImages(128);
  std::shared_ptr<ClassifierImpl> plain = Model(v1::MODEL_KIND_MLP, ds, 4);
  std::shared_ptr<ClassifierImpl> fused = Model(v1::MODEL_KIND_MLP, ds, 4);
  torch::optim::Adam adam(plain->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(0.1));
  FusedAdam fast(fused->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(0.1));
  LossCurve(*plain, adam, ds, 5);
  LossCurve(*fused, fast, ds, 5);
  EXPECT_EQ(MaxAbsDiff(plain->parameters(), fused->parameters()), 0.0);
}

TEST(ChannelsLast, ConvolutionsGiveWhatNchwGives) {
  const LoadedDataset ds = RandomImages(64);
  for (v1::ModelKind kind : {v1::MODEL_KIND_CNN, v1::MODEL_KIND_LENET5, v1::MODEL_KIND_RESNET}) {
    SCOPED_TRACE(v1::ModelKind_Name(kind));
    std::shared_ptr<ClassifierImpl> nhwc = Model(kind, ds, 5);
    std::shared_ptr<ClassifierImpl> nchw = Model(kind, ds, 5);
    bool converted = false;
    {
      torch::NoGradGuard no_grad;
      for (torch::Tensor& p : nchw->parameters()) {
        if (p.dim() != 4) continue;
        EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
        p.set_data(p.data().contiguous());
        converted = converted || !p.is_contiguous(torch::MemoryFormat::ChannelsLast);
      }
    }
    EXPECT_TRUE(converted);  // the two models really run different layouts
    const torch::Tensor x = ImagesTensor(ds.test, ds);
    const torch::Tensor y = torch::tensor(ds.test.labels, torch::kInt64);
    for (ClassifierImpl* m : {nhwc.get(), nchw.get()}) {
      m->train();
      torch::nn::functional::cross_entropy(m->forward({x, {}}), y).backward();
    }
    nhwc->eval();
    nchw->eval();
    EXPECT_LT((nhwc->forward({x, {}}) - nchw->forward({x, {}})).abs().max().item<double>(), 1e-4);
    std::vector<torch::Tensor> ga;
    std::vector<torch::Tensor> gb;
    for (const torch::Tensor& p : nhwc->parameters()) ga.push_back(p.grad());
    for (const torch::Tensor& p : nchw->parameters()) gb.push_back(p.grad());
    // Summed in another order over 64 × 28 × 28 positions: float rounding, relative to the
    // largest gradient
    double largest = 0;
    for (const torch::Tensor& g : gb) largest = std::max(largest, g.abs().max().item<double>());
    // (ResNet's gradients on random images and labels are small differences of large terms: up
    // to 1.7 % of the largest, measured; the CNN's and LeNet's agree to 1e-5.)
    EXPECT_LT(MaxAbsDiff(ga, gb), 2e-2 * largest);
    // What matters to a run: the same loss curve.
    torch::optim::Adam adam_a(nhwc->parameters(), torch::optim::AdamOptions(1e-3));
    torch::optim::Adam adam_b(nchw->parameters(), torch::optim::AdamOptions(1e-3));
    const std::vector<double> a = LossCurve(*nhwc, adam_a, ds, 20);
    const std::vector<double> b = LossCurve(*nchw, adam_b, ds, 20);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-3 * (1 + a[i])) << i;
  }
}

// A checkpoint written and read back keeps the fast layouts: convolution weights channels-last,
// and Adam's moments laid out as their parameters, so that the fused step still applies.
TEST(ChannelsLast, SurvivesACheckpointRoundTrip) {
  const LoadedDataset ds = RandomImages(64);
  std::shared_ptr<ClassifierImpl> a = Model(v1::MODEL_KIND_CNN, ds, 9);
  FusedAdam opt_a(a->parameters(), torch::optim::AdamOptions(1e-3));
  LossCurve(*a, opt_a, ds, 3);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-fast-" + std::to_string(getpid()));
  internal::CheckpointState st;
  st.set_run_id("run-1");
  st.set_world_size(1);
  ASSERT_TRUE(SaveCheckpoint(dir.string(), "epoch-1-step-3", *a, opt_a, st).ok());
  std::shared_ptr<ClassifierImpl> b = Model(v1::MODEL_KIND_CNN, ds, 10);
  FusedAdam opt_b(b->parameters(), torch::optim::AdamOptions(1e-3));
  ASSERT_TRUE(LoadLatestCheckpoint(dir.string(), "run-1", 1, *b, opt_b).ok());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(MaxAbsDiff(a->parameters(), b->parameters()), 0.0);
  for (const torch::Tensor& p : b->parameters()) {
    const auto& s = static_cast<torch::optim::AdamParamState&>(
        *opt_b.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
    EXPECT_EQ(s.exp_avg().strides(), p.strides());
    EXPECT_EQ(s.exp_avg_sq().strides(), p.strides());
    if (p.dim() == 4) {
      EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
}

// What ScoreSplit scores, one sample at a time through the plain gather.
SplitScore PerSample(ClassifierImpl& model, const LoadedDataset& ds, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  model.eval();
  SplitScore score;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(ds.test.size()); ++i) {
    const std::vector<std::int64_t> one = {i};
    const torch::Tensor logits = model.forward(GatherInput(ds, ds.test, images, one));
    const torch::Tensor target =
        torch::tensor({ds.test.labels[static_cast<std::size_t>(i)]}, torch::kInt64);
    score.loss += torch::nn::functional::cross_entropy(logits, target).item<double>();
    score.correct += logits.argmax(1).eq(target).sum().item<double>();
    score.count += 1;
  }
  return score;
}

TEST(ScoreSplit, SlicedBatchesScoreWhatPerSamplePassesScore) {
  const LoadedDataset images = RandomImages(300);
  const LoadedDataset text = RandomText(300);
  for (const LoadedDataset* ds : {&images, &text}) {
    const v1::ModelKind kind = ds == &images ? v1::MODEL_KIND_RESNET : v1::MODEL_KIND_BAG_OF_WORDS;
    SCOPED_TRACE(v1::ModelKind_Name(kind));
    std::shared_ptr<ClassifierImpl> model = Model(kind, *ds, 6);
    const torch::Tensor x = ImagesTensor(ds->test, *ds);
    const SplitScore want = PerSample(*model, *ds, x);
    for (std::int64_t batch : {1, 7, 256, 1024}) {
      const SplitScore got = ScoreSplit(*model, *ds, ds->test, x, 0, 1, batch);
      EXPECT_EQ(got.count, want.count) << batch;
      EXPECT_EQ(got.correct, want.correct) << batch;
      EXPECT_NEAR(got.loss, want.loss, 1e-4 * want.loss) << batch;
    }
    SplitScore sum;
    for (std::uint32_t rank = 0; rank < 3; ++rank) {
      const SplitScore part = ScoreSplit(*model, *ds, ds->test, x, rank, 3, 16);
      sum.count += part.count;
      sum.correct += part.correct;
      sum.loss += part.loss;
    }
    EXPECT_EQ(sum.count, want.count);
    EXPECT_EQ(sum.correct, want.correct);
    EXPECT_NEAR(sum.loss, want.loss, 1e-4 * want.loss);
  }
}

}  // namespace
}  // namespace greenloop::trainer
