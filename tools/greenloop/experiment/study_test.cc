// The study's plan, analysis and report (study.h), and the shared runner of points (points.h).
#include "tools/greenloop/experiment/study.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "tools/greenloop/experiment/points.h"

namespace greenloop::experiment {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Spec ImageSpec() {
  Spec s;
  s.path = "study.yaml";
  s.name = "zoo";
  s.dataset = v1::DATASET_FASHION_MNIST;
  s.max_epochs = 1;
  s.modes = {v1::MODE_BASELINE, v1::MODE_HITL};
  return s;
}

std::string Message(const absl::StatusOr<StudyPlan>& p) {
  return std::string(p.status().message());
}

TEST(PlanStudy, CrossesTheFactorsAndVariesShapesOnlyWhereAModelHasThem) {
  absl::StatusOr<StudyPlan> plan =
      PlanStudy(ImageSpec(),
                {.models = {"cnn", "lenet5"}, .widths = {"8", "16"}, .batch_sizes = {"32", "128"}},
                "zoo-1", false);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // CNN: 2 widths × 2 batches; LeNet-5 (fixed shape): 2 batches.
  ASSERT_EQ(plan->points.size(), 6u);
  EXPECT_EQ(plan->points[0].id, "zoo-1-p01");
  EXPECT_EQ(plan->points[0].label, "cnn w8 d2 · batch 32 · lr 0.001 · trainer's threads");
  EXPECT_EQ(plan->points[3].spec.model_width, 16);
  EXPECT_EQ(plan->points[3].spec.batch_size, 128);
  EXPECT_EQ(plan->points[4].spec.model, v1::MODEL_KIND_LENET5);
  EXPECT_EQ(plan->points[4].spec.model_width, 0);
  EXPECT_THAT(plan->points[5].spec.modes, ElementsAre(v1::MODE_BASELINE));
}

TEST(PlanStudy, BadInputNamesTheFlag) {
  EXPECT_THAT(Message(PlanStudy(ImageSpec(), {.models = {"vgg"}}, "s", false)),
              HasSubstr("--models: unknown architecture 'vgg'"));
  EXPECT_THAT(Message(PlanStudy(ImageSpec(), {.models = {"transformer"}}, "s", false)),
              HasSubstr("--models: transformer does not fit dataset fashion_mnist"));
  EXPECT_THAT(Message(PlanStudy(ImageSpec(), {.models = {"cnn"}, .depths = {"5"}}, "s", false)),
              HasSubstr("--depths: config.model_shape.depth must be at most 4"));
  EXPECT_THAT(Message(PlanStudy(ImageSpec(), {.batch_sizes = {"0"}}, "s", false)),
              HasSubstr("--batch_sizes: '0' is not a whole number"));
  EXPECT_THAT(Message(PlanStudy(ImageSpec(), {}, "Bad_Id", false)), HasSubstr("--study_id"));
  const StudyGrid big{
      .batch_sizes = {"8", "16", "32"}, .learning_rates = {"0.001", "0.01"}, .max_points = 5};
  const absl::StatusOr<StudyPlan> refused = PlanStudy(ImageSpec(), big, "s", false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(refused), HasSubstr("--max_points: the grid has 6 points, above 5"));
  EXPECT_TRUE(PlanStudy(ImageSpec(), big, "s", /*yes=*/true).ok());
}

// Rows on a clean power law E ∝ MACs over four families, with inference on the same law.
std::vector<StudyRow> PowerLawRows() {
  std::vector<StudyRow> rows;
  const char* families[] = {"MODEL_KIND_CNN", "MODEL_KIND_MLP", "MODEL_KIND_RESNET",
                            "MODEL_KIND_LENET5"};
  const double macs_per_param[] = {6, 1, 120, 7};
  for (int f = 0; f < 4; ++f) {
    for (int i = 0; i < 4; ++i) {
      StudyRow r;
      r.state = "succeeded";
      r.architecture = fmt::format("{} width={}", families[f], 8 << i);
      r.label = r.architecture;
      r.parameters = 1e4 * std::pow(2.0, i + f);
      r.macs_per_sample = r.parameters * macs_per_param[f];
      r.batch_size = 32.0 * (1 << (i % 2));
      r.samples = 60000;
      r.energy_joules = 2e-9 * r.macs_per_sample * r.samples;
      r.energy_per_sample_joules = r.energy_joules / r.samples;
      r.accuracy = 0.80 + 0.01 * f + 0.002 * i;
      r.duration_seconds = r.energy_joules / 10;
      r.idle_joules = 20 * r.duration_seconds;
      r.node = "cpu";
      r.projection_error_5 = (i % 2 ? 0.04 : -0.02);
      r.projection_error_25 = 0.01;
      for (std::uint32_t b : {1u, 64u}) {
        cli::InferencePoint p;
        p.set_batch_size(b);
        p.set_joules_per_sample(1e-9 * r.macs_per_sample * (b == 1 ? 4 : 1));
        r.inference.push_back(p);
      }
      rows.push_back(r);
    }
  }
  return rows;
}

TEST(AnalyseStudy, ALawInSizeIsFoundAndPredictedForAnUnseenFamily) {
  std::vector<StudyRow> rows = PowerLawRows();
  StudyRow failed;
  failed.state = "failed";
  rows.push_back(failed);
  const StudyAnalysis a = AnalyseStudy(rows);
  EXPECT_EQ(a.points, 16u);
  EXPECT_EQ(a.failed, 1u);
  EXPECT_EQ(a.architectures, 4u);
  EXPECT_NEAR(*a.correlations[1].spearman, 1.0, 1e-9);  // energy vs MACs
  EXPECT_NEAR(a.fits[1].slope, 1.0, 1e-6);
  EXPECT_NEAR(a.fits[1].r_squared, 1.0, 1e-6);
  EXPECT_LT(*a.loo, 0.01);
  EXPECT_LT(*a.loao, 0.01);
  EXPECT_LT(*a.infer_loao, 0.01);
  EXPECT_NEAR(*a.proj5, 0.03, 1e-9);
  EXPECT_NEAR(*a.proj25, 0.01, 1e-9);
  const std::string line = StudyLine(a);
  EXPECT_THAT(line, HasSubstr("study: points=16 archs=4 loo="));
  EXPECT_THAT(line, HasSubstr(" proj5=3.0% proj25=1.0% pareto="));
  ASSERT_EQ(a.guidelines.size(), 4u);
  EXPECT_THAT(a.guidelines[2], HasSubstr("Idle power, which no model choice removes, averaged "
                                         "20.0 W"));
  EXPECT_THAT(a.guidelines[3], HasSubstr("least per sample at batch 64"));
  const std::string md = StudyMarkdown("zoo-1", "study.yaml", a, {"energy-vs-macs.svg"});
  EXPECT_THAT(md, HasSubstr("| ln E vs ln MACs per sample | 1.000 |"));
  EXPECT_THAT(md, HasSubstr("![energy-vs-macs.svg](energy-vs-macs.svg)"));
}

TEST(AnalyseStudy, TheParetoFrontKeepsOnlyUndominatedPoints) {
  std::vector<StudyRow> rows(4);
  const double energy[] = {10, 20, 15, 30};
  const double accuracy[] = {0.80, 0.90, 0.79, 0.90};
  for (int i = 0; i < 4; ++i) rows[i].energy_joules = energy[i], rows[i].accuracy = accuracy[i];
  // 2 is beaten by 0 (cheaper and better); 3 by 1 (same accuracy, cheaper).
  EXPECT_THAT(ParetoFront(rows), ElementsAre(0u, 1u));
  EXPECT_FALSE(Pearson({1, 2}, {3, 4}));
  EXPECT_FALSE(Pearson({1, 1, 1}, {3, 4, 5}));
  EXPECT_NEAR(*Spearman({1, 2, 3, 4}, {10, 100, 1000, 10000}), 1.0, 1e-12);
  EXPECT_NEAR(*Spearman({1, 2, 2, 3}, {4, 3, 3, 1}), -1.0, 1e-12);  // ties share their rank
}

// A point's row takes the collector's energy and the test accuracy, and judges the projection
// that was known within the first 5 % and 25 % of the run.
TEST(RowOf, TakesTheCollectorsEnergyAndTheProjectionsKnownInTime) {
  cli::ModeResult m;
  m.set_state("succeeded");
  m.set_architecture("MODEL_KIND_MLP width=256 depth=2");
  m.set_energy_joules(90);
  m.set_collector_active_joules(100);
  m.set_samples_processed(1000);
  m.set_steps(100);
  m.set_planned_steps(100);
  m.set_best_accuracy(0.8);
  m.set_test_accuracy(0.78);
  const double fractions[] = {0.03, 0.08, 0.2, 0.3};
  const double projected[] = {99, 120, 81, 200};
  for (int i = 0; i < 4; ++i) {
    cli::ProjectionPoint* p = m.add_projections();
    p->set_fraction(fractions[i]);
    p->set_projected_joules(projected[i]);
  }
  StudyPoint point{.id = "s-p01", .label = "mlp"};
  point.spec.learning_rate = 0.01;
  const StudyRow r = RowOf(point, m);
  EXPECT_EQ(r.energy_joules, 100);
  EXPECT_DOUBLE_EQ(r.energy_per_sample_joules, 0.1);
  EXPECT_EQ(r.accuracy, 0.78);
  EXPECT_EQ(r.learning_rate, 0.01);
  EXPECT_NEAR(*r.projection_error_5, 0.10, 1e-12);    // 99 / 90 − 1
  EXPECT_NEAR(*r.projection_error_25, -0.10, 1e-12);  // 81 / 90 − 1
  m.set_steps(50);  // stopped early: its projections are not judged
  EXPECT_FALSE(RowOf(point, m).projection_error_5);
}

cli::ModeResult Ran(const std::string& state) {
  cli::ModeResult m;
  m.set_state(state);
  m.set_energy_joules(12.5);
  return m;
}

// The shared runner: stored points are not run again, a failed point does not stop the others,
// an interrupted one stops the list, and an error from the run stops everything.
TEST(RunPoints, ResumesStoredPointsRecordsFailuresAndStopsWhenInterrupted) {
  std::vector<std::size_t> ran, kept;
  std::vector<std::string> states = {"succeeded", "failed", "succeeded", "interrupted", "x"};
  PointHooks hooks{.stored = [](std::size_t i) -> std::optional<cli::ModeResult> {
                     if (i == 0) return Ran("succeeded");
                     return std::nullopt;
                   },
                   .run = [&](std::size_t i) -> absl::StatusOr<cli::ModeResult> {
                     ran.push_back(i);
                     return Ran(states[i]);
                   },
                   .keep = [&](std::size_t i, const cli::ModeResult&) { kept.push_back(i); }};
  std::ostringstream progress;
  absl::StatusOr<PointsOutcome> out = RunPoints({"a", "b", "c", "d", "e"}, hooks, progress);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(ran, ElementsAre(1u, 2u, 3u));
  EXPECT_THAT(kept, ElementsAre(1u, 2u, 3u));
  EXPECT_EQ(out->state, "interrupted");
  EXPECT_EQ(out->points.size(), 4u);
  EXPECT_TRUE(out->points[0].resumed);
  EXPECT_EQ(out->failed, 1u);
  EXPECT_THAT(progress.str(),
              HasSubstr("[####----------------] 1/5 a: succeeded, 12.5 J (stored)"));
  states[3] = "succeeded";
  states[4] = "succeeded";
  ran.clear();
  out = RunPoints({"a", "b", "c", "d", "e"}, hooks, progress);
  EXPECT_EQ(out->state, "failed");  // b failed, the others ran
  EXPECT_EQ(out->points.size(), 5u);
  hooks.run = [](std::size_t) -> absl::StatusOr<cli::ModeResult> {
    return absl::UnavailableError("trainer down");
  };
  EXPECT_EQ(RunPoints({"x", "y"}, hooks, progress).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace greenloop::experiment
