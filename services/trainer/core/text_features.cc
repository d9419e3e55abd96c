#include "services/trainer/core/text_features.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace greenloop::trainer {
namespace {

// Each token's mail length, [T] float.
torch::Tensor TokenLengths(const ModelInput& input, const torch::Tensor& samples) {
  const std::int64_t total = input.values.size(0);
  const torch::Tensor ends =
      torch::cat({input.offsets.slice(0, 1), torch::full({1}, total, torch::kInt64)});
  return (ends - input.offsets).index_select(0, samples).to(torch::kFloat32);
}

// Contributions [N, classes] minus their mean over the classes: softmax sees only differences.
torch::Tensor Centred(const torch::Tensor& contributions) {
  return contributions - contributions.mean(1, /*keepdim=*/true);
}

}  // namespace

TokenMasks::TokenMasks(const LoadedDataset& dataset) : classes_(dataset.num_classes()) {
  if (dataset.vocabulary.empty()) return;
  ids_.reserve(dataset.vocabulary.size());
  for (std::size_t i = 1; i < dataset.vocabulary.size(); ++i) {
    ids_.emplace(dataset.vocabulary[i], static_cast<std::int64_t>(i));
  }
  class_masks_ =
      torch::zeros({classes_, static_cast<std::int64_t>(dataset.vocabulary.size())}, torch::kBool);
}

absl::Status TokenMasks::AddRule(const v1::FeatureRule& rule, std::string_view field,
                                 std::optional<std::int64_t> position) {
  if (!class_masks_.defined()) {
    return absl::InvalidArgumentError(fmt::format("{}: only text datasets have words", field));
  }
  if (rule.irrelevant_tokens().empty()) {
    return absl::InvalidArgumentError(fmt::format("{}.irrelevant_tokens is empty", field));
  }
  if (rule.has_label() && rule.label() >= static_cast<std::uint32_t>(classes_)) {
    return absl::InvalidArgumentError(
        fmt::format("{}.label {} is not one of the {} classes", field, rule.label(), classes_));
  }
  std::vector<std::int64_t> ids;
  for (int i = 0; i < rule.irrelevant_tokens_size(); ++i) {
    const auto it = ids_.find(rule.irrelevant_tokens(i));
    if (it == ids_.end()) {
      return absl::InvalidArgumentError(
          fmt::format("{}.irrelevant_tokens[{}] = '{}' is not in the run's vocabulary", field, i,
                      rule.irrelevant_tokens(i)));
    }
    ids.push_back(it->second);
  }
  const torch::Tensor index = torch::tensor(ids, torch::kInt64);
  if (position) {
    torch::Tensor& words = sample_words_[*position];
    words = words.defined() ? torch::cat({words, index}) : index;
  } else if (rule.has_label()) {
    class_masks_[rule.label()].index_fill_(0, index, true);
  } else {
    class_masks_.index_fill_(1, index, true);
  }
  ++rules_;
  return absl::OkStatus();
}

TokenMasks::Batch TokenMasks::ForInput(const ModelInput& input, const torch::Tensor& labels,
                                       std::span<const std::int64_t> positions) const {
  if (empty()) return {};
  const torch::Tensor samples = TokenSamples(input);
  Batch batch;
  batch.masked = class_masks_.index({labels.index_select(0, samples), input.values});
  const std::int64_t total = input.values.size(0);
  for (std::size_t i = 0; i < positions.size() && !sample_words_.empty(); ++i) {
    const auto it = sample_words_.find(positions[i]);
    if (it == sample_words_.end()) continue;
    const auto mail = static_cast<std::int64_t>(i);
    const std::int64_t begin = input.offsets[mail].item<std::int64_t>();
    const std::int64_t end =
        mail + 1 < input.offsets.size(0) ? input.offsets[mail + 1].item<std::int64_t>() : total;
    torch::Tensor span = batch.masked.slice(0, begin, end);
    span.logical_or_(torch::isin(input.values.slice(0, begin, end), it->second));
  }
  batch.covered = torch::zeros({labels.size(0)}, torch::kFloat32)
                      .index_add_(0, samples, batch.masked.to(torch::kFloat32))
                      .gt(0)
                      .sum()
                      .item<std::int64_t>();
  if (batch.covered == 0) return {};
  return batch;
}

std::vector<std::int64_t> TokenMasks::Ids(const v1::FeatureRule& rule) const {
  std::vector<std::int64_t> ids;
  for (const std::string& word : rule.irrelevant_tokens()) {
    if (const auto it = ids_.find(word); it != ids_.end()) ids.push_back(it->second);
  }
  return ids;
}

void ForgetWords(ClassifierImpl& model, torch::optim::Adam* optimizer,
                 const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  const torch::Tensor index = torch::tensor(ids, torch::kInt64);
  const torch::Tensor weight = model.ForgetTokens(index);
  if (!weight.defined() || optimizer == nullptr) return;
  auto& states = optimizer->state();
  const auto it = states.find(c10::guts::to_string(weight.unsafeGetTensorImpl()));
  if (it == states.end()) return;  // no step yet: no moments
  auto& adam = static_cast<torch::optim::AdamParamState&>(*it->second);
  torch::NoGradGuard no_grad;
  adam.exp_avg().index_fill_(0, index, 0.0);
  adam.exp_avg_sq().index_fill_(0, index, 0.0);
}

torch::Tensor TokenSamples(const ModelInput& input) {
  const std::int64_t total = input.values.size(0);
  const std::int64_t mails = input.offsets.size(0);
  const torch::Tensor ends =
      torch::cat({input.offsets.slice(0, 1), torch::full({1}, total, torch::kInt64)});
  return torch::repeat_interleave(torch::arange(mails, torch::kInt64), ends - input.offsets);
}

ModelInput DropTokens(const ModelInput& input, const torch::Tensor& masked) {
  const torch::Tensor samples = TokenSamples(input);
  const torch::Tensor kept = masked.logical_not();
  const torch::Tensor lengths = torch::zeros({input.offsets.size(0)}, torch::kInt64)
                                    .index_add_(0, samples, kept.to(torch::kInt64));
  ModelInput out;
  out.values = input.values.masked_select(kept);
  out.offsets = torch::cat(
      {torch::zeros({1}, torch::kInt64), lengths.cumsum(0).slice(0, 0, lengths.size(0) - 1)});
  return out;
}

torch::Tensor ReplaceTokens(const torch::Tensor& values, const torch::Tensor& masked) {
  const torch::Tensor pool = values.masked_select(masked.logical_not());
  if (pool.numel() == 0) return torch::where(masked, torch::zeros_like(values), values);
  const torch::Tensor donors =
      pool.index_select(0, torch::randint(pool.size(0), {values.size(0)}, torch::kInt64));
  return torch::where(masked, donors, values);
}

torch::Tensor ContributionPenalty(ClassifierImpl& model, const ModelInput& input,
                                  const torch::Tensor& masked) {
  const torch::Tensor at = masked.nonzero().squeeze(1);
  if (at.numel() == 0) return torch::zeros({}, torch::kFloat32);
  const torch::Tensor lengths = TokenLengths(input, TokenSamples(input).index_select(0, at));
  // Through the masked words' embedding rows only: the output weights, which every word shares,
  // are held fixed, so the penalty cannot be met by shrinking what the other words say.
  const torch::Tensor contributions =
      Centred(model.TokenContributions(input.values.index_select(0, at), /*rows_only=*/true));
  return (contributions / lengths.unsqueeze(1)).pow(2).sum();
}

std::vector<std::vector<std::string>> TopTokens(ClassifierImpl& model, const LoadedDataset& dataset,
                                                const std::vector<std::int64_t>& labels,
                                                int per_class) {
  const int classes = dataset.num_classes();
  const auto vocabulary = static_cast<std::int64_t>(dataset.vocabulary.size());
  const Split& split = dataset.train;
  // Per class and word: the mails that hold it (once per mail), and its share of their bags
  // summed (what the mean pooling gives it).
  std::vector<std::vector<std::int32_t>> holders(static_cast<std::size_t>(classes),
                                                 std::vector<std::int32_t>(vocabulary, 0));
  std::vector<std::vector<double>> weight(static_cast<std::size_t>(classes),
                                          std::vector<double>(vocabulary, 0.0));
  std::vector<std::int64_t> mails(static_cast<std::size_t>(classes), 0);
  std::vector<std::int64_t> last(static_cast<std::size_t>(vocabulary), -1);
  for (std::size_t i = 0; i < split.size() && i < labels.size(); ++i) {
    const auto c = static_cast<std::size_t>(labels[i]);
    ++mails[c];
    const double share = 1.0 / static_cast<double>(split.offsets[i + 1] - split.offsets[i]);
    for (std::int64_t p = split.offsets[i]; p < split.offsets[i + 1]; ++p) {
      const auto t = static_cast<std::size_t>(split.tokens[static_cast<std::size_t>(p)]);
      weight[c][t] += share;
      if (last[t] == static_cast<std::int64_t>(i)) continue;
      last[t] = static_cast<std::int64_t>(i);
      ++holders[c][t];
    }
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor score =
      Centred(model.TokenContributions(torch::arange(vocabulary, torch::kInt64))).contiguous();
  const float* s = score.data_ptr<float>();
  std::vector<std::vector<std::string>> out(static_cast<std::size_t>(classes));
  for (int c = 0; c < classes; ++c) {
    const auto cls = static_cast<std::size_t>(c);
    const double floor = std::max(3.0, 0.02 * static_cast<double>(mails[cls]));
    std::vector<std::int64_t> candidates;
    for (std::int64_t t = 1; t < vocabulary; ++t) {
      if (holders[cls][static_cast<std::size_t>(t)] >= floor) candidates.push_back(t);
    }
    const auto n = std::min<std::size_t>(candidates.size(), static_cast<std::size_t>(per_class));
    // What the word adds to the class's logit over the class's mails: its contribution times
    // its summed share of their bags.
    auto pull = [&](std::int64_t t) {
      return s[t * classes + c] * weight[cls][static_cast<std::size_t>(t)];
    };
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(n),
                      candidates.end(),
                      [&](std::int64_t a, std::int64_t b) { return pull(a) > pull(b); });
    for (std::size_t i = 0; i < n; ++i) {
      out[cls].push_back(dataset.vocabulary[static_cast<std::size_t>(candidates[i])]);
    }
  }
  return out;
}

std::vector<std::string> MailTopTokens(ClassifierImpl& model, const LoadedDataset& dataset,
                                       std::size_t position, std::int64_t label, int count) {
  const Split& split = dataset.train;
  std::unordered_map<std::int64_t, double> share;  // word → its share of the mail's bag
  const std::int64_t begin = split.offsets[position];
  const std::int64_t end = split.offsets[position + 1];
  for (std::int64_t p = begin; p < end; ++p) {
    const std::int64_t t = split.tokens[static_cast<std::size_t>(p)];
    if (t != 0) share[t] += 1.0 / static_cast<double>(end - begin);
  }
  std::vector<std::int64_t> ids;
  ids.reserve(share.size());
  for (const auto& [t, _] : share) ids.push_back(t);
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) return {};
  torch::NoGradGuard no_grad;
  const torch::Tensor score =
      Centred(model.TokenContributions(torch::tensor(ids, torch::kInt64))).contiguous();
  const float* s = score.data_ptr<float>();
  const int classes = dataset.num_classes();
  std::vector<std::size_t> order(ids.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto pull = [&](std::size_t i) {
    return s[static_cast<std::int64_t>(i) * classes + label] * share[ids[i]];
  };
  const auto n = std::min<std::size_t>(order.size(), static_cast<std::size_t>(count));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](std::size_t a, std::size_t b) { return pull(a) > pull(b); });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(dataset.vocabulary[static_cast<std::size_t>(ids[order[i]])]);
  }
  return out;
}

std::optional<double> DecoyContributionShare(ClassifierImpl& model, const Split& split) {
  if (split.decoy_cells.empty() || split.size() == 0) return std::nullopt;
  torch::NoGradGuard no_grad;
  const torch::Tensor values = torch::tensor(split.tokens, torch::kInt64);
  const torch::Tensor magnitude =
      Centred(model.TokenContributions(values)).abs().sum(1).contiguous();
  const float* m = magnitude.data_ptr<float>();
  double share_sum = 0;
  for (std::size_t i = 0; i < split.size(); ++i) {
    double decoy = 0, total = 0;
    for (std::int64_t p = split.offsets[i]; p < split.offsets[i + 1]; ++p) {
      const float v = m[p];
      total += v;
      if (split.tokens[static_cast<std::size_t>(p)] == split.decoy_cells[i]) decoy += v;
    }
    share_sum += total > 0 ? decoy / total : 0.0;
  }
  return share_sum / static_cast<double>(split.size());
}

}  // namespace greenloop::trainer
