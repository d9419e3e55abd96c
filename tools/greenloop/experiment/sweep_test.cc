#include "tools/greenloop/experiment/sweep.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/greenloop/commands.h"
#include "tools/greenloop/experiment/runner.h"
#include "tools/greenloop/experiment_commands.h"

namespace greenloop::experiment {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

Spec TinySpec() {
  Spec s;
  s.path = "examples/tiny.yaml";
  s.name = "tiny";
  s.crowd.raters = 6;
  s.crowd.ratings_per_item = 3;
  return s;
}

SweepValues Defaults() {
  return {.raters = {"3", "6", "9"},
          .accuracy = {"0.65", "0.825", "0.95"},
          .spammer_share = {"0", "0.2", "0.4"}};
}

std::vector<std::string> Ids(const SweepPlan& plan) {
  std::vector<std::string> ids;
  for (const SweepPoint& p : plan.points) ids.push_back(p.id);
  return ids;
}

TEST(PlanSweepTest, OneFactorAtATimeAroundTheSharedCentre) {
  absl::StatusOr<SweepPlan> plan = PlanSweep(TinySpec(), Defaults(), "tiny-sweep-1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->baseline_id, "tiny-sweep-1-baseline");
  // 3 + 3 + 3 values, the centre (6 raters, 0.825, no spammers) shared: 7 runs.
  EXPECT_THAT(Ids(*plan),
              ElementsAre("tiny-sweep-1-centre", "tiny-sweep-1-raters-3", "tiny-sweep-1-raters-9",
                          "tiny-sweep-1-accuracy-0p65", "tiny-sweep-1-accuracy-0p95",
                          "tiny-sweep-1-spammers-0p2", "tiny-sweep-1-spammers-0p4"));
  const SweepPoint& centre = plan->points[0];
  EXPECT_FALSE(centre.factor.has_value());
  EXPECT_EQ(centre.crowd.raters, 6);
  // Each point changes its factor only.
  const SweepPoint& raters9 = plan->points[2];
  EXPECT_EQ(raters9.factor, SweepFactor::kRaters);
  EXPECT_EQ(raters9.label, "raters = 9");
  EXPECT_EQ(raters9.crowd.raters, 9);
  EXPECT_DOUBLE_EQ(raters9.crowd.accuracy_mean, 0.825);
  EXPECT_DOUBLE_EQ(raters9.crowd.spammer_share, 0.0);
  const SweepPoint& acc = plan->points[4];
  EXPECT_EQ(acc.crowd.raters, 6);
  EXPECT_DOUBLE_EQ(acc.crowd.accuracy_mean, 0.95);
  const SweepPoint& spam = plan->points[6];
  EXPECT_EQ(spam.label, "spammer share = 0.4");
  EXPECT_DOUBLE_EQ(spam.crowd.spammer_share, 0.4);
  EXPECT_EQ(spam.crowd.raters, 6);
}

TEST(PlanSweepTest, ValuesAreSortedAndAnEmptyListLeavesTheFactorAlone) {
  absl::StatusOr<SweepPlan> plan =
      PlanSweep(TinySpec(), {.raters = {"12", "4"}, .accuracy = {}, .spammer_share = {}}, "s");
  ASSERT_TRUE(plan.ok()) << plan.status();
  // The spec's 6 raters is the centre even though the list does not name it.
  EXPECT_THAT(Ids(*plan), ElementsAre("s-centre", "s-raters-4", "s-raters-12"));
}

TEST(PlanSweepTest, BadValuesAreOneLineNamingTheFlag) {
  const auto error = [](SweepValues v) {
    absl::StatusOr<SweepPlan> plan = PlanSweep(TinySpec(), v, "s");
    EXPECT_FALSE(plan.ok());
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(plan.status().message()), Not(HasSubstr("\n")));
    return std::string(plan.status().message());
  };
  EXPECT_THAT(error({.raters = {"3", "x"}}), HasSubstr("--raters: 'x' is not a whole number"));
  EXPECT_THAT(error({.raters = {"6.5"}}), HasSubstr("--raters: '6.5'"));
  EXPECT_THAT(error({.raters = {"2"}}), HasSubstr("below the spec's crowd.ratings_per_item (3)"));
  EXPECT_THAT(error({.raters = {"500"}}), HasSubstr("above 200"));
  EXPECT_THAT(error({.raters = {"3", ""}}), HasSubstr("empty value"));
  EXPECT_THAT(error({.accuracy = {"1.2"}}), HasSubstr("--accuracy: 1.2 is not an accuracy"));
  EXPECT_THAT(error({.accuracy = {"0.9x"}}), HasSubstr("--accuracy: '0.9x' is not a number"));
  EXPECT_THAT(error({.accuracy = {"0.1"}}), HasSubstr("crowd.accuracy_min"));
  EXPECT_THAT(error({.spammer_share = {"-0.1"}}), HasSubstr("--spammer_share: -0.1"));
  EXPECT_THAT(error({.spammer_share = {"0.2", "0.20"}}), HasSubstr("given twice"));
}

TEST(PlanSweepTest, DefaultIdFitsTheRunIds) {
  EXPECT_EQ(DefaultSweepId("tiny", 0), "tiny-sweep-19700101-000000");
  const std::string id = DefaultSweepId("a-forty-character-experiment-name-xxxxxx", 0);
  EXPECT_EQ(id, "a-forty-characte-sweep-19700101-000000");
  EXPECT_TRUE(PlanSweep(TinySpec(), Defaults(), id).ok());
}

TEST(PlanSweepTest, RejectsIdsTheTrainerWouldReject) {
  EXPECT_THAT(std::string(PlanSweep(TinySpec(), Defaults(), "Tiny").status().message()),
              HasSubstr("--sweep_id"));
  EXPECT_THAT(
      std::string(PlanSweep(TinySpec(), Defaults(), std::string(50, 'a')).status().message()),
      HasSubstr("shorter --sweep_id"));
  Spec no_crowd = TinySpec();
  no_crowd.crowd.raters = 0;
  EXPECT_THAT(std::string(PlanSweep(no_crowd, Defaults(), "s").status().message()),
              HasSubstr("crowd.raters (0)"));
}

// A run reaching `target` at `joules_at_target` (or never), with `minutes` of modelled rater time.
cli::ModeResult HitlRun(std::optional<double> joules_at_target, double minutes,
                        std::string state = "succeeded") {
  cli::ModeResult m;
  m.set_mode("hitl");
  m.set_state(state);
  m.set_energy_source("estimated");
  cli::CurvePoint* p = m.add_curve();
  p->set_step(10);
  p->set_energy_joules(joules_at_target.value_or(500));
  p->set_accuracy(joules_at_target ? 0.8 : 0.5);
  m.set_final_accuracy(p->accuracy());
  m.set_best_accuracy(p->accuracy());
  m.mutable_crowd()->set_raters(6);
  m.mutable_crowd()->set_modelled_seconds(60 * minutes);
  m.mutable_crowd()->set_submitted(100);
  m.set_verdicts_applied(40);
  m.set_verdicts_correct(30);
  ApplyTarget(m, 0.8);
  return m;
}

// A sweep over crowd sizes 3, 6 (centre), 9, 12 with the given (energy to target, minutes).
SweepResult RatersSweep(std::vector<std::pair<std::optional<double>, double>> figures) {
  SweepResult r;
  r.sweep_id = "unit-sweep";
  r.target_accuracy = 0.8;
  r.target_is_baseline_best = true;
  r.centre.raters = 6;
  cli::ModeResult base;
  base.set_mode("baseline");
  base.set_state("succeeded");
  base.set_energy_source("estimated");
  cli::CurvePoint* p = base.add_curve();
  p->set_energy_joules(400);
  p->set_accuracy(0.8);
  ApplyTarget(base, 0.8);
  r.baseline = base;
  const std::vector<std::int64_t> sizes = {6, 3, 9, 12};  // the centre first, as planned
  for (std::size_t i = 0; i < figures.size(); ++i) {
    SweepOutcome o;
    o.point.crowd.raters = sizes[i];
    if (i > 0) {
      o.point.factor = SweepFactor::kRaters;
      o.point.value = static_cast<double>(sizes[i]);
      o.point.label = fmt::format("raters = {}", sizes[i]);
    } else {
      o.point.label = "centre";
    }
    o.run = HitlRun(figures[i].first, figures[i].second);
    r.points.push_back(o);
  }
  return r;
}

TEST(FiguresOfTest, SavingShareAndPrecision) {
  cli::ModeResult base = HitlRun(400.0, 0);
  const PointFigures f = FiguresOf(base, HitlRun(300.0, 10));
  ASSERT_TRUE(f.saved_joules.has_value());
  EXPECT_DOUBLE_EQ(*f.saved_joules, 100);
  EXPECT_DOUBLE_EQ(*f.saved_share, 0.25);
  EXPECT_DOUBLE_EQ(f.human_minutes, 10);
  EXPECT_DOUBLE_EQ(*f.joules_per_rater_minute, 10);
  EXPECT_DOUBLE_EQ(*f.verdict_precision, 0.75);
  const PointFigures missed = FiguresOf(base, HitlRun(std::nullopt, 10));
  EXPECT_FALSE(missed.reached);
  EXPECT_FALSE(missed.saved_joules.has_value());
  EXPECT_FALSE(FiguresOf(std::nullopt, HitlRun(300.0, 10)).saved_joules.has_value());
}

TEST(AnalyseRatersTest, StopsPayingWhereTheMarginalSavingTurnsNegative) {
  // 3 raters: 100 J saved in 5 min; 6: 200 J in 10 min; 9: 250 J in 15 min; 12: 240 J in 20 min.
  SweepResult r = RatersSweep({{200.0, 10}, {300.0, 5}, {150.0, 15}, {160.0, 20}});
  const RaterAnalysis a = AnalyseRaters(r);
  ASSERT_EQ(a.steps.size(), 3u);
  EXPECT_EQ(a.steps[0].from_raters, 3);
  EXPECT_EQ(a.steps[0].to_raters, 6);
  EXPECT_DOUBLE_EQ(*a.steps[0].delta_saved_joules, 100);
  EXPECT_DOUBLE_EQ(*a.steps[0].joules_per_extra_minute, 20);
  EXPECT_DOUBLE_EQ(*a.steps[1].joules_per_extra_minute, 10);
  EXPECT_TRUE(*a.steps[1].pays);
  EXPECT_DOUBLE_EQ(*a.steps[2].joules_per_extra_minute, -2);
  EXPECT_FALSE(*a.steps[2].pays);
  ASSERT_TRUE(a.stops_paying_beyond.has_value());
  EXPECT_EQ(*a.stops_paying_beyond, 9);
  EXPECT_THAT(a.conclusion, HasSubstr("adding raters stops paying beyond 9 raters"));
  EXPECT_THAT(a.conclusion, HasSubstr("saved 10.0 J less"));
}

TEST(AnalyseRatersTest, ASavingWithinTheNoiseFloorDoesNotPay) {
  // The Fashion-MNIST sweep of 2026-12-01 (baseline 193.7 J to target), rescaled to a 400 J
  // baseline: 3 raters saved 56 J, 6 saved 115 J, 9 saved 122 J: 6 → 9 is within 5 % (20 J).
  const RaterAnalysis a = AnalyseRaters(RatersSweep({{285.0, 1234}, {344.0, 435}, {278.0, 1479}}));
  ASSERT_EQ(a.steps.size(), 2u);
  EXPECT_TRUE(*a.steps[0].pays);
  EXPECT_FALSE(*a.steps[1].pays);
  EXPECT_EQ(*a.stops_paying_beyond, 6);
  EXPECT_THAT(a.conclusion, HasSubstr("saved only 7.0 J more, within the noise floor of 20.0 J"));
  SweepResult strict = RatersSweep({{285.0, 1234}, {344.0, 435}, {278.0, 1479}});
  strict.min_saving_share = 0;
  EXPECT_FALSE(AnalyseRaters(strict).stops_paying_beyond.has_value());
}

TEST(AnalyseRatersTest, SaysWhenNoCrowdSizeSavedEnergyAtAll) {
  // Every point spent more than the baseline's 400 J: the marginal view alone would hide that.
  const RaterAnalysis a = AnalyseRaters(RatersSweep({{420.0, 10}, {450.0, 5}, {430.0, 15}}));
  EXPECT_EQ(*a.stops_paying_beyond, 6);
  EXPECT_THAT(a.conclusion, HasSubstr("no crowd size saved energy against the baseline at all"));
  EXPECT_THAT(AnalyseRaters(RatersSweep({{200.0, 10}, {300.0, 5}})).conclusion,
              Not(HasSubstr("at all")));
}

TEST(AnalyseRatersTest, KeepsPayingWithinTheRange) {
  const RaterAnalysis a = AnalyseRaters(RatersSweep({{200.0, 10}, {300.0, 5}, {150.0, 15}}));
  EXPECT_FALSE(a.stops_paying_beyond.has_value());
  EXPECT_THAT(a.conclusion, HasSubstr("did not stop paying within 3–9 raters"));
}

TEST(AnalyseRatersTest, ALargerCrowdMissingTheTargetDoesNotPay) {
  const RaterAnalysis a = AnalyseRaters(RatersSweep({{200.0, 10}, {300.0, 5}, {std::nullopt, 15}}));
  ASSERT_EQ(a.steps.size(), 2u);
  EXPECT_FALSE(*a.steps[1].pays);
  EXPECT_EQ(*a.stops_paying_beyond, 6);
  EXPECT_THAT(a.conclusion, HasSubstr("9 raters did not reach the target"));
}

TEST(AnalyseRatersTest, SkipsRunsThatDidNotSucceed) {
  SweepResult r = RatersSweep({{200.0, 10}, {300.0, 5}, {150.0, 15}, {160.0, 20}});
  r.points[3].run.set_state("interrupted");  // the 12-rater run
  const RaterAnalysis a = AnalyseRaters(r);
  EXPECT_EQ(a.steps.size(), 2u);
  EXPECT_FALSE(a.stops_paying_beyond.has_value());
}

TEST(AnalyseRatersTest, NoConclusionWithoutARatersSeries) {
  SweepResult r = RatersSweep({{200.0, 10}});
  EXPECT_THAT(AnalyseRaters(r).conclusion, HasSubstr("not varied"));
  r = RatersSweep({{200.0, 10}, {300.0, 5}});
  r.baseline->clear_energy_to_target_joules();
  EXPECT_THAT(AnalyseRaters(r).conclusion, HasSubstr("baseline did not reach the target"));
}

TEST(SweepReportTest, TableAndMarkdownCarryFiguresAndProvenance) {
  SweepResult r = RatersSweep({{200.0, 10}, {300.0, 5}, {150.0, 15}, {std::nullopt, 20}});
  const std::string table = SweepTable(r);
  EXPECT_THAT(table, HasSubstr("sweep unit-sweep"));
  EXPECT_THAT(table, HasSubstr("raters = 9"));
  EXPECT_THAT(table, HasSubstr("+250.0"));       // 400 − 150 J saved
  EXPECT_THAT(table, HasSubstr("+62.5 %"));      // of the baseline's 400 J
  EXPECT_THAT(table, HasSubstr("not reached"));  // 12 raters
  EXPECT_THAT(table, HasSubstr("40 (75 % right)"));
  EXPECT_THAT(table, HasSubstr("adding raters stops paying beyond 9 raters"));
  const std::string md = SweepMarkdown(r, {"chart.svg"});
  EXPECT_THAT(md, HasSubstr("human minutes (modelled)"));
  EXPECT_THAT(md, HasSubstr("| estimated |"));
  EXPECT_THAT(md, HasSubstr("| 6 → 9 |"));
  EXPECT_THAT(md, HasSubstr("![chart.svg](chart.svg)"));
}

TEST(SweepReportTest, PlotHasOneSeriesPerVariedFactorWithLabels) {
  SweepResult r = RatersSweep({{200.0, 10}, {300.0, 5}, {150.0, 15}});
  SweepOutcome acc = r.points[1];
  acc.point.factor = SweepFactor::kAccuracy;
  acc.point.value = 0.95;
  acc.point.crowd.raters = 6;
  acc.point.crowd.accuracy_mean = 0.95;
  r.points.push_back(acc);
  const SweepPlotInput plot = SweepPlot(r);
  EXPECT_THAT(plot.script, HasSubstr("title 'crowd size'"));
  EXPECT_THAT(plot.script, HasSubstr("title 'rater accuracy'"));
  EXPECT_THAT(plot.script, Not(HasSubstr("spammer share")));
  EXPECT_THAT(plot.script, HasSubstr("rater-minutes, modelled"));
  ASSERT_GE(plot.data_files.size(), 2u);
  EXPECT_EQ(plot.data_files[0].first, "sweep-raters.dat");
  EXPECT_THAT(plot.data_files[0].second, HasSubstr("15 250 \"9 raters\""));
  EXPECT_THAT(plot.data_files[1].second, HasSubstr("\"acc 0.95\""));

  SweepResult none = RatersSweep({{std::nullopt, 10}, {std::nullopt, 5}});
  EXPECT_TRUE(SweepPlot(none).script.empty());
}

TEST(SweepReportTest, WritesMarkdownAndSelfContainedHtml) {
  const std::string dir = ::testing::TempDir() + "/sweep-report";
  std::filesystem::remove_all(dir);
  absl::StatusOr<SweepFiles> files =
      WriteSweepReport(RatersSweep({{200.0, 10}, {300.0, 5}, {150.0, 15}}), dir);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->markdown, dir + "/unit-sweep/sweep.md");
  std::stringstream html;
  html << std::ifstream(files->html).rdbuf();
  EXPECT_THAT(html.str(), HasSubstr("<table>"));
  EXPECT_THAT(html.str(), HasSubstr("did not stop paying"));
  if (files->plot_warning.empty()) {
    EXPECT_TRUE(std::filesystem::exists(files->plot));
    EXPECT_THAT(html.str(), HasSubstr("<svg"));
  } else {
    EXPECT_THAT(files->plot_warning, HasSubstr("gnuplot"));
  }
}

// The command, given bad input or no services: one line and the right exit code, nothing started.
class SweepCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = ::testing::TempDir() + "/sweep-command-spec.yaml";
    // Port 1 on loopback: nothing listens there.
    std::ofstream(spec_) << "name: unit\ndataset: fashion_mnist\nmax_train_samples: 500\n"
                            "budget: {max_epochs: 1}\ntarget_accuracy: baseline_best\n"
                            "modes: [baseline, hitl]\ncrowd: {raters: 6, ratings_per_item: 3}\n"
                            "services: {trainers: [127.0.0.1:1], energy: 127.0.0.1:1, "
                            "feedback: 127.0.0.1:1}\n";
  }
  int Sweep(std::vector<std::string_view> args) {
    out_.str("");
    err_.str("");
    return cli::ExperimentSweep(args, {}, out_, err_);
  }
  std::string spec_;
  std::ostringstream out_, err_;
};

TEST_F(SweepCommandTest, BadListValueIsUsageAndStartsNothing) {
  EXPECT_EQ(Sweep({spec_, "--raters=3,x,9"}), cli::kExitUsage);
  EXPECT_EQ(err_.str(),
            "greenloop experiment sweep: --raters: 'x' is not a whole number of raters\n");
  EXPECT_EQ(Sweep({spec_, "--accuracy=0.5,2"}), cli::kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--accuracy: 2 is not an accuracy"));
  EXPECT_EQ(Sweep({spec_, "--mode=auto"}), cli::kExitUsage);
  EXPECT_EQ(Sweep({"/nonexistent/spec.yaml"}), cli::kExitUsage);
  EXPECT_EQ(Sweep({}), cli::kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("usage: greenloop experiment sweep SPEC.yaml"));
}

TEST_F(SweepCommandTest, ServiceDownIsUnavailable) {
  EXPECT_EQ(Sweep({spec_, "--raters=3,6"}), cli::kExitUnavailable);
  EXPECT_THAT(err_.str(), HasSubstr("trainer (rank 0) at 127.0.0.1:1 is down"));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(SweepCommandTest, HelpListsTheSweepKeys) {
  EXPECT_EQ(Sweep({"--help"}), cli::kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("spammer_share"));
  EXPECT_THAT(out_.str(), HasSubstr("max_epochs"));
}

}  // namespace
}  // namespace greenloop::experiment
