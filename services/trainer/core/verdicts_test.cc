#include "services/trainer/core/verdicts.h"

#include <gtest/gtest.h>

namespace greenloop::trainer {
namespace {

// Four samples with refs 10..13; sample 11 carries a wrong label (clean 2, given 1).
Split MakeSplit() {
  Split s;
  s.labels = {0, 1, 2, 3};
  s.clean_labels = {0, 2, 2, 3};
  s.refs = {10, 11, 12, 13};
  return s;
}

v1::Verdict Choice(std::uint64_t ref, std::uint32_t label, double confidence = 0.9) {
  v1::Verdict v;
  v.set_item_id("item-" + std::to_string(ref));
  v.mutable_sample()->set_index(ref);
  v.set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  v.set_consensus_label(label);
  v.set_confidence(confidence);
  v.set_revision(1);
  return v;
}

TEST(TrainingSetState, RelabelsToTheConsensusAndChecksAgainstCleanLabels) {
  Split split = MakeSplit();
  TrainingSetState state(split);
  const v1::VerdictPolicy policy = WithDefaults({});
  auto change = state.Apply(Choice(11, 2), ChangeSource::kHuman, policy, 7, 4);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->action, ChangeAction::kRelabel);
  EXPECT_EQ(change->old_label, 1);
  EXPECT_EQ(change->new_label, 2);
  EXPECT_EQ(change->step, 7u);
  EXPECT_EQ(change->sample_index, 11u);
  EXPECT_TRUE(change->correct);
  EXPECT_EQ(state.labels()[1], 2);
  // A wrong relabel is recorded as wrong.
  auto bad = state.Apply(Choice(13, 0), ChangeSource::kAuto, policy, 8, 4);
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->correct);
  EXPECT_EQ(bad->source, ChangeSource::kAuto);
}

TEST(TrainingSetState, ConfirmationKeepsAndLowConfidenceIsNotApplied) {
  Split split = MakeSplit();
  TrainingSetState state(split);
  const v1::VerdictPolicy policy = WithDefaults({});
  auto keep = state.Apply(Choice(12, 2), ChangeSource::kHuman, policy, 1, 4);
  ASSERT_TRUE(keep);
  EXPECT_EQ(keep->action, ChangeAction::kKeep);
  EXPECT_TRUE(keep->correct);
  EXPECT_FALSE(state.Apply(Choice(11, 2, 0.5), ChangeSource::kHuman, policy, 1, 4));
  EXPECT_EQ(state.labels()[1], 1);
  v1::Verdict undecidable = Choice(11, 0);
  undecidable.set_undecidable(true);
  EXPECT_FALSE(state.Apply(undecidable, ChangeSource::kHuman, policy, 1, 4));
  EXPECT_FALSE(state.Apply(Choice(99, 0), ChangeSource::kHuman, policy, 1, 4));  // unknown
  EXPECT_FALSE(state.Apply(Choice(11, 7), ChangeSource::kHuman, policy, 1, 4));  // bad label
}

TEST(TrainingSetState, DropAndReweightPolicies) {
  Split split = MakeSplit();
  v1::VerdictPolicy drop;
  drop.set_on_wrong_label(v1::WRONG_LABEL_ACTION_DROP);
  TrainingSetState a(split);
  auto dropped = a.Apply(Choice(11, 2), ChangeSource::kHuman, WithDefaults(drop), 1, 4);
  ASSERT_TRUE(dropped);
  EXPECT_EQ(dropped->action, ChangeAction::kDrop);
  EXPECT_TRUE(dropped->correct);
  EXPECT_EQ(a.active_count(), 3u);
  EXPECT_EQ(a.active()[1], 0);
  // Nothing more happens to a dropped sample.
  EXPECT_FALSE(a.Apply(Choice(11, 3), ChangeSource::kHuman, WithDefaults(drop), 2, 4));

  v1::VerdictPolicy reweight;
  reweight.set_on_wrong_label(v1::WRONG_LABEL_ACTION_REWEIGHT);
  TrainingSetState b(split);
  auto down = b.Apply(Choice(11, 2), ChangeSource::kHuman, WithDefaults(reweight), 1, 4);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->action, ChangeAction::kReweight);
  EXPECT_FLOAT_EQ(b.weights()[1], 0.1f);
  EXPECT_TRUE(down->correct);

  // A label check that only says "wrong" has no label to relabel to: the sample is dropped.
  TrainingSetState c(split);
  v1::Verdict check;
  check.mutable_sample()->set_index(11);
  check.set_label_correct(false);
  check.set_confidence(0.8);
  auto gone = c.Apply(check, ChangeSource::kHuman, WithDefaults({}), 1, 4);
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->action, ChangeAction::kDrop);

  // Relevance: irrelevant dropped when the policy says so, relevant up-weighted.
  v1::VerdictPolicy relevance;
  relevance.set_drop_irrelevant(true);
  relevance.set_relevant_weight(2.0);
  TrainingSetState d(split);
  v1::Verdict relevant;
  relevant.mutable_sample()->set_index(12);
  relevant.set_relevant(true);
  relevant.set_confidence(0.9);
  auto up = d.Apply(relevant, ChangeSource::kHuman, WithDefaults(relevance), 1, 4);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->action, ChangeAction::kReweight);
  EXPECT_FLOAT_EQ(d.weights()[2], 2.0f);
  EXPECT_TRUE(up->correct);
  relevant.set_relevant(false);
  relevant.mutable_sample()->set_index(13);
  auto irrelevant = d.Apply(relevant, ChangeSource::kHuman, WithDefaults(relevance), 1, 4);
  ASSERT_TRUE(irrelevant);
  EXPECT_EQ(irrelevant->action, ChangeAction::kDrop);
}

TEST(TrainingSetState, SameVerdictStreamGivesTheSameTrainingSet) {
  Split split;
  for (int i = 0; i < 200; ++i) {
    split.labels.push_back(i % 5);
    split.clean_labels.push_back((i * 7) % 5);
    split.refs.push_back(static_cast<std::uint64_t>(1000 + i));
  }
  std::vector<PendingVerdict> stream;
  SeededRng rng(5);
  for (int i = 0; i < 500; ++i) {
    v1::Verdict v = Choice(1000 + rng.Below(200), static_cast<std::uint32_t>(rng.Below(5)),
                           0.5 + 0.5 * rng.Unit());
    v.set_revision(static_cast<std::uint32_t>(1 + rng.Below(2)));
    if (rng.Below(10) == 0) v.set_label_correct(rng.Below(2) == 0);
    stream.push_back({.verdict = v,
                      .source = rng.Below(2) ? ChangeSource::kAuto : ChangeSource::kHuman,
                      .cursor = std::to_string(i)});
  }
  // A rule decided on rank 0 rides along with its verdict.
  v1::FeatureRule rule;
  rule.add_irrelevant_tokens("qzxspam");
  rule.set_label(1);
  stream[3].rule = rule;
  stream[3].feature_stream = true;  // MODE_HITL_COMBINED: its cursor is the feature stream's
  // Through the wire format, as rank 0 broadcasts them.
  absl::StatusOr<std::vector<PendingVerdict>> received =
      DeserializeVerdicts(SerializeVerdicts(stream));
  ASSERT_TRUE(received.ok());
  ASSERT_EQ(received->size(), stream.size());
  ASSERT_TRUE((*received)[3].rule.has_value());
  EXPECT_EQ((*received)[3].rule->irrelevant_tokens(0), "qzxspam");
  EXPECT_EQ((*received)[3].rule->label(), 1u);
  EXPECT_FALSE((*received)[4].rule.has_value());
  EXPECT_TRUE((*received)[3].feature_stream);
  EXPECT_FALSE((*received)[4].feature_stream);
  TrainingSetState a(split);
  TrainingSetState b(split);
  const v1::VerdictPolicy policy = WithDefaults({});
  std::size_t applied = 0;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    auto ca = a.Apply(stream[i].verdict, stream[i].source, policy, i, 5);
    auto cb = b.Apply((*received)[i].verdict, (*received)[i].source, policy, i, 5);
    ASSERT_EQ(ca.has_value(), cb.has_value());
    if (ca) {
      ++applied;
      EXPECT_EQ(ca->new_label, cb->new_label);
      EXPECT_EQ(ca->source, cb->source);
    }
  }
  EXPECT_GT(applied, 50u);
  EXPECT_EQ(a.labels(), b.labels());
  EXPECT_EQ(a.active(), b.active());
  EXPECT_EQ(a.weights(), b.weights());
  EXPECT_FALSE(DeserializeVerdicts("\xff\xff garbage").ok());
}

TEST(ApplyVerdicts, EachSourceGetsItsPolicyAndProgressCountsWhatHappened) {
  Split split = MakeSplit();
  TrainingSetState state(split);
  v1::VerdictPolicy human = WithDefaults({});
  v1::VerdictPolicy automatic = human;
  automatic.set_on_wrong_label(v1::WRONG_LABEL_ACTION_DROP);
  std::vector<PendingVerdict> batch;
  batch.push_back({.verdict = Choice(11, 2),  // right: relabel 1 → 2
                   .source = ChangeSource::kHuman,
                   .cursor = "c1",
                   .queue_lag_seconds = 2.0});
  batch.push_back({.verdict = Choice(12, 0), .source = ChangeSource::kAuto});  // wrong: drop
  batch.push_back({.verdict = Choice(13, 3),
                   .source = ChangeSource::kHuman,
                   .cursor = "",
                   .queue_lag_seconds = 4.0});  // confirmed: keep
  batch.push_back({.verdict = Choice(10, 1, 0.1), .source = ChangeSource::kHuman});  // too unsure
  v1::Progress progress;
  std::vector<std::uint64_t> seen;
  const AppliedVerdicts out =
      ApplyVerdicts(batch, state, human, automatic, 7, 4, progress,
                    [&](const v1::Verdict& v) { seen.push_back(v.sample().index()); });
  ASSERT_EQ(out.changes.size(), 3u);
  EXPECT_EQ(out.changes[0].action, ChangeAction::kRelabel);
  EXPECT_EQ(out.changes[1].action, ChangeAction::kDrop);
  EXPECT_EQ(out.changes[2].action, ChangeAction::kKeep);
  EXPECT_EQ(out.changes[0].step, 7u);
  EXPECT_EQ(out.cursor, "c1");  // the last non-empty one
  EXPECT_EQ(out.humans, 3u);
  EXPECT_DOUBLE_EQ(out.queue_lag_seconds_sum, 6.0);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{11, 13, 10}));
  EXPECT_EQ(out.correct(), 2u);  // the relabel and the confirmation
  EXPECT_EQ(progress.verdicts_received(), 4u);
  EXPECT_EQ(progress.verdicts_applied(), 3u);
  EXPECT_EQ(progress.verdicts_correct(), 2u);
  EXPECT_EQ(progress.samples_relabelled(), 1u);
  EXPECT_EQ(progress.samples_dropped(), 1u);
  EXPECT_EQ(progress.samples_reweighted(), 0u);
  EXPECT_EQ(state.labels()[1], 2);
  EXPECT_EQ(state.active()[2], 0);
}

}  // namespace
}  // namespace greenloop::trainer
