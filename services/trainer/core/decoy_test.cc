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

TEST(Decoy, RefusesTextAndOversizedPatches) {
  LoadedDataset text;
  text.dataset = v1::DATASET_SPAM_ASSASSIN;
  text.label_names = {"ham", "spam"};
  absl::Status s = PlantDecoy(Enabled(), text);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("config.decoy"), std::string_view::npos) << s;
  LoadedDataset ds = Blank();
  v1::Decoy big = Enabled();
  big.set_patch_pixels(5);
  s = PlantDecoy(big, ds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("config.decoy.patch_pixels"), std::string_view::npos) << s;
}

}  // namespace
}  // namespace greenloop::trainer
