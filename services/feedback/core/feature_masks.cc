#include "services/feedback/core/feature_masks.h"

#include <algorithm>
#include <set>

#include "fmt/format.h"

namespace greenloop::feedback {

namespace {
constexpr std::uint32_t kMaxCells = 1024;
}  // namespace

bool IsFeatureQuestion(v1::QuestionKind kind) {
  return kind == v1::QUESTION_KIND_FEATURE_MASK || kind == v1::QUESTION_KIND_FEATURE_RULE;
}

absl::Status ValidateFeatureGrid(const v1::CampaignSpec& spec) {
  const v1::FeatureGrid& g = spec.feature_grid();
  if (!IsFeatureQuestion(spec.question_kind())) {
    if (spec.has_feature_grid()) {
      return absl::InvalidArgumentError(
          "spec.feature_grid is only for QUESTION_KIND_FEATURE_MASK and "
          "QUESTION_KIND_FEATURE_RULE");
    }
    return absl::OkStatus();
  }
  if (g.rows() == 0 || g.cols() == 0 ||
      static_cast<std::uint64_t>(g.rows()) * g.cols() > kMaxCells) {
    return absl::InvalidArgumentError(fmt::format(
        "spec.feature_grid {}×{} must have at least one row and column and at most {} cells",
        g.rows(), g.cols(), kMaxCells));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::FeatureMask> CanonicalMask(const v1::CampaignSpec& spec,
                                              const v1::FeatureMask& mask, std::string_view field) {
  const std::uint32_t cells = spec.feature_grid().rows() * spec.feature_grid().cols();
  std::set<std::uint32_t> seen;
  for (int i = 0; i < mask.irrelevant_cells_size(); ++i) {
    const std::uint32_t cell = mask.irrelevant_cells(i);
    if (cell >= cells) {
      return absl::InvalidArgumentError(
          fmt::format("{}.irrelevant_cells[{}] = {} is outside the {}×{} grid (0..{})", field, i,
                      cell, spec.feature_grid().rows(), spec.feature_grid().cols(), cells - 1));
    }
    if (!seen.insert(cell).second) {
      return absl::InvalidArgumentError(
          fmt::format("{}.irrelevant_cells[{}]: cell {} appears twice", field, i, cell));
    }
  }
  if (seen.empty() && spec.question_kind() == v1::QUESTION_KIND_FEATURE_RULE) {
    return absl::InvalidArgumentError(fmt::format(
        "{}.irrelevant_cells is empty: a rule must name at least one cell (skip the item "
        "instead)",
        field));
  }
  v1::FeatureMask out;
  for (std::uint32_t cell : seen) out.add_irrelevant_cells(cell);
  return out;
}

int MaskCategory(const v1::FeatureMask& mask) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the cells' little-endian bytes
  for (std::uint32_t cell : mask.irrelevant_cells()) {
    for (int b = 0; b < 4; ++b) {
      h ^= (cell >> (8 * b)) & 0xFF;
      h *= 0x100000001b3ULL;
    }
  }
  h ^= static_cast<std::uint64_t>(mask.irrelevant_cells_size());
  h *= 0x100000001b3ULL;
  return static_cast<int>((h ^ (h >> 32)) & 0x7FFFFFFF);
}

MaskConsensus DecideMask(const std::vector<WeightedMask>& masks) {
  double total = 0;
  std::map<std::uint32_t, double> marked;
  for (const WeightedMask& m : masks) {
    total += m.weight;
    for (std::uint32_t cell : m.cells) marked[cell] += m.weight;
  }
  MaskConsensus out;
  if (marked.empty() || total <= 0) return out;
  double agreement = 0;
  for (const auto& [cell, weight] : marked) {
    const bool in = weight >= 0.5 * total;
    if (in) out.mask.add_irrelevant_cells(cell);
    agreement += (in ? weight : total - weight) / total;
  }
  out.confidence = agreement / static_cast<double>(marked.size());
  return out;
}

std::string CellsText(const v1::FeatureMask& mask) {
  std::string out = "{";
  for (int i = 0; i < mask.irrelevant_cells_size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(mask.irrelevant_cells(i));
  }
  return out + "}";
}

std::vector<std::uint32_t> ParseCells(std::string_view text) {
  std::vector<std::uint32_t> out;
  std::uint64_t value = 0;
  bool digits = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      value = std::min<std::uint64_t>(value * 10 + static_cast<std::uint64_t>(c - '0'), 1u << 31);
      digits = true;
    } else {
      if (digits) out.push_back(static_cast<std::uint32_t>(value));
      value = 0;
      digits = false;
    }
  }
  if (digits) out.push_back(static_cast<std::uint32_t>(value));
  return out;
}

}  // namespace greenloop::feedback
