// The model zoo: every image architecture trains, its size is what its layers say, and shapes
// that do not fit are refused naming the field.
#include "services/trainer/core/models.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "services/trainer/core/run_config.h"

namespace greenloop::trainer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

LoadedDataset Images() {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = ds.image_cols = 28;
  for (int c = 0; c < 10; ++c) ds.label_names.push_back("c" + std::to_string(c));
  return ds;
}

v1::ModelShape Shape(std::uint32_t width, std::uint32_t depth) {
  v1::ModelShape s;
  s.set_width(width);
  s.set_depth(depth);
  return s;
}

v1::ModelInfo Describe(v1::ModelKind kind, const v1::ModelShape& shape = {}) {
  const LoadedDataset ds = Images();
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> model = MakeModel(kind, ds, shape);
  EXPECT_TRUE(model.ok()) << model.status();
  return DescribeModel(**model, kind, shape, ds);
}

std::vector<std::string> LayerNames(const v1::ModelInfo& info) {
  std::vector<std::string> names;
  for (const v1::LayerInfo& l : info.layers()) names.push_back(l.name());
  return names;
}

// The default CNN is the one greenloop always trained: same parameters, same MACs.
TEST(ModelZoo, TheDefaultCnnIsTheOriginalOneLayerByLayer) {
  const v1::ModelInfo info = Describe(v1::MODEL_KIND_CNN);
  EXPECT_EQ(info.parameter_count(), 52138u);
  EXPECT_THAT(LayerNames(info), ElementsAre("conv1", "conv2", "fc1", "fc2"));
  // 28·28·8·9, 14·14·16·8·9, 784·64, 64·10.
  EXPECT_EQ(info.layers(0).macs_per_sample(), 56448u);
  EXPECT_EQ(info.layers(1).macs_per_sample(), 225792u);
  EXPECT_EQ(info.macs_per_sample(), 56448u + 225792u + 50176u + 640u);
  EXPECT_EQ(info.backward_macs_per_sample(), 56448u + 2 * (225792u + 50176u + 640u));
  EXPECT_EQ(info.architecture(), "MODEL_KIND_CNN width=8 depth=2");
  std::uint64_t params = 0;
  for (const v1::LayerInfo& l : info.layers()) params += l.parameter_count();
  EXPECT_EQ(params, info.parameter_count());  // no parameter outside a counted layer
}

TEST(ModelZoo, LeNet5AndTheMlpCountTheirLayersByHand) {
  const v1::ModelInfo lenet = Describe(v1::MODEL_KIND_LENET5);
  EXPECT_EQ(lenet.parameter_count(), 61706u);
  // conv1 6·28·28·25, conv2 16·10·10·150, then 400·120, 120·84, 84·10.
  EXPECT_EQ(lenet.macs_per_sample(), 117600u + 240000u + 48000u + 10080u + 840u);
  EXPECT_EQ(lenet.architecture(), "MODEL_KIND_LENET5");
  const v1::ModelInfo mlp = Describe(v1::MODEL_KIND_MLP);
  EXPECT_EQ(mlp.parameter_count(), 784u * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
  EXPECT_EQ(mlp.macs_per_sample(), 784u * 256 + 256 * 256 + 256 * 10);
  EXPECT_THAT(LayerNames(mlp), ElementsAre("fc1", "fc2", "out"));
}

// The residual and depthwise-separable nets: their convolutions are all counted (the depthwise
// ones per group), and the zoo spans 10⁴ to 10⁷ parameters.
TEST(ModelZoo, ResidualAndSeparableNetsCountEveryConvolutionAndTheZooSpansThreeDecades) {
  const v1::ModelInfo resnet = Describe(v1::MODEL_KIND_RESNET);
  EXPECT_THAT(LayerNames(resnet), ElementsAre("stem", "stage1.block0.conv1", "stage1.block0.conv2",
                                              "stage2.block0.conv1", "stage2.block0.conv2",
                                              "stage2.block0.proj", "stage3.block0.conv1",
                                              "stage3.block0.conv2", "stage3.block0.proj", "fc"));
  // Stage 2 starts with stride 2: 32 channels on 14 × 14 from 16 channels, 3 × 3.
  EXPECT_EQ(resnet.layers(3).macs_per_sample(), 32u * 14 * 14 * 16 * 9);
  const v1::ModelInfo mobile = Describe(v1::MODEL_KIND_MOBILENET);
  // block0: depthwise 3×3 over 32 channels at stride 2 (14 × 14), then 1×1 32 → 64.
  ASSERT_GE(mobile.layers_size(), 3);
  EXPECT_EQ(mobile.layers(1).name(), "block0.depthwise");
  EXPECT_EQ(mobile.layers(1).macs_per_sample(), 32u * 14 * 14 * 9);
  EXPECT_EQ(mobile.layers(2).macs_per_sample(), 64u * 14 * 14 * 32);
  const v1::ModelInfo smallest = Describe(v1::MODEL_KIND_MLP, Shape(16, 1));
  const v1::ModelInfo largest = Describe(v1::MODEL_KIND_RESNET, Shape(128, 2));
  EXPECT_LT(smallest.parameter_count(), 20000u);
  EXPECT_GT(largest.parameter_count(), 10000000u);
  std::printf(
      "zoo: resnet %lu params %lu MACs, mobilenet %lu params %lu MACs, "
      "mlp 16x1 %lu params, resnet 128x2 %lu params %lu MACs\n",
      resnet.parameter_count(), resnet.macs_per_sample(), mobile.parameter_count(),
      mobile.macs_per_sample(), smallest.parameter_count(), largest.parameter_count(),
      largest.macs_per_sample());
}

// Every image architecture gives logits for every class and learns a fixed batch.
TEST(ModelZoo, EveryImageModelTrains) {
  const LoadedDataset ds = Images();
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({8, 1, 28, 28});
  const torch::Tensor y = torch::arange(8, torch::kInt64) % 10;
  for (v1::ModelKind kind : {v1::MODEL_KIND_CNN, v1::MODEL_KIND_MLP, v1::MODEL_KIND_LENET5,
                             v1::MODEL_KIND_RESNET, v1::MODEL_KIND_MOBILENET}) {
    absl::StatusOr<std::shared_ptr<ClassifierImpl>> model = MakeModel(kind, ds);
    ASSERT_TRUE(model.ok()) << model.status();
    torch::optim::Adam opt((*model)->parameters(), torch::optim::AdamOptions(0.01));
    double first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      const torch::Tensor logits = (*model)->forward(ModelInput{x, {}});
      ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{8, 10})) << v1::ModelKind_Name(kind);
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_LT(last, first / 2) << v1::ModelKind_Name(kind);
  }
}

TEST(ModelZoo, RefusesShapesThatDoNotFitNamingTheField) {
  EXPECT_TRUE(ValidateModelShape(v1::MODEL_KIND_CNN, Shape(16, 4)).ok());
  absl::Status s = ValidateModelShape(v1::MODEL_KIND_CNN, Shape(8, 5));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("config.model_shape.depth must be at most 4"));
  s = ValidateModelShape(v1::MODEL_KIND_RESNET, Shape(513, 1));
  EXPECT_THAT(std::string(s.message()), HasSubstr("config.model_shape.width must be at most 512"));
  s = ValidateModelShape(v1::MODEL_KIND_LENET5, Shape(8, 0));
  EXPECT_THAT(std::string(s.message()), HasSubstr("MODEL_KIND_LENET5 has a fixed shape"));
  s = ValidateModelShape(static_cast<v1::ModelKind>(99), {});
  EXPECT_THAT(std::string(s.message()), HasSubstr("config.model_kind: unknown model kind 99"));
  LoadedDataset text;
  text.dataset = v1::DATASET_SPAM_ASSASSIN;
  text.label_names = {"ham", "spam"};
  text.vocabulary_size = 5;
  EXPECT_THAT(std::string(MakeModel(v1::MODEL_KIND_RESNET, text).status().message()),
              HasSubstr("MODEL_KIND_RESNET needs an image dataset"));
  EXPECT_EQ(ArchitectureName(v1::MODEL_KIND_MOBILENET, Shape(0, 3)),
            "MODEL_KIND_MOBILENET width=32 depth=3");
}

// A tiny text dataset: mails of 3, 300 and 0 tokens over a vocabulary of 50 (the Transformer reads
// a start token and at most 255 of them).
LoadedDataset Text() {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.label_names = {"ham", "spam"};
  ds.vocabulary_size = 50;
  ds.train.offsets = {0, 3, 303, 303};
  for (int i = 0; i < 303; ++i) ds.train.tokens.push_back(1 + i % 49);
  ds.train.labels = {0, 1, 0};
  ds.mean_tokens_per_sample = 101;
  return ds;
}

TEST(ModelZoo, TheBagOfWordsTakesAnEmbeddingWidthAndCountsItsTokens) {
  const LoadedDataset ds = Text();
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> bag =
      MakeModel(v1::MODEL_KIND_BAG_OF_WORDS, ds, Shape(16, 0));
  ASSERT_TRUE(bag.ok()) << bag.status();
  const v1::ModelInfo info = DescribeModel(**bag, v1::MODEL_KIND_BAG_OF_WORDS, Shape(16, 0), ds);
  EXPECT_EQ(info.parameter_count(), 50u * 16 + 17 * 2);
  EXPECT_EQ(info.macs_per_sample(), 101u * 16 + 16 * 2);
  EXPECT_EQ(info.architecture(), "MODEL_KIND_BAG_OF_WORDS width=16");
  EXPECT_EQ((*bag)->embedding_dim(), 16);
  EXPECT_TRUE((*bag)->ExplainsTokens());
  EXPECT_THAT(std::string(ValidateModelShape(v1::MODEL_KIND_BAG_OF_WORDS, Shape(16, 2)).message()),
              HasSubstr("config.model_shape.depth: MODEL_KIND_BAG_OF_WORDS has no depth"));
}

// Attention's MACs grow with the square of the length: the mean over the mails as they are cut
// (1 + 3, 1 + 255 and 1 + 0 tokens), not the square of the mean length.
TEST(ModelZoo, TheTransformerCountsAttentionOverTheMailsAsItReadsThem) {
  const LoadedDataset ds = Text();
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> model =
      MakeModel(v1::MODEL_KIND_TRANSFORMER, ds, Shape(8, 1));
  ASSERT_TRUE(model.ok()) << model.status();
  const v1::ModelInfo info = DescribeModel(**model, v1::MODEL_KIND_TRANSFORMER, Shape(8, 1), ds);
  EXPECT_THAT(LayerNames(info),
              ElementsAre("embedding", "layer0.attention", "layer0.feedforward", "fc"));
  std::uint64_t params = 0;
  for (const v1::LayerInfo& l : info.layers()) params += l.parameter_count();
  EXPECT_EQ(params, info.parameter_count());
  const double length = (4.0 + 256 + 1) / 3;
  const double square = (16.0 + 256 * 256 + 1) / 3;
  EXPECT_NEAR(static_cast<double>(info.layers(1).macs_per_sample()),
              4 * length * 64 + 2 * square * 8, 1);
  EXPECT_FALSE((*model)->ExplainsTokens());
  EXPECT_EQ(info.architecture(), "MODEL_KIND_TRANSFORMER width=8 depth=1");
  EXPECT_THAT(std::string(ValidateModelShape(v1::MODEL_KIND_TRANSFORMER, Shape(10, 1)).message()),
              HasSubstr("multiple of 4"));
}

// Both text models learn a fixed batch, the empty mail and the one past the cut included, and a
// mail's logits do not depend on the batch it is padded in.
TEST(ModelZoo, EveryTextModelTrainsAndPaddingDoesNotLeak) {
  const LoadedDataset ds = Text();
  torch::manual_seed(5);
  const ModelInput all{torch::tensor(ds.train.tokens, torch::kInt64),
                       torch::tensor(std::vector<std::int64_t>{0, 3, 303}, torch::kInt64)};
  const torch::Tensor y = torch::tensor(std::vector<std::int64_t>{0, 1, 0}, torch::kInt64);
  for (v1::ModelKind kind : {v1::MODEL_KIND_BAG_OF_WORDS, v1::MODEL_KIND_TRANSFORMER}) {
    absl::StatusOr<std::shared_ptr<ClassifierImpl>> model = MakeModel(kind, ds);
    ASSERT_TRUE(model.ok()) << model.status();
    torch::optim::Adam opt((*model)->parameters(), torch::optim::AdamOptions(0.01));
    double first = 0, last = 0;
    for (int step = 0; step < 30; ++step) {
      opt.zero_grad();
      const torch::Tensor logits = (*model)->forward(all);
      ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{3, 2})) << v1::ModelKind_Name(kind);
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_LT(last, first / 2) << v1::ModelKind_Name(kind);
    (*model)->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor together = (*model)->forward(all);
    const ModelInput first_mail{torch::tensor(std::vector<std::int64_t>{1, 2, 3}, torch::kInt64),
                                torch::zeros({1}, torch::kInt64)};
    const torch::Tensor alone = (*model)->forward(first_mail);
    EXPECT_TRUE(torch::allclose(together[0], alone[0], 1e-4, 1e-5)) << v1::ModelKind_Name(kind);
  }
}

}  // namespace
}  // namespace greenloop::trainer
