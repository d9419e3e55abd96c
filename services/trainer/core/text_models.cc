#include "services/trainer/core/text_models.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <utility>

namespace greenloop::trainer {
namespace {

class BagOfWordsImpl final : public ClassifierImpl {
 public:
  BagOfWordsImpl(std::int64_t vocabulary, int classes, int width)
      : bag_(register_module(
            "bag", torch::nn::EmbeddingBag(
                       torch::nn::EmbeddingBagOptions(vocabulary, width).mode(torch::kMean)))),
        fc_(register_module("fc", torch::nn::Linear(width, classes))) {}

  torch::Tensor forward(const ModelInput& input) override {
    return fc_->forward(bag_->forward(input.values, input.offsets));
  }

  bool ExplainsTokens() const override { return true; }

  std::int64_t embedding_dim() const override { return bag_->options.embedding_dim(); }

  torch::Tensor ForgetTokens(const torch::Tensor& token_ids) override {
    torch::NoGradGuard no_grad;
    bag_->weight.index_fill_(0, token_ids, 0.0);
    return bag_->weight;
  }

  torch::Tensor TokenContributions(const torch::Tensor& token_ids, bool rows_only) override {
    const torch::Tensor out = rows_only ? fc_->weight.detach() : fc_->weight;
    return torch::nn::functional::linear(bag_->weight.index_select(0, token_ids), out);
  }

 private:
  torch::nn::EmbeddingBag bag_;
  torch::nn::Linear fc_;
};

// A start token and each mail's first kTransformerTokens − 1 ids, padded to the batch's longest,
// through an encoder; the mean over the tokens that are not padding feeds the classifier.
class TransformerImpl final : public ClassifierImpl {
 public:
  TransformerImpl(std::int64_t vocabulary, int classes, int width, int depth)
      : pad_id_(vocabulary),
        start_id_(vocabulary + 1),
        tokens_(register_module(
            "tokens",
            torch::nn::Embedding(
                torch::nn::EmbeddingOptions(vocabulary + 2, width).padding_idx(pad_id_)))),
        positions_(
            register_parameter("positions", torch::randn({kTransformerTokens, 1, width}) * 0.02)),
        encoder_(register_module(
            "encoder", torch::nn::TransformerEncoder(
                           torch::nn::TransformerEncoderLayer(
                               torch::nn::TransformerEncoderLayerOptions(width, kTransformerHeads)
                                   .dim_feedforward(2 * width)
                                   .dropout(0.1)),
                           depth))),
        fc_(register_module("fc", torch::nn::Linear(width, classes))) {}

  torch::Tensor forward(const ModelInput& input) override {
    auto [ids, padding] = Padded(input);
    // [S, B, width], as LibTorch's encoder takes it.
    torch::Tensor x = tokens_->forward(ids.t()) + positions_.slice(0, 0, ids.size(1));
    x = encoder_->forward(x, {}, padding);
    const torch::Tensor keep = padding.logical_not().t().unsqueeze(2).to(x.dtype());
    return fc_->forward((x * keep).sum(0) / keep.sum(0));
  }

 private:
  // The batch as ids [B, S] and its padding mask [B, S] (true: padding), S being the longest
  // (cut) mail plus the start token.
  std::pair<torch::Tensor, torch::Tensor> Padded(const ModelInput& input) const {
    const std::int64_t batch = input.offsets.size(0);
    const std::int64_t total = input.values.size(0);
    const torch::Tensor ends =
        torch::cat({input.offsets.slice(0, 1), torch::full({1}, total, torch::kInt64)});
    const torch::Tensor lengths = (ends - input.offsets).clamp_max(kTransformerTokens - 1);
    const std::int64_t longest = batch == 0 ? 0 : lengths.max().item<std::int64_t>();
    torch::Tensor ids = torch::full({batch, longest + 1}, pad_id_, torch::kInt64);
    ids.select(1, 0).fill_(start_id_);
    if (total > 0) {
      // Each token's mail and its place in the mail; tokens past the cut are dropped.
      const torch::Tensor mail =
          torch::repeat_interleave(torch::arange(batch, torch::kInt64), ends - input.offsets);
      const torch::Tensor place = torch::arange(total, torch::kInt64) - input.offsets.index({mail});
      const torch::Tensor kept = place < kTransformerTokens - 1;
      ids.index_put_({mail.index({kept}), place.index({kept}) + 1}, input.values.index({kept}));
    }
    return {ids, ids.eq(pad_id_)};
  }

  std::int64_t pad_id_;
  std::int64_t start_id_;
  torch::nn::Embedding tokens_;
  torch::Tensor positions_;
  torch::nn::TransformerEncoder encoder_;
  torch::nn::Linear fc_;
};

v1::LayerInfo Layer(std::string name, std::uint64_t parameters, double macs) {
  v1::LayerInfo l;
  l.set_name(std::move(name));
  l.set_parameter_count(parameters);
  l.set_macs_per_sample(static_cast<std::uint64_t>(macs + 0.5));
  return l;
}

// The mean over `split`'s samples of their length as the Transformer reads it (start token
// included) and of its square.
std::pair<double, double> MeanReadLength(const Split& split) {
  if (split.size() == 0) return {1, 1};
  double sum = 0;
  double squares = 0;
  for (std::size_t i = 0; i < split.size(); ++i) {
    const double n = 1 + static_cast<double>(std::min<std::int64_t>(
                             split.offsets[i + 1] - split.offsets[i], kTransformerTokens - 1));
    sum += n;
    squares += n * n;
  }
  const auto count = static_cast<double>(split.size());
  return {sum / count, squares / count};
}

}  // namespace

std::shared_ptr<ClassifierImpl> MakeTextModel(v1::ModelKind kind, std::int64_t vocabulary,
                                              int classes, int width, int depth) {
  if (kind == v1::MODEL_KIND_TRANSFORMER) {
    return std::make_shared<TransformerImpl>(vocabulary, classes, width, depth);
  }
  return std::make_shared<BagOfWordsImpl>(vocabulary, classes, width);
}

LayerTally TextModelLayers(v1::ModelKind kind, std::int64_t vocabulary, int classes, int width,
                           int depth, double mean_tokens, const Split& split) {
  const auto d = static_cast<double>(width);
  const auto c = static_cast<std::uint64_t>(classes);
  const auto w = static_cast<std::uint64_t>(width);
  LayerTally layers;
  if (kind != v1::MODEL_KIND_TRANSFORMER) {
    // One width-vector added per token (the mean's scaling folded in).
    layers.push_back(Layer("bag", static_cast<std::uint64_t>(vocabulary) * w, mean_tokens * d));
    layers.push_back(Layer("fc", (w + 1) * c, d * static_cast<double>(classes)));
    return layers;
  }
  const auto [length, square] = MeanReadLength(split);
  const std::uint64_t embedding = (static_cast<std::uint64_t>(vocabulary) + 2) * w;
  layers.push_back(Layer("embedding", embedding + kTransformerTokens * w, length * d));
  for (int i = 0; i < depth; ++i) {
    // q, k, v and output projections (4·L·d²) and the scores and their weighted sum (2·L²·d);
    // then the feed-forward's two linear layers (2·L·d·2d). Each sub-layer's norm goes with it.
    layers.push_back(Layer(fmt::format("layer{}.attention", i), 4 * w * w + 4 * w + 2 * w,
                           4 * length * d * d + 2 * square * d));
    layers.push_back(Layer(fmt::format("layer{}.feedforward", i), 4 * w * w + 3 * w + 2 * w,
                           4 * length * d * d));
  }
  layers.push_back(Layer("fc", (w + 1) * c, length * d + d * static_cast<double>(classes)));
  return layers;
}

}  // namespace greenloop::trainer
