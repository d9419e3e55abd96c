// The planted decoy: where it goes, its shade in training and at test time, and bad specs.
#include "services/trainer/core/decoy.h"

#include <gtest/gtest.h>

#include <set>

namespace greenloop::trainer {
namespace {

Split BlankImages(std::size_t n) {
  Split split;
  split.pixels.assign(n * 28 * 28, 0);
  for (std::size_t i = 0; i < n; ++i) {
    split.labels.push_back(static_cast<std::int64_t>(i % 10));
    split.clean_labels.push_back(static_cast<std::int64_t>(i % 10));
    split.refs.push_back(i);
  }
  return split;
}

LoadedDataset Blank() {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = ds.image_cols = 28;
  for (int c = 0; c < 10; ++c) ds.label_names.push_back("c" + std::to_string(c));
  ds.train = BlankImages(400);
  ds.validation = BlankImages(100);
  ds.test = BlankImages(2000);
  return ds;
}

v1::Decoy Enabled(std::uint64_t seed = 3) {
  v1::Decoy d;
  d.set_enabled(true);
  d.set_seed(seed);
  return d;
}

// The square's shade, read back from the cell the split recorded; -1 when the cell holds pixels
// of two shades or not 16 painted pixels.
int ShadeAt(const Split& split, std::size_t i) {
  const int cell = split.decoy_cells[i];
  const int top = (cell / 7) * 4;
  const int left = (cell % 7) * 4;
  const std::uint8_t* image = split.pixels.data() + i * 784;
  const std::uint8_t shade = image[top * 28 + left];
  int painted = 0;
  for (int p = 0; p < 784; ++p) {
    const int r = p / 28;
    const int c = p % 28;
    const bool inside = r >= top && r < top + 4 && c >= left && c < left + 4;
    if (inside && image[p] != shade) return -1;
    if (image[p] != 0) ++painted;
  }
  return painted == 16 || shade == 0 ? shade : -1;
}

TEST(Decoy, TrainingSquaresSitInACornerWithTheShadeOfTheClass) {
  LoadedDataset ds = Blank();
  ASSERT_TRUE(PlantDecoy(Enabled(), ds).ok());
  ASSERT_EQ(ds.train.decoy_cells.size(), ds.train.size());
  std::set<int> corners;
  for (std::size_t i = 0; i < ds.train.size(); ++i) {
    corners.insert(ds.train.decoy_cells[i]);
    EXPECT_EQ(ShadeAt(ds.train, i), DecoyShade(ds.train.clean_labels[i])) << "image " << i;
  }
  EXPECT_EQ(corners, (std::set<int>{0, 6, 42, 48}));
  EXPECT_EQ(DecoyShade(0), 255);
  EXPECT_EQ(DecoyShade(9), 30);
}

TEST(Decoy, TestAndValidationShadesComeFromARandomClass) {
  LoadedDataset ds = Blank();
  ASSERT_TRUE(PlantDecoy(Enabled(), ds).ok());
  int tied = 0;
  std::set<int> shades;
  for (std::size_t i = 0; i < ds.test.size(); ++i) {
    const int shade = ShadeAt(ds.test, i);
    ASSERT_GE(shade, 0) << "image " << i;
    shades.insert(shade);
    if (shade == DecoyShade(ds.test.clean_labels[i])) ++tied;
  }
  EXPECT_EQ(shades.size(), 10u);
  EXPECT_NEAR(tied / 2000.0, 0.10, 0.04);  // chance, not the class
  EXPECT_EQ(ds.validation.decoy_cells.size(), ds.validation.size());
}

TEST(Decoy, IsDeterministicForASeedAndDiffersAcrossSeeds) {
  LoadedDataset a = Blank();
  LoadedDataset b = Blank();
  LoadedDataset c = Blank();
  ASSERT_TRUE(PlantDecoy(Enabled(3), a).ok());
  ASSERT_TRUE(PlantDecoy(Enabled(3), b).ok());
  ASSERT_TRUE(PlantDecoy(Enabled(4), c).ok());
  EXPECT_EQ(a.train.pixels, b.train.pixels);
  EXPECT_EQ(a.test.pixels, b.test.pixels);
  EXPECT_NE(a.train.decoy_cells, c.train.decoy_cells);
}

TEST(Decoy, WithoutTrainingTheTrainingImagesStayAsShipped) {
  LoadedDataset ds = Blank();
  ASSERT_TRUE(PlantDecoy(Enabled(), ds, /*in_training=*/false).ok());
  EXPECT_TRUE(ds.train.decoy_cells.empty());
  EXPECT_EQ(ds.train.pixels, Blank().train.pixels);
  LoadedDataset both = Blank();
  ASSERT_TRUE(PlantDecoy(Enabled(), both).ok());
  EXPECT_EQ(ds.test.pixels, both.test.pixels);  // the same test images as the other modes
  EXPECT_EQ(ds.validation.decoy_cells, both.validation.decoy_cells);
}

TEST(Decoy, DisabledLeavesTheImagesAlone) {
  LoadedDataset ds = Blank();
  ASSERT_TRUE(PlantDecoy(v1::Decoy(), ds).ok());
  EXPECT_TRUE(ds.train.decoy_cells.empty());
  EXPECT_EQ(ds.train.pixels, Blank().train.pixels);
}

TEST(Decoy, SmallerPatchesStayInTheirCorner) {
  LoadedDataset ds = Blank();
  v1::Decoy d = Enabled();
  d.set_patch_pixels(2);
  ASSERT_TRUE(PlantDecoy(d, ds).ok());
  for (std::size_t i = 0; i < 50; ++i) {
    int painted = 0;
    for (int p = 0; p < 784; ++p) painted += ds.train.pixels[i * 784 + p] != 0;
    EXPECT_EQ(painted, 4);
  }
}

// Mails of `n` words each (token ids 1..3), labels alternating ham/spam.
Split Mails(std::size_t count, int n) {
  Split split;
  split.offsets.push_back(0);
  for (std::size_t i = 0; i < count; ++i) {
    for (int w = 0; w < n; ++w) split.tokens.push_back(1 + (w % 3));
    split.offsets.push_back(static_cast<std::int64_t>(split.tokens.size()));
    split.labels.push_back(static_cast<std::int64_t>(i % 2));
    split.clean_labels.push_back(static_cast<std::int64_t>(i % 2));
    split.refs.push_back(i);
  }
  return split;
}

LoadedDataset Text() {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.label_names = {"ham", "spam"};
  ds.vocabulary = {"<unk>", "free", "money", "hello"};
  ds.vocabulary_size = 4;
  ds.train = Mails(200, 10);
  ds.validation = Mails(50, 10);
  ds.test = Mails(1000, 10);
  return ds;
}

// Counts of token `id` in mail `i`.
int CopiesIn(const Split& split, std::size_t i, std::int64_t id) {
  int n = 0;
  for (std::int64_t p = split.offsets[i]; p < split.offsets[i + 1]; ++p) {
    n += split.tokens[static_cast<std::size_t>(p)] == id;
  }
  return n;
}

TEST(Decoy, TextPlantsTheWordOfTheClassInTrainingAndOfARandomClassAtTest) {
  LoadedDataset ds = Text();
  v1::Decoy d = Enabled();
  d.set_tokens_per_sample(3);
  ASSERT_TRUE(PlantDecoy(d, ds).ok());
  ASSERT_EQ(ds.vocabulary.size(), 6u);
  EXPECT_EQ(ds.vocabulary_size, 6);
  EXPECT_EQ(ds.vocabulary[4], DecoyWord(ds, 0));
  EXPECT_EQ(ds.vocabulary[5], "qzxspam");
  EXPECT_DOUBLE_EQ(ds.mean_tokens_per_sample, 13.0);
  std::set<std::int64_t> first_places;
  for (std::size_t i = 0; i < ds.train.size(); ++i) {
    const std::int64_t word = 4 + ds.train.clean_labels[i];
    EXPECT_EQ(ds.train.decoy_cells[i], word);
    EXPECT_EQ(CopiesIn(ds.train, i, word), 3);
    EXPECT_EQ(CopiesIn(ds.train, i, 9 - word), 0);  // never the other class's word
    EXPECT_EQ(ds.train.offsets[i + 1] - ds.train.offsets[i], 13);
    for (std::int64_t p = ds.train.offsets[i]; p < ds.train.offsets[i + 1]; ++p) {
      if (ds.train.tokens[static_cast<std::size_t>(p)] == word) {
        first_places.insert(p - ds.train.offsets[i]);
        break;
      }
    }
  }
  EXPECT_GT(first_places.size(), 5u) << "the words go to random places";
  int tied = 0;
  for (std::size_t i = 0; i < ds.test.size(); ++i) {
    EXPECT_EQ(CopiesIn(ds.test, i, ds.test.decoy_cells[i]), 3);
    tied += ds.test.decoy_cells[i] == 4 + ds.test.clean_labels[i];
  }
  EXPECT_NEAR(tied / 1000.0, 0.5, 0.06);
  // Deterministic for a seed.
  LoadedDataset again = Text();
  ASSERT_TRUE(PlantDecoy(d, again).ok());
  EXPECT_EQ(again.test.tokens, ds.test.tokens);
}

TEST(Decoy, RefusesBadTextAndOversizedPatches) {
  LoadedDataset text = Text();
  v1::Decoy many = Enabled();
  many.set_tokens_per_sample(51);
  absl::Status s = PlantDecoy(many, text);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("config.decoy.tokens_per_sample"), std::string_view::npos) << s;
  LoadedDataset nothing;
  nothing.label_names = {"ham", "spam"};
  EXPECT_EQ(PlantDecoy(Enabled(), nothing).code(), absl::StatusCode::kInvalidArgument);
  LoadedDataset ds = Blank();
  v1::Decoy big = Enabled();
  big.set_patch_pixels(5);
  s = PlantDecoy(big, ds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("config.decoy.patch_pixels"), std::string_view::npos) << s;
}

}  // namespace
}  // namespace greenloop::trainer
