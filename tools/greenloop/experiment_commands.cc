#include "tools/greenloop/experiment_commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>

#include "services/trainer/core/run_config.h"
#include "tools/greenloop/commands.h"
#include "tools/greenloop/experiment/feature_summary.h"
#include "tools/greenloop/experiment/points.h"
#include "tools/greenloop/experiment/prediction.h"
#include "tools/greenloop/experiment/report.h"
#include "tools/greenloop/experiment/runner.h"
#include "tools/greenloop/experiment/spec.h"
#include "tools/greenloop/experiment/store.h"
#include "tools/greenloop/experiment/summary.h"
#include "tools/greenloop/experiment/sweep.h"
#include "tools/greenloop/experiment_flags.h"

namespace greenloop::cli {
namespace {

// Writes the report files, stores the experiment and prints the table and where things are.
int Finish(const experiment::Spec* spec, const cli::ExperimentResult& result, const CommonArgs& a,
           std::string_view program, std::ostream& out, std::ostream& err) {
  const std::string dir = !a.output_dir.empty() ? a.output_dir
                          : spec != nullptr     ? spec->output_dir
                                                : ".local/experiments";
  absl::StatusOr<experiment::ReportFiles> files = experiment::WriteReport(result, dir);
  if (!files.ok()) return Exit(err, program, files.status());
  if (!files->plot_warning.empty()) err << program << ": warning: " << files->plot_warning << "\n";
  out << "\n" << experiment::SummaryTable(result) << "\n";
  if (!result.summaries().empty()) {
    out << experiment::SeedsTable(result) << "\n" << experiment::HeadlineLines(result) << "\n";
  }
  if (experiment::HasDecoy(result)) out << experiment::FeatureLines(result) << "\n";
  out << "report: " << files->markdown << "\n        " << files->html << "\n";
  if (!a.pg_url.empty()) {
    auto store = experiment::ExperimentStore::Open(a.pg_url);
    absl::Status s = store.ok() ? (*store)->Save(result, *files) : store.status();
    if (!s.ok()) {
      err << program << ": warning: experiment not stored in PostgreSQL: " << s.message() << "\n";
    } else {
      out << "stored: experiments / experiment_runs, id " << result.experiment_id() << "\n";
    }
  } else {
    err << program << ": warning: no pg.url: the experiment is not stored in PostgreSQL\n";
  }
  return result.state() == "completed" ? kExitOk : kExitFailed;
}

}  // namespace

int ExperimentRun(const std::vector<std::string_view>& args, const config::Environment& env,
                  std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop experiment run";
  auto [spec_path, rest] = Positional(args);
  CommonArgs a;
  std::string experiment_id;
  bool no_progress = false;
  config::Schema schema{std::string(kProgram)};
  AddCommon(schema, a);
  schema.Add("spec", &spec_path, "the experiment spec (YAML), or give it as the first argument")
      .Add("experiment_id", &experiment_id, "id to use; empty: <name>-<UTC time>")
      .Add("no_progress", &no_progress, "print a line per evaluation instead of a live bar");
  if (auto code = LoadCommon(schema, kProgram, rest, env, out, err, a,
                             "\nSpec keys (YAML):\n" + experiment::SpecUsage())) {
    return *code;
  }
  if (spec_path.empty()) {
    err << kProgram << ": usage: greenloop experiment run SPEC.yaml (see examples/)\n";
    return kExitUsage;
  }
  absl::StatusOr<experiment::Spec> spec = experiment::LoadSpec(spec_path);
  if (!spec.ok()) return Exit(err, kProgram, spec.status());

  SigintGuard guard;
  experiment::ExperimentRunner runner(*spec, RunnerOptionsFrom(a, no_progress, experiment_id), err);
  if (absl::Status s = runner.CheckRunIds(); !s.ok()) return Exit(err, kProgram, s);
  if (absl::Status s = runner.CheckServices(); !s.ok()) return Exit(err, kProgram, s);
  err << fmt::format("experiment {}: {} mode(s): ", runner.experiment_id(), spec->modes.size());
  for (std::size_t i = 0; i < spec->modes.size(); ++i) {
    err << (i > 0 ? ", " : "") << experiment::ModeName(spec->modes[i]);
  }
  err << " (Ctrl-C stops the current run and keeps the finished ones)\n";
  absl::StatusOr<cli::ExperimentResult> result = runner.Run();
  if (!result.ok()) return Exit(err, kProgram, result.status());
  return Finish(&*spec, *result, a, kProgram, out, err);
}

int ExperimentSweep(const std::vector<std::string_view>& args, const config::Environment& env,
                    std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop experiment sweep";
  auto [spec_path, rest] = Positional(args);
  CommonArgs a;
  experiment::SweepValues values{.raters = {"3", "6", "9"},
                                 .accuracy = {"0.65", "0.825", "0.95"},
                                 .spammer_share = {"0", "0.2", "0.4"}};
  std::string mode_name = "hitl";
  std::string sweep_id;
  std::int64_t max_epochs = 0;
  std::int64_t max_train_samples = 0;
  double min_saving = 0.05;
  bool no_progress = false;
  config::Schema schema{std::string(kProgram)};
  AddCommon(schema, a);
  schema.Add("spec", &spec_path, "the experiment spec (YAML), or give it as the first argument")
      .Add("raters", &values.raters,
           "crowd sizes to try, comma-separated; the spec's own size is always the centre; "
           "empty: not varied")
      .Add("accuracy", &values.accuracy,
           "mean rater accuracies to try (crowd.accuracy_mean), in (0, 1]; empty: not varied")
      .Add("spammer_share", &values.spammer_share,
           "spammer shares to try (crowd.spammer_share), in [0, 1]; empty: not varied")
      .Add("mode", &mode_name, "the human mode each point runs", {.one_of = {"hitl", "hybrid"}})
      .Add("max_epochs", &max_epochs,
           "epochs per run (the baseline's and every point's); 0: the spec's budget", {.min = 0})
      .Add("max_train_samples", &max_train_samples,
           "training samples per run; 0: the spec's max_train_samples", {.min = 0})
      .Add("min_saving", &min_saving,
           "extra raters pay only when they save more than this share of the baseline's energy "
           "to target (the run-to-run spread of the energy figures)",
           {.min = 0.0, .max = 1.0})
      .Add("sweep_id", &sweep_id,
           "id of the sweep, the prefix of its experiments' ids; empty: <name>-sweep-<UTC time>")
      .Add("no_progress", &no_progress, "print a line per evaluation instead of a live bar");
  if (auto code = LoadCommon(schema, kProgram, rest, env, out, err, a,
                             "\nSpec keys (YAML):\n" + experiment::SpecUsage())) {
    return *code;
  }
  if (spec_path.empty()) {
    err << kProgram << ": usage: greenloop experiment sweep SPEC.yaml [--raters=3,6,9] "
        << "[--accuracy=0.65,0.825,0.95] [--spammer_share=0,0.2,0.4] (see --help)\n";
    return kExitUsage;
  }
  absl::StatusOr<experiment::Spec> loaded = experiment::LoadSpec(spec_path);
  if (!loaded.ok()) return Exit(err, kProgram, loaded.status());
  experiment::Spec spec = *loaded;
  if (max_epochs > 0) spec.max_epochs = max_epochs;
  if (max_train_samples > 0) spec.max_train_samples = max_train_samples;
  const v1::Mode mode = mode_name == "hybrid" ? v1::MODE_HYBRID : v1::MODE_HITL;
  if (sweep_id.empty()) sweep_id = experiment::DefaultSweepId(spec.name, std::time(nullptr));
  absl::StatusOr<experiment::SweepPlan> plan = experiment::PlanSweep(spec, values, sweep_id);
  if (!plan.ok()) return Exit(err, kProgram, plan.status());

  const std::string dir = !a.output_dir.empty() ? a.output_dir : spec.output_dir;
  const auto options = [&a, no_progress](const std::string& experiment_id) {
    return RunnerOptionsFrom(a, no_progress, experiment_id);
  };
  // Every service the sweep needs, and PostgreSQL when asked to store, before anything starts.
  {
    experiment::Spec both = spec;
    both.modes = {v1::MODE_BASELINE, mode};
    experiment::ExperimentRunner checker(both, options(plan->baseline_id), err);
    if (absl::Status s = checker.CheckServices(); !s.ok()) return Exit(err, kProgram, s);
  }
  std::unique_ptr<experiment::ExperimentStore> store;
  if (!a.pg_url.empty()) {
    auto opened = experiment::ExperimentStore::Open(a.pg_url);
    if (!opened.ok()) return Exit(err, kProgram, opened.status());
    store = std::move(*opened);
  } else {
    err << kProgram << ": warning: no pg.url: the sweep's experiments are not stored in "
        << "PostgreSQL\n";
  }
  // Each run's own report under DIR/<sweep id>/<experiment id>/, stored like any experiment.
  const auto keep = [&](const cli::ExperimentResult& r) {
    absl::StatusOr<experiment::ReportFiles> files =
        experiment::WriteReport(r, (std::filesystem::path(dir) / sweep_id).string());
    if (!files.ok()) {
      err << kProgram << ": warning: " << files.status().message() << "\n";
      return;
    }
    if (store == nullptr) return;
    if (absl::Status s = store->Save(r, *files); !s.ok()) {
      err << kProgram << ": warning: " << r.experiment_id()
          << " not stored in PostgreSQL: " << s.message() << "\n";
    }
  };

  SigintGuard guard;
  const auto started = std::chrono::steady_clock::now();
  experiment::SweepResult sweep;
  sweep.sweep_id = sweep_id;
  sweep.spec_path = spec.path;
  sweep.mode = mode_name;
  sweep.dataset = experiment::DatasetName(spec.dataset);
  sweep.target_is_baseline_best = spec.target_is_baseline_best;
  sweep.target_accuracy = spec.target_is_baseline_best ? 0.0 : spec.target_accuracy;
  sweep.centre = spec.crowd;
  sweep.min_saving_share = min_saving;
  sweep.start_time = experiment::UtcRfc3339(std::time(nullptr));
  const std::size_t total = plan->points.size() + 1;
  err << fmt::format(
      "sweep {}: the baseline, then {} {} run(s), one crowd factor at a time (Ctrl-C stops the "
      "current run and reports the finished ones)\n",
      sweep_id, plan->points.size(), mode_name);

  // The baseline: the reference energy, and the target when the spec says baseline_best.
  {
    experiment::Spec s = spec;
    s.modes = {v1::MODE_BASELINE};
    err << fmt::format("sweep 1/{}: baseline → experiment {}\n", total, plan->baseline_id);
    experiment::ExperimentRunner runner(s, options(plan->baseline_id), err);
    absl::StatusOr<cli::ExperimentResult> r = runner.Run();
    if (!r.ok()) return Exit(err, kProgram, r.status());
    keep(*r);
    if (!r->modes().empty()) sweep.baseline = r->modes(0);
    sweep.target_accuracy = r->target_accuracy();
    if (r->state() == "interrupted") {
      sweep.state = "interrupted";
    } else if (sweep.target_accuracy <= 0) {
      err << kProgram << ": the baseline did not succeed, so there is no target accuracy to "
          << "sweep against\n";
      sweep.state = "failed";
    } else {
      err << fmt::format("sweep 1/{}: baseline {}: target accuracy {:.4f}, {} J to target\n", total,
                         sweep.baseline ? sweep.baseline->state() : "?", sweep.target_accuracy,
                         sweep.baseline && sweep.baseline->has_energy_to_target_joules()
                             ? fmt::format("{:.1f}", sweep.baseline->energy_to_target_joules())
                             : std::string("not reached:"));
    }
  }

  // One human-mode run per point, stopped at the target, through the runner of points that the
  // study shares (points.h): a failed point is recorded and the next one runs; Ctrl-C ends the
  // sweep.
  if (sweep.state == "completed") {
    std::vector<std::string> labels;
    for (const experiment::SweepPoint& p : plan->points) labels.push_back(p.label);
    experiment::PointHooks hooks;
    hooks.run = [&](std::size_t i) -> absl::StatusOr<cli::ModeResult> {
      const experiment::SweepPoint& point = plan->points[i];
      experiment::Spec s = spec;
      s.modes = {mode};
      s.target_is_baseline_best = false;
      s.target_accuracy = sweep.target_accuracy;
      s.crowd = point.crowd;
      s.description =
          fmt::format("Crowd sweep {}, point {}. {}", sweep_id, point.label, spec.description);
      err << fmt::format(
          "sweep {}/{}: {} ({} raters, accuracy {:.3f}, {:.0f} % spammers) → experiment {}\n",
          i + 2, total, point.label, point.crowd.raters, point.crowd.accuracy_mean,
          100 * point.crowd.spammer_share, point.id);
      experiment::ExperimentRunner runner(s, options(point.id), err);
      absl::StatusOr<cli::ExperimentResult> r = runner.Run();
      if (!r.ok()) return r.status();
      keep(*r);
      if (!r->modes().empty()) return r->modes(0);
      cli::ModeResult none;
      none.set_state(r->state() == "interrupted" ? "interrupted" : "failed");
      none.set_error("the run did not start");
      return none;
    };
    hooks.keep = [&](std::size_t i, const cli::ModeResult& run) {
      const experiment::SweepPoint& point = plan->points[i];
      if (run.run_id().empty()) return;  // never started: nothing to report
      experiment::SweepOutcome outcome{.point = point, .experiment_id = point.id, .run = run};
      const experiment::PointFigures f = experiment::FiguresOf(sweep.baseline, outcome.run);
      err << fmt::format(
          "sweep {}/{}: {}: {}, energy to target {}, saved {}, {:.1f} human-min (modelled)\n",
          i + 2, total, point.label, outcome.run.state(),
          f.reached ? fmt::format("{:.1f} J", outcome.run.energy_to_target_joules())
                    : std::string("not reached"),
          f.saved_joules ? fmt::format("{:+.1f} J", *f.saved_joules) : std::string("—"),
          f.human_minutes);
      sweep.points.push_back(std::move(outcome));
    };
    absl::StatusOr<experiment::PointsOutcome> ran = experiment::RunPoints(labels, hooks, err);
    if (!ran.ok()) return Exit(err, kProgram, ran.status());
    sweep.state = ran->state;
  }
  sweep.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  absl::StatusOr<experiment::SweepFiles> files = experiment::WriteSweepReport(sweep, dir);
  if (!files.ok()) return Exit(err, kProgram, files.status());
  if (!files->plot_warning.empty()) err << kProgram << ": warning: " << files->plot_warning << "\n";
  out << "\n" << experiment::SweepTable(sweep) << "\n";
  out << "report: " << files->markdown << "\n        " << files->html << "\n";
  if (store != nullptr) {
    out << fmt::format("stored: experiments / experiment_runs, ids {}-*\n", sweep_id);
  }
  return sweep.state == "completed" ? kExitOk : kExitFailed;
}

int ExperimentReport(const std::vector<std::string_view>& args, const config::Environment& env,
                     std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop report";
  auto [id, rest] = Positional(args);
  CommonArgs a;
  config::Schema schema{std::string(kProgram)};
  AddCommon(schema, a);
  schema.Add("experiment", &id, "experiment id, or latest (also the first argument)");
  if (auto code = LoadArgs(schema, kProgram, rest, env, out, err)) return *code;
  if (id.empty()) {
    err << kProgram << ": usage: greenloop report EXPERIMENT|latest --pg.url URL\n";
    return kExitUsage;
  }
  if (a.pg_url.empty()) {
    err << kProgram << ": pg.url is required (--pg.url, GREENLOOP_PG_URL)\n";
    return kExitUsage;
  }
  auto store = experiment::ExperimentStore::Open(a.pg_url);
  if (!store.ok()) return Exit(err, kProgram, store.status());
  if (id == "latest") {
    absl::StatusOr<std::string> latest = (*store)->Latest();
    if (!latest.ok()) return Exit(err, kProgram, latest.status());
    id = *latest;
  }
  absl::StatusOr<cli::ExperimentResult> result = (*store)->Load(id);
  if (!result.ok()) return Exit(err, kProgram, result.status());
  const int code = Finish(nullptr, *result, a, kProgram, out, err);
  return code == kExitFailed ? kExitOk : code;  // an interrupted experiment still reports fine
}

int Predict(const std::vector<std::string_view>& args, const config::Environment& env,
            std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop predict";
  CommonArgs a;
  std::string spec_path, node;
  bool calibrate = false;
  config::Schema schema{std::string(kProgram)};
  AddCommon(schema, a);
  schema.Add("spec", &spec_path, "spec whose runs to estimate")
      .Add("node", &node, "node kind to predict for; empty: the node of the latest stored run")
      .Add("calibrate", &calibrate,
           "first run 12 short baseline runs of different sizes (8 000 to 60 000 samples, batch "
           "32 to 128; the spec's services; a few minutes) and store them");
  if (auto code = LoadCommon(schema, kProgram, args, env, out, err, a)) return *code;
  if (spec_path.empty()) {
    err << kProgram << ": --spec is required\n";
    return kExitUsage;
  }
  if (a.pg_url.empty()) {
    err << kProgram << ": pg.url is required (--pg.url, GREENLOOP_PG_URL)\n";
    return kExitUsage;
  }
  absl::StatusOr<experiment::Spec> spec = experiment::LoadSpec(spec_path);
  if (!spec.ok()) return Exit(err, kProgram, spec.status());
  auto store = experiment::ExperimentStore::Open(a.pg_url);
  if (!store.ok()) return Exit(err, kProgram, store.status());

  if (calibrate) {
    SigintGuard guard;
    int n = 0;
    // Samples processed per run: long enough that the collector (one sample a second) sees each
    // run for several seconds, from a few seconds to half a minute on a 2-core node. A dataset
    // smaller than a size is trained for more epochs instead.
    const std::int64_t train_size = spec->dataset == v1::DATASET_FASHION_MNIST ? 60000 : 4836;
    for (std::int64_t samples : {8000, 16000, 32000, 60000}) {
      for (std::int64_t batch : {32, 64, 128}) {
        experiment::Spec s = *spec;
        s.modes = {v1::MODE_BASELINE};
        if (samples <= train_size) {
          s.max_train_samples = samples;
          s.max_epochs = 1;
        } else {
          s.max_train_samples = 0;
          s.max_epochs = (samples + train_size / 2) / train_size;
        }
        s.batch_size = batch;
        s.max_steps = 0;
        s.max_energy_joules = 0;
        s.target_is_baseline_best = false;
        s.target_accuracy = 0;
        err << fmt::format("calibration run {}/12: {} samples, batch {}\n", n + 1, samples, batch);
        experiment::ExperimentRunner runner(
            s,
            RunnerOptionsFrom(a, /*no_progress=*/true,
                              fmt::format("calibrate-{}-{}-{}", s.name, samples, batch)),
            err);
        if (n++ == 0) {
          if (absl::Status st = runner.CheckServices(); !st.ok()) return Exit(err, kProgram, st);
        }
        absl::StatusOr<cli::ExperimentResult> r = runner.Run();
        if (!r.ok()) return Exit(err, kProgram, r.status());
        if (absl::Status st = (*store)->Save(*r, {}); !st.ok()) return Exit(err, kProgram, st);
        if (guard.interrupted()) return kExitFailed;
      }
    }
  }

  absl::StatusOr<std::vector<experiment::RunObservation>> runs = (*store)->Observations();
  if (!runs.ok()) return Exit(err, kProgram, runs.status());
  absl::StatusOr<experiment::EnergyModel> model = experiment::FitEnergyModel(*runs);
  if (!model.ok()) return Exit(err, kProgram, model.status());

  // The size of the spec's model: a stored run of the same architecture's, else (the datasets'
  // default models) docs/trainer.md's figures.
  experiment::RunFeatures f;
  const v1::ModelKind kind = trainer::ResolveModelKind(spec->model, spec->dataset);
  f.architecture = trainer::ArchitectureName(kind, experiment::ModelShapeOf(*spec));
  for (const experiment::RunObservation& r : *runs) {
    if (r.features.architecture == f.architecture) f = r.features;
  }
  if (f.parameters == 0 && f.architecture == "MODEL_KIND_CNN width=8 depth=2") {
    f.parameters = 52138;
    f.macs_per_sample = 333056;
  } else if (f.parameters == 0 && f.architecture == "MODEL_KIND_BAG_OF_WORDS width=64") {
    f.parameters = 64.0 * 20000 + 130;
    f.macs_per_sample = 64.0 * 200 + 128;
  } else if (f.parameters == 0) {
    err << kProgram << ": no stored run of a " << f.architecture
        << " to take its size from; run the spec once, or add --calibrate\n";
    return kExitFailed;
  }
  const double train = spec->max_train_samples > 0
                           ? static_cast<double>(spec->max_train_samples)
                           : (spec->dataset == v1::DATASET_FASHION_MNIST ? 60000.0 : 4836.0);
  const double batch = static_cast<double>(spec->batch_size * spec->ranks);
  double samples = spec->max_epochs > 0 ? train * static_cast<double>(spec->max_epochs) : 0.0;
  if (spec->max_steps > 0) {
    const double by_steps = static_cast<double>(spec->max_steps) * batch;
    samples = samples > 0 ? std::min(samples, by_steps) : by_steps;
  }
  f.samples_processed = std::max(samples, batch);
  f.batch_size = batch;
  f.node_kind = node.empty() && !runs->empty() ? runs->back().features.node_kind : node;
  const experiment::Estimate e = model->Predict(f);
  absl::StatusOr<double> loo = experiment::LeaveOneOutError(*runs);
  out << fmt::format(
      "estimate for {} (one run, {:.0f} samples, batch {:.0f}, node {}):\n"
      "  {:.1f} J ({:.4f} Wh), 95 % interval {:.1f} – {:.1f} J\n",
      spec_path, f.samples_processed, f.batch_size, f.node_kind, e.energy_joules,
      e.energy_joules / 3600, e.low_joules, e.high_joules);
  if (loo.ok()) {
    out << fmt::format("  leave-one-out error over {} stored runs: {:.1f} % (mean |relative|)\n",
                       runs->size(), 100 * *loo);
  } else {
    out << "  leave-one-out error: " << loo.status().message() << "\n";
  }
  absl::StatusOr<double> loao = experiment::LeaveOneArchitectureOutError(*runs);
  if (loao.ok()) {
    out << fmt::format(
        "  leave-one-architecture-out error: {:.1f} % (each model family predicted from the "
        "others)\n",
        100 * *loao);
  } else {
    out << "  leave-one-architecture-out error: " << loao.status().message() << "\n";
  }
  if (absl::Status s = (*store)->SavePrediction(
          spec_path, f, e, loo.ok() ? std::optional<double>(*loo) : std::nullopt, runs->size());
      !s.ok()) {
    err << kProgram << ": warning: prediction not stored: " << s.message() << "\n";
  }
  return kExitOk;
}

}  // namespace greenloop::cli
