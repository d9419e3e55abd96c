#include "tools/greenloop/study_command.h"

#include <fmt/format.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "tools/greenloop/experiment/points.h"
#include "tools/greenloop/experiment/runner.h"
#include "tools/greenloop/experiment/spec.h"
#include "tools/greenloop/experiment/store.h"
#include "tools/greenloop/experiment/study.h"
#include "tools/greenloop/experiment_flags.h"

namespace greenloop::cli {
namespace {

constexpr std::string_view kProgram = "greenloop study";

struct StudyArgs {
  CommonArgs common;
  std::string spec_path;
  experiment::StudyGrid grid;
  std::vector<std::string> inference_batches = {"1", "8", "64", "256"};
  double inference_seconds = 2.0;
  std::string study_id;
  bool yes = false;
  bool no_progress = false;
};

void AddStudyFlags(config::Schema& schema, StudyArgs& a) {
  AddCommon(schema, a.common);
  schema.Add("spec", &a.spec_path, "the base spec (YAML), or give it as the first argument")
      .Add("models", &a.grid.models,
           "architectures, comma-separated (cnn, mlp, lenet5, resnet, mobilenet; bag_of_words, "
           "transformer for text); empty: the spec's model")
      .Add("widths", &a.grid.widths, "widths for the models that have one; empty: their default")
      .Add("depths", &a.grid.depths, "depths for the models that have one; empty: their default")
      .Add("batch_sizes", &a.grid.batch_sizes, "batch sizes; empty: the spec's")
      .Add("learning_rates", &a.grid.learning_rates, "learning rates; empty: the spec's")
      .Add("threads", &a.grid.threads, "LibTorch threads per run; empty: the spec's")
      .Add("inference_batches", &a.inference_batches,
           "batch sizes of the inference benchmark after each run; empty: none")
      .Add("inference_seconds", &a.inference_seconds, "seconds of forward passes per batch size",
           {.min = 0.1, .max = 60.0})
      .Add("max_points", &a.grid.max_points, "a larger grid needs --yes", {.min = 1})
      .Add("yes", &a.yes, "run a grid larger than --max_points")
      .Add("study_id", &a.study_id,
           "id of the study (the prefix of its points' experiment ids); empty: <spec name>-study; "
           "a re-run with the same id resumes")
      .Add("no_progress", &a.no_progress, "print a line per evaluation instead of a live bar");
}

// Runs point `p`: its experiment, stored as one; a run that did not happen is a failed point.
absl::StatusOr<cli::ModeResult> RunPoint(const experiment::StudyPoint& p, const StudyArgs& a,
                                         experiment::ExperimentStore* store, std::ostream& err) {
  experiment::ExperimentRunner runner(p.spec, RunnerOptionsFrom(a.common, a.no_progress, p.id),
                                      err);
  absl::StatusOr<cli::ExperimentResult> r = runner.Run();
  if (!r.ok()) return r.status();
  if (store != nullptr) {
    if (absl::Status s = store->Save(*r, {}); !s.ok()) {
      err << kProgram << ": warning: " << p.id << " not stored: " << s.message() << "\n";
    }
  }
  if (r->modes().empty()) {
    cli::ModeResult failed;
    failed.set_state(r->state() == "interrupted" ? "interrupted" : "failed");
    failed.set_error("the run did not start");
    return failed;
  }
  return r->modes(0);
}

}  // namespace

int Study(const std::vector<std::string_view>& args, const config::Environment& env,
          std::ostream& out, std::ostream& err) {
  StudyArgs a;
  auto [spec_path, rest] = Positional(args);
  a.spec_path = spec_path;
  config::Schema schema{std::string(kProgram)};
  AddStudyFlags(schema, a);
  if (auto code = LoadCommon(schema, kProgram, rest, env, out, err, a.common,
                             "\nSpec keys (YAML):\n" + experiment::SpecUsage())) {
    return *code;
  }
  if (a.spec_path.empty()) {
    err << kProgram
        << ": usage: greenloop study SPEC.yaml [--models=cnn,mlp] [--batch_sizes=32,128]"
        << " (see --help)\n";
    return kExitUsage;
  }
  absl::StatusOr<experiment::Spec> spec = experiment::LoadSpec(a.spec_path);
  if (!spec.ok()) return Exit(err, kProgram, spec.status());
  spec->inference_batches.clear();
  for (const std::string& b : a.inference_batches) {
    const int v = std::atoi(b.c_str());
    if (v < 1 || v > 4096 || std::to_string(v) != b) {
      err << kProgram << ": --inference_batches: '" << b << "' is not a batch size of 1 to 4096\n";
      return kExitUsage;
    }
    spec->inference_batches.push_back(v);
  }
  spec->inference_seconds = a.inference_seconds;
  if (a.study_id.empty()) a.study_id = spec->name.substr(0, 34) + "-study";
  absl::StatusOr<experiment::StudyPlan> plan =
      experiment::PlanStudy(*spec, a.grid, a.study_id, a.yes);
  if (!plan.ok()) return Exit(err, kProgram, plan.status());
  if (plan->points.empty()) return kExitOk;
  {
    experiment::ExperimentRunner checker(plan->points.front().spec,
                                         RunnerOptionsFrom(a.common, true, a.study_id), err);
    if (absl::Status s = checker.CheckServices(); !s.ok()) return Exit(err, kProgram, s);
  }
  std::unique_ptr<experiment::ExperimentStore> store;
  if (!a.common.pg_url.empty()) {
    auto opened = experiment::ExperimentStore::Open(a.common.pg_url);
    if (!opened.ok()) return Exit(err, kProgram, opened.status());
    store = std::move(*opened);
  } else {
    err << kProgram << ": warning: no pg.url: points are not stored, and a re-run starts over\n";
  }
  std::vector<std::string> labels;
  for (const experiment::StudyPoint& p : plan->points) labels.push_back(p.label);
  err << fmt::format(
      "study {}: {} points, one at a time (Ctrl-C keeps the finished ones; run "
      "again to resume)\n",
      a.study_id, labels.size());

  SigintGuard guard;
  const auto& points = plan->points;
  experiment::PointHooks hooks{
      .stored = [&](std::size_t i) -> std::optional<cli::ModeResult> {
        if (store == nullptr) return std::nullopt;
        auto found = store->SucceededStudyPoint(a.study_id, points[i].id, points[i].label);
        if (!found.ok()) {
          err << kProgram << ": warning: cannot read point " << points[i].id
              << " from PostgreSQL (it runs again): " << found.status().message() << "\n";
          return std::nullopt;
        }
        return *found;
      },
      .run = [&](std::size_t i) { return RunPoint(points[i], a, store.get(), err); },
      .keep =
          [&](std::size_t i, const cli::ModeResult& run) {
            if (store == nullptr) return;
            const experiment::StudyRow row = experiment::RowOf(points[i], run);
            if (absl::Status s = store->SaveStudyPoint(a.study_id, a.spec_path, row, run);
                !s.ok()) {
              err << kProgram << ": warning: " << points[i].id << " not stored: " << s.message()
                  << "\n";
            }
          }};
  absl::StatusOr<experiment::PointsOutcome> outcome = experiment::RunPoints(labels, hooks, err);
  if (!outcome.ok()) return Exit(err, kProgram, outcome.status());

  std::vector<experiment::StudyRow> rows;
  for (const experiment::PointOutcome& p : outcome->points) {
    rows.push_back(experiment::RowOf(points[p.index], p.run));
  }
  const experiment::StudyAnalysis analysis = experiment::AnalyseStudy(std::move(rows));
  const std::string dir = !a.common.output_dir.empty() ? a.common.output_dir : spec->output_dir;
  absl::StatusOr<experiment::StudyFiles> files =
      experiment::WriteStudyReport(a.study_id, a.spec_path, analysis, dir);
  if (!files.ok()) return Exit(err, kProgram, files.status());
  if (!files->plot_warning.empty()) err << kProgram << ": warning: " << files->plot_warning << "\n";
  for (const std::string& g : analysis.guidelines) out << "- " << g << "\n";
  out << "report: " << files->markdown << "\n        " << files->html << "\n";
  out << experiment::StudyLine(analysis) << "\n";
  return outcome->state == "completed" ? kExitOk : kExitFailed;
}

}  // namespace greenloop::cli
