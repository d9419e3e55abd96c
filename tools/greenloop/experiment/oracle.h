// What a simulated rater "sees": the true label of an item, recognised from its payload alone.
//
// A person rating a Fashion-MNIST item looks at the picture and knows what it shows; a simulated
// rater gets the same picture through the rater API (no sample reference, nothing that tells gold
// items apart) and looks it up in the dataset as shipped, whose labels are the clean ones. The
// crowd then errs at each rater's drawn rate (crowd.h), so the oracle is the "perfect eye" only.
//
// Thread-safety: TrueLabel() is const and thread-safe once built.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "greenloop/v1/feedback.pb.h"

namespace greenloop::experiment {

class Oracle {
 public:
  virtual ~Oracle() = default;
  // Returns the true label of the item showing `payload`, or nothing when it is not recognised.
  virtual std::optional<std::uint32_t> TrueLabel(const v1::Payload& payload) const = 0;
};

// Decodes an 8-bit greyscale, non-interlaced PNG (any filter types). INVALID_ARGUMENT otherwise.
struct GreyImage {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;
};
absl::StatusOr<GreyImage> DecodeGreyscalePng(const std::string& png);

// Fashion-MNIST: an image payload (the 28×28 picture scaled up by an integer factor, nearest
// neighbour) is matched exactly against the training images of the Debian package, its four 4×4
// corner squares aside (a decoy planted there does not hide what the garment is).
class ImageOracle final : public Oracle {
 public:
  // Reads train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz from `dir`. NOT_FOUND (naming
  // the Debian package dataset-fashion-mnist) when they are missing.
  static absl::StatusOr<std::unique_ptr<ImageOracle>> LoadFashionMnist(const std::string& dir);
  // From images in memory (rows × cols bytes each), for tests.
  ImageOracle(int rows, int cols, const std::vector<std::vector<std::uint8_t>>& images,
              const std::vector<std::uint32_t>& labels);

  std::optional<std::uint32_t> TrueLabel(const v1::Payload& payload) const override;
  std::size_t size() const { return labels_.size(); }

 private:
  int rows_;
  int cols_;
  std::unordered_map<std::uint64_t, std::uint32_t> labels_;  // image hash → label
};

// Text payloads (SpamAssassin mails as the trainer shows them): matched by the first characters of
// the body. Built from (text shown, label) pairs.
class TextOracle final : public Oracle {
 public:
  // Reads the npm package's mails (data/file_list.json order) under `dir`. NOT_FOUND naming the
  // package when missing.
  static absl::StatusOr<std::unique_ptr<TextOracle>> LoadSpamAssassin(const std::string& dir);
  TextOracle() = default;
  void Add(const std::string& body, std::uint32_t label);

  std::optional<std::uint32_t> TrueLabel(const v1::Payload& payload) const override;
  std::size_t size() const { return labels_.size(); }

 private:
  std::unordered_map<std::string, std::uint32_t> labels_;  // normalised body prefix → label
};

// The key TextOracle uses for a body: its first 160 letters and digits, lower case.
std::string TextKey(std::string_view body);

}  // namespace greenloop::experiment
