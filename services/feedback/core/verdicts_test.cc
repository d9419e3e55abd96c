#include "services/feedback/core/verdicts.h"

#include <gtest/gtest.h>

#include "google/protobuf/util/time_util.h"

namespace greenloop::feedback {
namespace {

v1::CampaignSpec LabelCheck(std::uint32_t k) {
  v1::CampaignSpec spec;
  spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
  spec.add_labels()->set_name("ham");
  spec.add_labels()->set_name("spam");
  spec.set_ratings_per_item(k);
  return spec;
}

ItemRecord Item(std::uint32_t ratings, std::uint32_t skips) {
  return {.item_id = 42,
          .dataset = v1::DATASET_SPAM_ASSASSIN,
          .sample_index = 7,
          .given_label = 1,
          .ratings_count = ratings,
          .skips_count = skips,
          .decide_time = absl::FromUnixSeconds(1'800'000'000)};
}

TEST(FirstVerdict, MajorityOfDefaultRatersDecidesAndTheItemIsDescribed) {
  ItemRatings r{.ratings = {{42, "a", 1}, {42, "b", 1}, {42, "c", 0}}};
  auto built = FirstVerdict(LabelCheck(3), Item(3, 1), r);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->decision, 1);
  const v1::Verdict& v = built->verdict;
  EXPECT_TRUE(v.label_correct());
  EXPECT_EQ(v.suggested_action(), v1::VERDICT_ACTION_KEEP);
  EXPECT_EQ(v.item_id(), "42");
  EXPECT_EQ(v.sample().index(), 7u);
  EXPECT_EQ(v.given_label(), 1u);
  EXPECT_EQ(v.ratings_count(), 3u);
  EXPECT_EQ(v.skips_count(), 1u);
  EXPECT_EQ(v.revision(), 1u);
  EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToSeconds(v.decide_time()), 1'800'000'000);
  EXPECT_GT(v.confidence(), 0.5);
}

TEST(FirstVerdict, AProvenGoldRecordOutweighsTwoCoinFlippingModels) {
  // a and b have Dawid–Skene models of pure chance; c was right on 40 of 40 gold items.
  ItemRatings r{.ratings = {{42, "a", 0}, {42, "b", 0}, {42, "c", 1}},
                .confusions = {{"a", {0.5, 0.5, 0.5, 0.5}}, {"b", {0.5, 0.5, 0.5, 0.5}}},
                .gold = {{"c", {40, 40}}}};
  auto built = FirstVerdict(LabelCheck(3), Item(3, 0), r);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->decision, 1);
  // Without c's record the two zeros win at the default weight.
  r.gold.clear();
  r.confusions.clear();
  EXPECT_EQ(FirstVerdict(LabelCheck(3), Item(3, 0), r)->decision, 0);
}

TEST(FirstVerdict, AConfusionOfTheWrongSizeFallsBackToTheGoldRecord) {
  ItemRatings r{.ratings = {{42, "a", 0}, {42, "b", 0}, {42, "c", 1}},
                .confusions = {{"c", {0.5, 0.5, 0.5}}},  // 3 entries for a 2×2 model
                .gold = {{"c", {40, 40}}}};
  EXPECT_EQ(FirstVerdict(LabelCheck(3), Item(3, 0), r)->decision, 1);
}

TEST(UndecidableVerdict, OnlyWhenAsManySkipsAsRatingsWantedOnAnOpenOrdinaryItem) {
  const v1::CampaignSpec spec = LabelCheck(3);
  EXPECT_FALSE(UndecidableVerdict(spec, Item(0, 2), false, false).has_value());
  EXPECT_FALSE(UndecidableVerdict(spec, Item(0, 3), /*decided=*/true, false).has_value());
  EXPECT_FALSE(UndecidableVerdict(spec, Item(0, 3), false, /*gold=*/true).has_value());
  std::optional<BuiltVerdict> v = UndecidableVerdict(spec, Item(1, 3), false, false);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->decision, -1);
  EXPECT_TRUE(v->verdict.undecidable());
  EXPECT_EQ(v->verdict.suggested_action(), v1::VERDICT_ACTION_DROP);
  EXPECT_EQ(v->verdict.confidence(), 1);
  EXPECT_EQ(v->verdict.revision(), 1u);
}

TEST(RevisedVerdict, ANewDecisionIsTheNextRevisionAndAnUnchangedOneIsNone) {
  const v1::CampaignSpec spec = LabelCheck(3);
  auto first = FirstVerdict(spec, Item(3, 0), {.ratings = {{42, "a", 1}, {42, "b", 1}}});
  ASSERT_TRUE(first.ok());
  const absl::Time later = absl::FromUnixSeconds(1'800'000'100);
  EXPECT_FALSE(RevisedVerdict(spec, first->verdict, 1, 1, 0.9, later).has_value());
  EXPECT_FALSE(RevisedVerdict(spec, first->verdict, -1, 0, 0.9, later).has_value());
  std::optional<BuiltVerdict> revised = RevisedVerdict(spec, first->verdict, 1, 0, 0.8, later);
  ASSERT_TRUE(revised.has_value());
  EXPECT_EQ(revised->decision, 0);
  EXPECT_FALSE(revised->verdict.label_correct());
  EXPECT_EQ(revised->verdict.suggested_action(), v1::VERDICT_ACTION_DROP);
  EXPECT_EQ(revised->verdict.revision(), 2u);
  EXPECT_DOUBLE_EQ(revised->verdict.confidence(), 0.8);
  EXPECT_EQ(revised->verdict.item_id(), "42");
  EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToSeconds(revised->verdict.decide_time()),
            1'800'000'100);
}

}  // namespace
}  // namespace greenloop::feedback
