// A crowd sweep: what `greenloop experiment sweep SPEC.yaml` runs and reports. It answers the seed
// study's question — how much training energy do human minutes save, and where does adding
// raters stop paying — by running the spec's baseline once and then one short human-mode run per
// sweep point, each point changing one factor of the spec's crowd (crowd size, rater accuracy,
// spammer share) while the others stay at the spec's values (one factor at a time: the spec's own
// crowd is the shared centre of every series, so 3 + 3 + 3 values cost 7 runs, not 27).
//
// This file holds the parts that need no service: the plan (PlanSweep), the figures of a point
// (FiguresOf), the marginal-rater analysis (AnalyseRaters) and the table and report
// (SweepTable, SweepMarkdown, WriteSweepReport). The command (experiment_commands.cc) runs the
// points through ExperimentRunner.
//
//   absl::StatusOr<SweepPlan> plan = PlanSweep(spec, {.raters = {"3", "6", "9"}}, "tiny-sweep-1");
//   ... run plan->points, fill a SweepResult ...
//   std::cout << SweepTable(result);
//   absl::StatusOr<SweepFiles> files = WriteSweepReport(result, ".local/experiments");
//
// Figures carry their provenance as the experiment report does: energy `measured` or `estimated`
// (as the run's collector said), human time `modelled` (the simulated raters' drawn seconds).
//
// Thread-safety: pure functions, except that WriteSweepReport runs gnuplot in a child process.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/greenloop/experiment/results.pb.h"
#include "tools/greenloop/experiment/spec.h"

namespace greenloop::experiment {

// A crowd property a sweep varies.
enum class SweepFactor { kRaters, kAccuracy, kSpammerShare };

// "raters", "accuracy", "spammer_share" (the flag names).
std::string FactorName(SweepFactor factor);

// The sweep's values per factor as given on the command line (one string per value, as
// config::Schema splits a comma-separated list). An empty list leaves that factor at the spec's
// value.
struct SweepValues {
  std::vector<std::string> raters;
  std::vector<std::string> accuracy;
  std::vector<std::string> spammer_share;
};

// One human-mode run of the sweep.
struct SweepPoint {
  // Empty for the centre (the spec's own crowd, shared by every series).
  std::optional<SweepFactor> factor;
  double value = 0;   // the varied factor's value (for the centre: none)
  std::string label;  // "centre", "raters = 6", "accuracy = 0.95", "spammer share = 0.2"
  std::string id;     // experiment id: <sweep id>-centre, -raters-6, -accuracy-0p95, ...
  CrowdSpec crowd;    // the spec's crowd with the factor changed
};

struct SweepPlan {
  std::string sweep_id;
  std::string baseline_id;  // <sweep id>-baseline
  // The centre first, then every factor's other values in ascending order.
  std::vector<SweepPoint> points;
};

// The default sweep id: <spec name, at most 16 characters>-sweep-<UTC yyyymmdd-hhmmss of `now`>,
// short enough that every run id of a usual sweep stays within the trainer's 63 characters.
std::string DefaultSweepId(const std::string& spec_name, std::time_t now);

// Builds the points for `spec` (whose crowd is the centre). Each factor's series is its values
// plus the spec's own value. INVALID_ARGUMENT, as one line naming the flag and the value, for a
// value that is not a number, out of range (raters below crowd.ratings_per_item or above 200;
// accuracy outside (0, 1] or below crowd.accuracy_min; spammer share outside [0, 1]), given twice,
// or a sweep id that is malformed or too long for the trainer's run ids (63 characters of
// [a-z0-9-]).
absl::StatusOr<SweepPlan> PlanSweep(const Spec& spec, const SweepValues& values,
                                    const std::string& sweep_id);

// What one point's run ended with.
struct SweepOutcome {
  SweepPoint point;
  std::string experiment_id;
  cli::ModeResult run;  // the human-mode run, ApplyTarget()ed with the sweep's target
};

// A sweep as it ran (possibly cut short).
struct SweepResult {
  std::string sweep_id;
  std::string spec_path;
  std::string mode = "hitl";
  std::string dataset;
  std::string start_time;
  // completed, interrupted, failed (the baseline failed, or a point did)
  std::string state = "completed";
  double wall_seconds = 0;
  double target_accuracy = 0;
  bool target_is_baseline_best = false;
  CrowdSpec centre;
  // Extra raters pay only when they save more than this share of the baseline's energy to target:
  // below it, a difference is within the run-to-run spread of the energy figures (estimated
  // energy on a shared 2-core node varied by about ±10 % between identical runs).
  double min_saving_share = 0.05;
  std::optional<cli::ModeResult> baseline;
  std::vector<SweepOutcome> points;
};

// The figures of one point against the baseline.
struct PointFigures {
  bool reached = false;                // the point reached the target
  std::optional<double> saved_joules;  // baseline's energy to target − the point's
  std::optional<double> saved_share;   // saved_joules / baseline's energy to target
  double human_minutes = 0;            // modelled
  std::optional<double> joules_per_rater_minute;
  std::optional<double> verdict_precision;  // verdicts_correct / verdicts_applied
};
PointFigures FiguresOf(const std::optional<cli::ModeResult>& baseline, const cli::ModeResult& run);

// One step between consecutive crowd sizes of the raters series.
struct MarginalStep {
  std::int64_t from_raters = 0;
  std::int64_t to_raters = 0;
  std::optional<double> delta_saved_joules;  // both reached the target
  double delta_minutes = 0;                  // modelled
  // delta_saved_joules / delta_minutes, when both are known and delta_minutes > 0.
  std::optional<double> joules_per_extra_minute;
  // Whether the extra raters saved more energy; nothing when neither size reached the target.
  std::optional<bool> pays;
  std::string note;
};

struct RaterAnalysis {
  std::vector<MarginalStep> steps;  // in ascending crowd size
  // The crowd size beyond which adding raters first stopped paying.
  std::optional<std::int64_t> stops_paying_beyond;
  std::string conclusion;  // one sentence
};

// The marginal energy saved per extra rater-minute between consecutive crowd sizes of the raters
// series (the centre included), using only points whose run succeeded. Adding raters stops
// paying at the first step whose extra raters did not save more energy than the noise floor
// (min_saving_share of the baseline's energy to target), or whose larger crowd did not reach the
// target when the smaller one did.
RaterAnalysis AnalyseRaters(const SweepResult& result);

// The sweep as a plain-text table (for the terminal), with the conclusion line.
std::string SweepTable(const SweepResult& result);

// The sweep report; `plots` are file names relative to the report.
std::string SweepMarkdown(const SweepResult& result, const std::vector<std::string>& plots);

// The gnuplot script of the "energy saved vs human minutes" chart, and the data files it reads
// (name → content): one series per varied factor, points labelled with the factor's value.
// Nothing to plot (no point with a saving) gives an empty script.
struct SweepPlotInput {
  std::string script;
  std::vector<std::pair<std::string, std::string>> data_files;
};
SweepPlotInput SweepPlot(const SweepResult& result);

struct SweepFiles {
  std::string markdown;
  std::string html;
  std::string plot;          // the SVG, when drawn
  std::string plot_warning;  // why not, when not
};

// Writes <dir>/<sweep id>/{sweep.md,sweep.html,energy-saved-vs-human-minutes.svg}. INTERNAL when
// a file cannot be written; a missing gnuplot is not an error (plot_warning says so, and the
// report too).
absl::StatusOr<SweepFiles> WriteSweepReport(const SweepResult& result, const std::string& dir);

}  // namespace greenloop::experiment
