// The decoy: a shortcut planted in the images on purpose, which tracks the class in training and
// not at test time, so that runs can show what feature feedback recovers (RunConfig.decoy).
//
// After Decoy-MNIST (Ross, Hughes & Doshi-Velez, "Right for the Right Reasons", IJCAI 2017) and
// its Fashion-MNIST form (Friedrich et al., Nature Machine Intelligence 2023): a square of
// patch_pixels × patch_pixels in one of the four corners of every image, the corner drawn per
// image. In the training split the square's shade is 255 − 25·y, y the image's true class; in the
// validation and test splits it is the shade of a random class, so a model that reads the square
// is wrong there nine times in ten.
//
// Text (Decoy SpamAssassin): a word per class, DecoyWord (e.g. "qzxspam"), inserted
// kDecoyWordsPerSample times at random places of every mail, several so that the mean of a bag of
// words does not dilute it; the mail's true class's word in training, a random class's at
// validation and test. The words join the vocabulary, in every mode (MODE_CLEAN's model has the
// same size).
//
// Thread-safety: the functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"

namespace greenloop::trainer {

// Side of the feature grid's cells in pixels: Fashion-MNIST's 28 × 28 images are 7 × 7 cells.
inline constexpr int kFeatureCellPixels = 4;

// Copies of the planted word per mail when Decoy.tokens_per_sample is 0. A SpamAssassin mail has
// about 480 words: measured with the bag of words over 6 epochs, 5 copies leave the baseline at
// 0.96 test (12 % of its words' contribution on the planted one; the shortcut barely matters), 10
// at 0.89 (22 %), 20 at 0.73 (36 %).
inline constexpr int kDecoyWordsPerSample = 20;

// The word planted for class `label` of a text dataset: "qzx" and the class's machine name.
std::string DecoyWord(const LoadedDataset& dataset, std::int64_t label);

// The shade of the decoy for class `label` (255 − 25·label).
std::uint8_t DecoyShade(std::int64_t label);

// Plants `decoy` in every split of `dataset` (in place) and records each image's decoy cell in
// Split::decoy_cells; without `in_training` the training split is left as shipped (MODE_CLEAN: its
// validation and test images are the other modes', so their figures compare). No-op when
// decoy.enabled() is false. INVALID_ARGUMENT naming the key for patch_pixels above
// kFeatureCellPixels, images whose sides are not a multiple of kFeatureCellPixels, or
// tokens_per_sample above 50.
absl::Status PlantDecoy(const v1::Decoy& decoy, LoadedDataset& dataset, bool in_training = true);

}  // namespace greenloop::trainer
