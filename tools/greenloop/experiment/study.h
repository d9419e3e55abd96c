// The Green-ML study (after Mavromatis, Katsaros & Khan, "Computing Within Limits", 2024): what
// `greenloop study SPEC.yaml` plans and concludes. A grid over architecture × width × depth ×
// batch size × learning rate × threads, each point one baseline run of the spec (with its
// inference benchmark), then the relations between energy and model size: correlations, log-log
// fits, the accuracy/energy Pareto front, prediction errors and guidelines for this cluster.
//
// This file holds the parts that need no service: the plan (PlanStudy), the figures of a point
// (RowOf), the analysis (AnalyseStudy), the report (StudyMarkdown) and the benchmark's line
// (StudyLine). The command (study_command.cc) runs the points through RunPoints (points.h).
//
//   absl::StatusOr<StudyPlan> plan = PlanStudy(spec, {.models = {"cnn", "mlp"}}, "s-1", false);
//   ... run plan->points, RowOf each result ...
//   StudyAnalysis a = AnalyseStudy(rows);
//   std::cout << StudyLine(a);
//
// Figures keep their provenance: energy `measured` or `estimated` as the collector said (the
// rows carry its label), MACs `modelled` (counted per layer).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/greenloop/experiment/results.pb.h"
#include "tools/greenloop/experiment/spec.h"

namespace greenloop::experiment {

// The grid as given on the command line (config::Schema splits comma-separated lists). An empty
// list leaves that factor at the spec's value (for width and depth: the model's default).
struct StudyGrid {
  std::vector<std::string> models;  // spec model names: cnn, mlp, lenet5, resnet, ...
  std::vector<std::string> widths;
  std::vector<std::string> depths;
  std::vector<std::string> batch_sizes;
  std::vector<std::string> learning_rates;
  std::vector<std::string> threads;
  // A larger grid needs `yes`.
  std::int64_t max_points = 48;
};

struct StudyPoint {
  std::string id;     // <study id>-p<NN>: the experiment id of its run
  std::string label;  // "resnet w16 d1 · batch 64 · lr 0.001 · 2 threads"
  Spec spec;          // the spec with the point's model and settings, baseline mode only
};

struct StudyPlan {
  std::string study_id;
  std::vector<StudyPoint> points;
};

// Builds the grid's points. Width and depth vary only the models that have them (LeNet-5 has
// neither, the bag of words no depth). INVALID_ARGUMENT, one line naming the flag, for an
// unknown architecture or one that does not fit the spec's dataset (--models), a value that is
// not a number or out of range, a width or depth that does not fit a model of the grid
// (--widths, --depths: e.g. a CNN deeper than 4), a study id that is malformed or too long, or a
// grid of more than grid.max_points points without `yes` (--max_points).
absl::StatusOr<StudyPlan> PlanStudy(const Spec& spec, const StudyGrid& grid,
                                    const std::string& study_id, bool yes);

// The figures of one point as the report and the regressions use them.
struct StudyRow {
  std::string id;
  std::string label;
  std::string state;         // the run's
  std::string architecture;  // "MODEL_KIND_RESNET width=16 depth=1"
  double parameters = 0;
  double macs_per_sample = 0;  // modelled, forward
  double batch_size = 0;
  double learning_rate = 0;
  double threads = 0;  // 0: the trainer's setting
  double samples = 0;  // training samples processed
  double energy_joules = 0;
  std::string energy_source;  // measured or estimated
  double energy_per_sample_joules = 0;
  std::optional<double> energy_to_target_joules;
  double accuracy = 0;  // test accuracy (validation runs) or the best evaluation's
  double duration_seconds = 0;
  double idle_joules = 0;
  double carbon_grams = 0;
  // (projected − final) / final of the last projection within the first 5 % (25 %) of the run.
  std::optional<double> projection_error_5;
  std::optional<double> projection_error_25;
  std::vector<cli::InferencePoint> inference;
  std::string node;
};

// The row of point `point` from its run's figures. `learning_rate` and `threads` come from the
// point's spec.
StudyRow RowOf(const StudyPoint& point, const cli::ModeResult& run);

// Pearson's and Spearman's correlation of energy with one quantity over the succeeded rows.
struct Correlation {
  std::string quantity;  // parameters, MACs, MACs per parameter, batch size, duration
  std::optional<double> pearson;
  std::optional<double> spearman;
};

// ln(energy) = intercept + slope · ln(x), least squares over the succeeded rows.
struct LogLogFit {
  std::string quantity;
  double slope = 0;
  double intercept = 0;
  double r_squared = 0;
};

struct StudyAnalysis {
  std::size_t points = 0;           // rows that succeeded
  std::size_t failed = 0;           // rows that did not
  std::size_t architectures = 0;    // families among the succeeded
  std::vector<std::size_t> pareto;  // indices of rows on the accuracy/energy front, cheapest first
  std::vector<Correlation> correlations;
  std::vector<LogLogFit> fits;       // energy vs parameters, vs MACs
  std::optional<double> loo;         // training energy, leave-one-out (prediction.h)
  std::optional<double> loao;        // leave-one-architecture-out
  std::optional<double> infer_loao;  // inference energy per sample, leave-one-architecture-out
  std::optional<double> proj5;       // mean |projection error| at 5 % and at 25 % of the run
  std::optional<double> proj25;
  std::vector<std::string> guidelines;  // sentences
  std::vector<StudyRow> rows;
};

// Pearson's correlation; nothing with fewer than 3 pairs or a constant side.
std::optional<double> Pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman's rank correlation (ties take their mean rank); the same conditions.
std::optional<double> Spearman(const std::vector<double>& x, const std::vector<double>& y);

// Indices of the rows not dominated by another (as accurate or more for no more energy, one of
// them strictly), ordered by energy.
std::vector<std::size_t> ParetoFront(const std::vector<StudyRow>& rows);

StudyAnalysis AnalyseStudy(std::vector<StudyRow> rows);

// The benchmark's line:
// "study: points=N archs=N loo=N.N% loao=N.N% infer_loao=N.N% proj5=N.N% proj25=N.N% pareto=N"
// (nan where a figure could not be computed).
std::string StudyLine(const StudyAnalysis& analysis);

// The report in Markdown: the grid's table, the Pareto front, the correlations, the fits,
// inference energy per batch size, the prediction errors and the guidelines; `plots` are file
// names relative to the report.
std::string StudyMarkdown(const std::string& study_id, const std::string& spec_path,
                          const StudyAnalysis& analysis, const std::vector<std::string>& plots);

struct StudyFiles {
  std::string markdown;
  std::string html;
  std::vector<std::string> plots;  // the SVGs drawn
  std::string plot_warning;        // why not, when not (gnuplot missing, nothing to plot)
};

// Writes <dir>/<study id>/{study.md,study.html} and the plots (accuracy vs energy with the Pareto
// front, energy vs parameters and vs MACs on log-log axes with their fits, inference energy per
// sample vs batch size). INTERNAL when a file cannot be written; a missing gnuplot is not an
// error (plot_warning says so, and the report too).
absl::StatusOr<StudyFiles> WriteStudyReport(const std::string& study_id,
                                            const std::string& spec_path,
                                            const StudyAnalysis& analysis, const std::string& dir);

}  // namespace greenloop::experiment
