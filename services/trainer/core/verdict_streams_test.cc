// The verdict streams of a run: one campaign per kind of question, each stream with its cursor.
#include "services/trainer/core/verdict_streams.h"

#include <gtest/gtest.h>

#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

LoadedDataset TwoImages() {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = ds.image_cols = 28;
  for (int c = 0; c < 10; ++c) {
    ds.label_names.push_back("c" + std::to_string(c));
    ds.label_display_names.push_back("Class " + std::to_string(c));
  }
  ds.train.refs = {7, 8};
  ds.train.labels = {1, 2};
  ds.train.clean_labels = {3, 2};
  ds.train.pixels.assign(2 * 28 * 28, 0);
  return ds;
}

v1::RunConfig Combined() {
  v1::RunConfig c;
  c.set_mode(v1::MODE_HITL_COMBINED);
  c.mutable_feedback()->set_endpoint("fake:7102");
  c.mutable_feedback()->set_campaign_id("run-1");
  c.mutable_feedback()->set_feature_campaign_id("run-1-f");
  return c;
}

v1::ItemInput Item(std::uint64_t index, std::uint32_t label) {
  v1::ItemInput item;
  item.mutable_sample()->set_index(index);
  item.set_given_label(label);
  return item;
}

TEST(VerdictStreams, CombinedFollowsTwoCampaignsEachFromItsOwnCursor) {
  const LoadedDataset ds = TwoImages();
  const v1::RunConfig config = Combined();
  testing::FakeFeedbackQueue labels(ds, /*delay_polls=*/0);
  testing::FakeFeedbackQueue rules(ds, /*delay_polls=*/0);
  VerdictStreams streams(config, ds, "run-1", &labels, &rules);
  streams.Restore("4", "2");  // a resumed run
  ASSERT_TRUE(streams.Open().ok());
  EXPECT_EQ(labels.campaign("run-1").question_kind(), v1::QUESTION_KIND_LABEL_CHOICE);
  EXPECT_EQ(rules.campaign("run-1-f").question_kind(), v1::QUESTION_KIND_FEATURE_RULE);
  EXPECT_EQ(labels.start_cursor(), "4");
  EXPECT_EQ(rules.start_cursor(), "2");
  EXPECT_EQ(streams.CampaignOf(false), "run-1");
  EXPECT_EQ(streams.CampaignOf(true), "run-1-f");

  ASSERT_TRUE(labels.Enqueue("run-1", {Item(7, 1), Item(8, 2)}).ok());
  ASSERT_TRUE(rules.Enqueue("run-1-f", {Item(0, 0)}).ok());
  std::vector<VerdictStreams::Incoming> in = streams.Take();
  ASSERT_EQ(in.size(), 3u);
  EXPECT_FALSE(in[0].feature_stream);  // the sample questions' first
  EXPECT_FALSE(in[1].feature_stream);
  EXPECT_TRUE(in[2].feature_stream);
  EXPECT_EQ(in[0].received.verdict.consensus_label(), 3u);
  EXPECT_EQ(in[2].received.verdict.question_kind(), v1::QUESTION_KIND_FEATURE_RULE);

  // Each stream's cursor moves past its own last verdict, whatever the order of the batch.
  std::vector<PendingVerdict> applied;
  for (const VerdictStreams::Incoming& v : in) {
    applied.push_back({.verdict = v.received.verdict,
                       .cursor = v.received.cursor,
                       .feature_stream = v.feature_stream});
  }
  std::swap(applied[1], applied[2]);
  applied.push_back({.source = ChangeSource::kAuto});  // automatic: no cursor
  streams.Advance(applied);
  EXPECT_EQ(streams.cursor(), "2");          // the label fake's second verdict
  EXPECT_EQ(streams.feature_cursor(), "1");  // the rule fake's first
  streams.Stop();
}

TEST(VerdictStreams, OneCampaignOutsideCombinedAndRefusalsWithoutAPort) {
  const LoadedDataset ds = TwoImages();
  v1::RunConfig features = Combined();
  features.set_mode(v1::MODE_HITL_FEATURES);
  testing::FakeFeedbackQueue queue(ds, 0);
  testing::FakeFeedbackQueue unused(ds, 0);
  VerdictStreams one(features, ds, "run-1", &queue, &unused);
  ASSERT_TRUE(one.Open().ok());
  EXPECT_EQ(queue.campaign("run-1").question_kind(), v1::QUESTION_KIND_FEATURE_RULE);
  EXPECT_EQ(unused.campaigns(), 0u);
  EXPECT_EQ(one.CampaignOf(true), "run-1");

  v1::RunConfig hitl = Combined();
  hitl.set_mode(v1::MODE_HITL);
  testing::FakeFeedbackQueue label_queue(ds, 0);
  VerdictStreams plain(hitl, ds, "run-1", &label_queue, nullptr);
  ASSERT_TRUE(plain.Open().ok());
  EXPECT_EQ(label_queue.campaign("run-1").question_kind(), v1::QUESTION_KIND_LABEL_CHOICE);

  const v1::RunConfig combined = Combined();
  VerdictStreams half(combined, ds, "run-1", &label_queue, nullptr);
  EXPECT_EQ(half.Open().code(), absl::StatusCode::kFailedPrecondition);
  VerdictStreams none(hitl, ds, "run-1", nullptr, nullptr);
  EXPECT_EQ(none.Open().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(none.Take().empty());
  none.Stop();  // nothing to stop
}

}  // namespace
}  // namespace greenloop::trainer
