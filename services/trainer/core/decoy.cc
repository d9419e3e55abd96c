#include "services/trainer/core/decoy.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace greenloop::trainer {
namespace {

constexpr std::uint64_t kCornerSalt = 0xC0A7E5D1B2F39A17ULL;
constexpr std::uint64_t kShadeSalt = 0x5EED5A1D00DECAF5ULL;

// Paints one image's square in `corner` (0 top left, 1 top right, 2 bottom left, 3 bottom right)
// and returns the cell it covers.
std::int32_t Paint(std::uint8_t* image, int rows, int cols, int side, int corner,
                   std::uint8_t shade) {
  const int top = corner < 2 ? 0 : rows - side;
  const int left = corner % 2 == 0 ? 0 : cols - side;
  for (int r = top; r < top + side; ++r) {
    for (int c = left; c < left + side; ++c) image[r * cols + c] = shade;
  }
  const int grid_cols = cols / kFeatureCellPixels;
  return (top / kFeatureCellPixels) * grid_cols + left / kFeatureCellPixels;
}

// Plants the square in every image of `split`: the shade of the image's class when `tied`, of a
// random class otherwise.
void PlantSplit(Split& split, const LoadedDataset& dataset, int side, bool tied,
                std::uint64_t seed) {
  SeededRng corners(seed ^ kCornerSalt);
  SeededRng shades(seed ^ kShadeSalt);
  const auto pixels = static_cast<std::size_t>(dataset.image_pixels());
  const auto classes = static_cast<std::uint64_t>(dataset.num_classes());
  split.decoy_cells.resize(split.size());
  for (std::size_t i = 0; i < split.size(); ++i) {
    const int corner = static_cast<int>(corners.Below(4));
    const std::int64_t shade_class =
        tied ? split.clean_labels[i] : static_cast<std::int64_t>(shades.Below(classes));
    split.decoy_cells[i] = Paint(split.pixels.data() + i * pixels, dataset.image_rows,
                                 dataset.image_cols, side, corner, DecoyShade(shade_class));
  }
}

// Inserts `copies` of the planted word at random places of every mail of `split`: the word of the
// mail's class when `tied`, of a random class otherwise.
void PlantWords(Split& split, const std::vector<std::int64_t>& word_ids, int copies, bool tied,
                std::uint64_t seed) {
  SeededRng places(seed ^ kCornerSalt);
  SeededRng classes(seed ^ kShadeSalt);
  std::vector<std::int64_t> tokens;
  std::vector<std::int64_t> offsets = {0};
  tokens.reserve(split.tokens.size() + split.size() * static_cast<std::size_t>(copies));
  split.decoy_cells.resize(split.size());
  std::vector<std::int64_t> mail;
  for (std::size_t i = 0; i < split.size(); ++i) {
    const std::int64_t word_class =
        tied ? split.clean_labels[i] : static_cast<std::int64_t>(classes.Below(word_ids.size()));
    const std::int64_t word = word_ids[static_cast<std::size_t>(word_class)];
    mail.assign(split.tokens.begin() + split.offsets[i],
                split.tokens.begin() + split.offsets[i + 1]);
    for (int c = 0; c < copies; ++c) {
      const auto at = static_cast<std::ptrdiff_t>(places.Below(mail.size() + 1));
      mail.insert(mail.begin() + at, word);
    }
    tokens.insert(tokens.end(), mail.begin(), mail.end());
    offsets.push_back(static_cast<std::int64_t>(tokens.size()));
    split.decoy_cells[i] = static_cast<std::int32_t>(word);
  }
  split.tokens = std::move(tokens);
  split.offsets = std::move(offsets);
}

// The text decoy: each class's word joins the vocabulary (when the corpus lacks it) and is planted.
absl::Status PlantTextDecoy(const v1::Decoy& decoy, LoadedDataset& dataset, bool in_training) {
  const int copies = decoy.tokens_per_sample() == 0 ? kDecoyWordsPerSample
                                                    : static_cast<int>(decoy.tokens_per_sample());
  if (copies > 50) {
    return absl::InvalidArgumentError(
        fmt::format("config.decoy.tokens_per_sample must be 1 to 50, got {}", copies));
  }
  if (dataset.vocabulary.empty() ||
      dataset.vocabulary.size() != static_cast<std::size_t>(dataset.vocabulary_size)) {
    return absl::InvalidArgumentError("config.decoy: the dataset has neither images nor words");
  }
  std::vector<std::int64_t> ids;
  for (int c = 0; c < dataset.num_classes(); ++c) {
    const std::string word = DecoyWord(dataset, c);
    const auto found = std::find(dataset.vocabulary.begin(), dataset.vocabulary.end(), word);
    ids.push_back(static_cast<std::int64_t>(found - dataset.vocabulary.begin()));
    if (found == dataset.vocabulary.end()) dataset.vocabulary.push_back(word);
  }
  dataset.vocabulary_size = static_cast<std::int64_t>(dataset.vocabulary.size());
  if (in_training) {
    PlantWords(dataset.train, ids, copies, true, decoy.seed());
    if (dataset.train.size() > 0) {
      dataset.mean_tokens_per_sample = static_cast<double>(dataset.train.tokens.size()) /
                                       static_cast<double>(dataset.train.size());
    }
  }
  PlantWords(dataset.validation, ids, copies, false, decoy.seed() + 1);
  PlantWords(dataset.test, ids, copies, false, decoy.seed() + 2);
  return absl::OkStatus();
}

}  // namespace

std::string DecoyWord(const LoadedDataset& dataset, std::int64_t label) {
  return "qzx" + dataset.label_names[static_cast<std::size_t>(label)];
}

std::uint8_t DecoyShade(std::int64_t label) { return static_cast<std::uint8_t>(255 - 25 * label); }

absl::Status PlantDecoy(const v1::Decoy& decoy, LoadedDataset& dataset, bool in_training) {
  if (!decoy.enabled()) return absl::OkStatus();
  if (dataset.image_pixels() == 0) return PlantTextDecoy(decoy, dataset, in_training);
  const int side =
      decoy.patch_pixels() == 0 ? kFeatureCellPixels : static_cast<int>(decoy.patch_pixels());
  if (side > kFeatureCellPixels) {
    return absl::InvalidArgumentError(
        fmt::format("config.decoy.patch_pixels must be 1 to {}, got {}", kFeatureCellPixels, side));
  }
  if (dataset.image_rows % kFeatureCellPixels != 0 ||
      dataset.image_cols % kFeatureCellPixels != 0 || dataset.num_classes() > 11) {
    return absl::InvalidArgumentError(
        fmt::format("config.decoy: {}×{} images with {} classes do not fit the decoy",
                    dataset.image_rows, dataset.image_cols, dataset.num_classes()));
  }
  // Each split draws its own corners, so the validation images do not repeat the training ones.
  if (in_training) PlantSplit(dataset.train, dataset, side, true, decoy.seed());
  PlantSplit(dataset.validation, dataset, side, false, decoy.seed() + 1);
  PlantSplit(dataset.test, dataset, side, false, decoy.seed() + 2);
  return absl::OkStatus();
}

}  // namespace greenloop::trainer
