#include "services/feedback/core/consensus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

namespace greenloop::feedback {
namespace {

// Adds `counts[c]` ratings of category c for `item`, by raters r0, r1, ...
void AddCounts(std::int64_t item, const std::vector<int>& counts, std::vector<Observation>& out) {
  int rater = 0;
  for (int c = 0; c < static_cast<int>(counts.size()); ++c) {
    for (int n = 0; n < counts[c]; ++n) out.push_back({item, "r" + std::to_string(rater++), c});
  }
}

TEST(FleissKappa, MatchesTheTextbookExample) {
  // Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, κ = 0.210.
  const std::vector<std::vector<int>> table = {
      {0, 0, 0, 0, 14}, {0, 2, 6, 4, 2}, {0, 0, 3, 5, 6}, {0, 3, 9, 2, 0}, {2, 2, 8, 1, 1},
      {7, 7, 0, 0, 0},  {3, 2, 6, 3, 0}, {2, 5, 3, 2, 2}, {6, 5, 2, 1, 0}, {0, 2, 2, 3, 7}};
  std::vector<Observation> obs;
  for (std::size_t i = 0; i < table.size(); ++i) AddCounts(static_cast<int>(i), table[i], obs);
  std::optional<double> kappa = FleissKappa(5, 14, obs);
  ASSERT_TRUE(kappa.has_value());
  EXPECT_NEAR(*kappa, 0.210, 0.001);
}

TEST(FleissKappa, IgnoresIncompleteItemsAndNeedsTwoItems) {
  std::vector<Observation> obs;
  AddCounts(1, {3, 0}, obs);
  EXPECT_FALSE(FleissKappa(2, 3, obs).has_value());
  AddCounts(2, {0, 3}, obs);
  AddCounts(3, {1, 0}, obs);  // only one rating: not counted
  EXPECT_NEAR(*FleissKappa(2, 3, obs), 1.0, 1e-12);
}

TEST(KrippendorffAlpha, MatchesAHandComputedCase) {
  // Units (a,a), (b,b), (a,b): o_aa = o_bb = 2, o_ab = o_ba = 1, n = 6,
  // α = 1 - (n-1)·D_o / Σ n_c n_k = 1 - 5·2/18 = 4/9.
  std::vector<Observation> obs;
  AddCounts(1, {2, 0}, obs);
  AddCounts(2, {0, 2}, obs);
  AddCounts(3, {1, 1}, obs);
  EXPECT_NEAR(*KrippendorffAlpha(2, obs), 4.0 / 9.0, 1e-12);
  EXPECT_FALSE(KrippendorffAlpha(2, {{1, "a", 0}, {1, "b", 0}}).has_value());
}

TEST(Decide, ReliableRaterOutweighsTwoSpammers) {
  std::map<std::string, RaterModel> models = {{"expert", RaterModel::OneCoin(3, 0.95)},
                                              {"spam1", RaterModel::OneCoin(3, 0.34)},
                                              {"spam2", RaterModel::OneCoin(3, 0.34)}};
  std::vector<Observation> ratings = {{1, "expert", 2}, {1, "spam1", 0}, {1, "spam2", 0}};
  absl::StatusOr<Decision> d = Decide(3, ratings, models);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->category, 2);
  EXPECT_GT(d->confidence, 0.8);
  // Without models every rater counts the same and the majority wins.
  EXPECT_EQ(Decide(3, ratings, {})->category, 0);
}

TEST(Decide, RejectsBadInput) {
  EXPECT_EQ(Decide(2, {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decide(2, {{1, "a", 2}}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decide(1, {{1, "a", 0}}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

// A simulated crowd: honest raters right 75 % of the time, random spammers, and "lazy" spammers
// who always give the same answer. Every item gets 5 ratings from distinct random raters.
struct Crowd {
  std::vector<Observation> observations;
  std::map<std::int64_t, int> truth;
};

Crowd SimulateCrowd(int classes, int items, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int honest = 6, random_spammers = 5, lazy_spammers = 4;
  const int raters = honest + random_spammers + lazy_spammers;
  std::uniform_int_distribution<int> pick_class(0, classes - 1);
  std::uniform_real_distribution<double> u(0, 1);
  Crowd crowd;
  for (int i = 0; i < items; ++i) {
    const int truth = pick_class(rng);
    crowd.truth[i] = truth;
    std::vector<int> who(raters);
    for (int r = 0; r < raters; ++r) who[r] = r;
    std::shuffle(who.begin(), who.end(), rng);
    for (int j = 0; j < 5; ++j) {
      const int r = who[j];
      int answer;
      if (r < honest) {
        answer = u(rng) < 0.75 ? truth : (truth + 1 + pick_class(rng) % (classes - 1)) % classes;
      } else if (r < honest + random_spammers) {
        answer = pick_class(rng);
      } else {
        answer = 0;
      }
      crowd.observations.push_back({i, "r" + std::to_string(r), answer});
    }
  }
  return crowd;
}

double Accuracy(const std::map<std::int64_t, int>& decided, const std::map<std::int64_t, int>& t) {
  int right = 0;
  for (const auto& [item, c] : decided) right += t.at(item) == c ? 1 : 0;
  return static_cast<double>(right) / static_cast<double>(t.size());
}

TEST(DawidSkene, BeatsMajorityVoteOnACrowdWithSpammers) {
  const Crowd crowd = SimulateCrowd(4, 600, 42);
  const double majority = Accuracy(MajorityVote(4, crowd.observations), crowd.truth);
  absl::StatusOr<DawidSkeneResult> ds = EstimateDawidSkene(4, crowd.observations);
  ASSERT_TRUE(ds.ok()) << ds.status();
  std::map<std::int64_t, int> decided;
  for (const auto& [item, d] : ds->items) decided[item] = d.category;
  const double em = Accuracy(decided, crowd.truth);
  RecordProperty("majority_accuracy", std::to_string(majority));
  RecordProperty("dawid_skene_accuracy", std::to_string(em));
  EXPECT_GE(em, majority + 0.10) << "majority " << majority << ", Dawid-Skene " << em;
  // It also tells the raters apart: honest ones are reliable, spammers are not.
  EXPECT_GT(ds->raters.at("r0").Reliability(ds->prior), 0.6);
  EXPECT_LT(ds->raters.at("r7").Reliability(ds->prior), 0.4);   // random spammer
  EXPECT_LT(ds->raters.at("r12").Reliability(ds->prior), 0.4);  // always answers 0
}

TEST(DawidSkene, GoldItemsAreClampedAndAnchorTheRaters) {
  const Crowd crowd = SimulateCrowd(3, 200, 7);
  std::map<std::int64_t, int> gold;
  for (int i = 0; i < 20; ++i) gold[i] = (crowd.truth.at(i) + 1) % 3;  // deliberately "wrong"
  absl::StatusOr<DawidSkeneResult> ds = EstimateDawidSkene(3, crowd.observations, gold);
  ASSERT_TRUE(ds.ok());
  for (const auto& [item, answer] : gold) {
    EXPECT_EQ(ds->items.at(item).category, answer);
    EXPECT_DOUBLE_EQ(ds->items.at(item).confidence, 1.0);
  }
  EXPECT_EQ(EstimateDawidSkene(3, crowd.observations, {{1, 5}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DawidSkene, EmptyInputGivesEmptyResult) {
  absl::StatusOr<DawidSkeneResult> ds = EstimateDawidSkene(2, {});
  ASSERT_TRUE(ds.ok());
  EXPECT_TRUE(ds->items.empty());
  EXPECT_THAT(ds->prior, ::testing::ElementsAre(0.5, 0.5));
}

TEST(SmoothedGoldAccuracy, PullsSmallSamplesTowardsOneHalf) {
  EXPECT_DOUBLE_EQ(SmoothedGoldAccuracy(0, 0), 0.5);
  EXPECT_DOUBLE_EQ(SmoothedGoldAccuracy(1, 1), 2.0 / 3.0);
  EXPECT_NEAR(SmoothedGoldAccuracy(98, 100), 0.97, 0.01);
}

}  // namespace
}  // namespace greenloop::feedback
