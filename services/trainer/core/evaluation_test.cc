#include "services/trainer/core/evaluation.h"

#include <gtest/gtest.h>

namespace greenloop::trainer {
namespace {

TEST(MovingAverage, SaysNothingUntilTheWindowIsFullThenSlides) {
  MovingAverage avg(3);
  EXPECT_FALSE(avg.Add(0.3));
  EXPECT_FALSE(avg.Add(0.6));
  ASSERT_TRUE(avg.Add(0.9));
  EXPECT_DOUBLE_EQ(*MovingAverage(1).Add(0.42), 0.42);
  EXPECT_DOUBLE_EQ(*avg.Add(0.0), 0.5);               // 0.6, 0.9, 0.0
  EXPECT_DOUBLE_EQ(*MovingAverage(0).Add(0.7), 0.7);  // 0 counts as no smoothing
}

// A bag of words whose one class wins: scoring counts exactly the samples of that class.
TEST(ScoreSplit, CountsEveryRanksShareOnceAndTheWholeSplitAlone) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.label_names = {"ham", "spam"};
  ds.label_display_names = {"Ham", "Spam"};
  ds.vocabulary_size = 8;
  ds.mean_tokens_per_sample = 2;
  ds.test.offsets.push_back(0);
  for (int i = 0; i < 10; ++i) {
    ds.test.labels.push_back(i < 7 ? 1 : 0);
    ds.test.clean_labels.push_back(ds.test.labels.back());
    ds.test.refs.push_back(static_cast<std::uint64_t>(i));
    ds.test.tokens.insert(ds.test.tokens.end(), {1, 2});
    ds.test.offsets.push_back(static_cast<std::int64_t>(ds.test.tokens.size()));
  }
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> model =
      MakeModel(v1::MODEL_KIND_BAG_OF_WORDS, ds);
  ASSERT_TRUE(model.ok()) << model.status();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : (*model)->named_parameters()) {
      if (p.key().find("bias") != std::string::npos) {
        p.value().zero_();
        p.value()[1] = 10.0;  // always "spam"
      }
    }
  }
  const SplitScore all = ScoreSplit(**model, ds, ds.test, torch::Tensor());
  EXPECT_EQ(all.count, 10);
  EXPECT_EQ(all.correct, 7);
  EXPECT_GT(all.loss, 0);
  SplitScore sum;
  for (std::uint32_t rank = 0; rank < 3; ++rank) {
    const SplitScore part = ScoreSplit(**model, ds, ds.test, torch::Tensor(), rank, 3);
    sum.count += part.count;
    sum.correct += part.correct;
  }
  EXPECT_EQ(sum.count, 10);
  EXPECT_EQ(sum.correct, 7);
  EXPECT_FALSE(ModelState(**model).empty());
}

}  // namespace
}  // namespace greenloop::trainer
