#include "tools/greenloop/experiment/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/greenloop/experiment/runner.h"

namespace greenloop::experiment {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

cli::ModeResult Mode(const std::string& name, std::vector<std::pair<double, double>> curve,
                     double rater_seconds) {
  cli::ModeResult m;
  m.set_mode(name);
  m.set_state("succeeded");
  m.set_energy_source("estimated");
  std::uint64_t step = 0;
  for (auto [joules, acc] : curve) {
    cli::CurvePoint* p = m.add_curve();
    p->set_step(step += 10);
    p->set_energy_joules(joules);
    p->set_accuracy(acc);
    m.set_best_accuracy(std::max(m.best_accuracy(), acc));
    m.set_final_accuracy(acc);
    m.set_energy_joules(joules);
    m.set_collector_active_joules(joules);
  }
  if (rater_seconds > 0) {
    m.mutable_crowd()->set_raters(3);
    m.mutable_crowd()->set_modelled_seconds(rater_seconds);
    m.mutable_crowd()->set_submitted(30);
  }
  return m;
}

cli::ExperimentResult Example() {
  cli::ExperimentResult r;
  r.set_experiment_id("unit-1");
  r.set_state("completed");
  r.set_target_is_baseline_best(true);
  *r.add_modes() = Mode("baseline", {{100, 0.60}, {200, 0.70}, {300, 0.75}}, 0);
  *r.add_modes() = Mode("hitl", {{110, 0.65}, {150, 0.76}}, 120);
  for (cli::ModeResult& m : *r.mutable_modes()) ApplyTarget(m, 0.75);
  r.set_target_accuracy(0.75);
  return r;
}

TEST(ReportTest, EnergyToTargetIsTheFirstEvaluationAtTarget) {
  cli::ExperimentResult r = Example();
  EXPECT_DOUBLE_EQ(r.modes(0).energy_to_target_joules(), 300);
  EXPECT_DOUBLE_EQ(r.modes(1).energy_to_target_joules(), 150);
  EXPECT_EQ(r.modes(1).steps_to_target(), 20u);
  ApplyTarget(*r.mutable_modes(0), 0.9);
  EXPECT_FALSE(r.modes(0).has_energy_to_target_joules());
}

TEST(ReportTest, JoulesSavedPerRaterMinute) {
  cli::ExperimentResult r = Example();
  // (300 − 150) J over 2 modelled minutes.
  EXPECT_DOUBLE_EQ(*JoulesSavedPerRaterMinute(r.modes(0), r.modes(1)), 75.0);
  EXPECT_FALSE(JoulesSavedPerRaterMinute(r.modes(0), r.modes(0)).has_value());
}

TEST(ReportTest, TablesSayShareOfBaselineAndSources) {
  const cli::ExperimentResult r = Example();
  const std::string table = SummaryTable(r);
  EXPECT_THAT(table, HasSubstr("50.0 %"));
  const std::string md = MarkdownReport(r, {});
  EXPECT_THAT(md, HasSubstr("| hitl | succeeded | 150.0 |"));
  EXPECT_THAT(md, HasSubstr("estimated"));
  EXPECT_THAT(md, HasSubstr("modelled"));
  EXPECT_THAT(md, HasSubstr("## baseline"));
}

// Issue 17, hole 5: a run whose energy could not always be read says so wherever its source is
// shown: its figures are a lower bound.
TEST(ReportTest, EnergyThatCouldNotAlwaysBeReadIsMarkedIncomplete) {
  cli::ExperimentResult r = Example();
  r.mutable_modes(1)->set_energy_incomplete(true);
  EXPECT_THAT(SummaryTable(r), HasSubstr("estimated, incomplete"));
  const std::string md = MarkdownReport(r, {});
  EXPECT_THAT(md, HasSubstr("estimated, incomplete"));
  r.mutable_modes(1)->set_energy_incomplete(false);
  EXPECT_THAT(SummaryTable(r), Not(HasSubstr("incomplete")));
}

TEST(ReportTest, VerdictPrecisionAgainstCleanLabels) {
  cli::ExperimentResult r = Example();
  r.mutable_modes(1)->set_verdicts_applied(40);
  r.mutable_modes(1)->set_verdicts_correct(30);
  EXPECT_THAT(SummaryTable(r), HasSubstr("40 (75 % right)"));
  const std::string md = MarkdownReport(r, {});
  EXPECT_THAT(md, HasSubstr("75.0 % (30 of 40 applied verdicts right against the clean labels)"));
  // No verdicts applied: no precision to show.
  EXPECT_THAT(SummaryTable(Example()), Not(HasSubstr("% right")));
  // Rule verdicts (hitl_features) have no label to be right against.
  r.mutable_modes(1)->set_mode("hitl_features");
  r.mutable_modes(1)->set_verdicts_correct(0);
  EXPECT_THAT(SummaryTable(r), Not(HasSubstr("% right")));
  EXPECT_THAT(MarkdownReport(r, {}), Not(HasSubstr("applied verdicts right")));
}

TEST(ReportTest, WritesMarkdownAndSelfContainedHtml) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("report-" + std::to_string(::getpid()))).string();
  absl::StatusOr<ReportFiles> files = WriteReport(Example(), dir);
  ASSERT_TRUE(files.ok()) << files.status();
  std::ifstream html(files->html);
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_THAT(ss.str(), HasSubstr("<table>"));
  if (files->plot_warning.empty()) {
    // gnuplot installed: the plots exist and the HTML inlines them.
    ASSERT_FALSE(files->plots.empty());
    EXPECT_TRUE(std::filesystem::exists(files->plots.front()));
    EXPECT_THAT(ss.str(), HasSubstr("<svg"));
  } else {
    EXPECT_THAT(files->plot_warning, HasSubstr("gnuplot"));
  }
  std::filesystem::remove_all(dir);
}

// A decoy run's explanation picture is written next to the report and inlined in the HTML.
TEST(ReportTest, InlinesTheExplanationPictures) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("report-x-" + std::to_string(::getpid())))
          .string();
  cli::ExperimentResult r = Example();
  r.mutable_modes(0)->set_decoy_saliency(0.3);
  r.mutable_modes(0)->set_explanation_png("PNGDATA");
  absl::StatusOr<ReportFiles> files = WriteReport(r, dir);
  ASSERT_TRUE(files.ok()) << files.status();
  const std::filesystem::path picture = std::filesystem::path(dir) / r.experiment_id() /
                                        ("explanation-" + r.modes(0).mode() + ".png");
  EXPECT_TRUE(std::filesystem::exists(picture)) << picture;
  std::ifstream html(files->html);
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_THAT(ss.str(), HasSubstr("<h3>What the final models look at (first seed)</h3>"));
  EXPECT_THAT(ss.str(), HasSubstr("src='data:image/png;base64,UE5HREFUQQ=='"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace greenloop::experiment
