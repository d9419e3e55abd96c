// The experiment report: a Markdown file and a self-contained HTML file (plots inlined as SVG)
// with the comparison table, a table per mode and the plots — accuracy against cumulative energy
// for every mode on one chart, energy by domain, and the energy projection over the run — drawn
// by gnuplot (Debian gnuplot-nox, SVG terminal).
//
// Every figure carries where it came from: `measured` (a meter), `estimated` (no meter on the
// node: the collector's model) or `modelled` (simulated human time).
//
//   absl::StatusOr<ReportFiles> files = WriteReport(result, ".local/experiments");
//
// Thread-safety: pure functions, except that WriteReport runs gnuplot in a child process.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/greenloop/experiment/results.pb.h"

namespace greenloop::experiment {

struct ReportFiles {
  std::string markdown;
  std::string html;
  std::vector<std::string> plots;  // SVG files
  std::string plot_warning;        // why plots are missing, when they are
};

// The comparison table as plain text (for the terminal).
std::string SummaryTable(const cli::ExperimentResult& result);

// The Markdown report; `plots` are file names relative to the report.
std::string MarkdownReport(const cli::ExperimentResult& result,
                           const std::vector<std::string>& plots);

// Writes <dir>/<experiment_id>/{report.md,report.html,*.svg}. INTERNAL when a file cannot be
// written; a missing gnuplot is not an error (plot_warning says so, and the report too).
absl::StatusOr<ReportFiles> WriteReport(const cli::ExperimentResult& result,
                                        const std::string& dir);

// Shared with the sweep report (sweep.h): runs gnuplot on `script` with `dir` as the working
// directory (the script and gnuplot's log are left there as plots.gp and plots.log).
// FAILED_PRECONDITION when gnuplot is not installed, INTERNAL when it fails.
absl::Status RunGnuplot(const std::string& dir, const std::string& script);

// Converts the Markdown this file writes (headings, paragraphs, pipe tables, one image per line)
// into a self-contained HTML page titled `title`; images are SVG files under `dir`, inlined.
std::string MarkdownToHtml(const std::string& markdown, const std::string& dir,
                           const std::string& title);

// Escapes <, >, & and " for HTML text and attributes.
std::string EscapeHtml(const std::string& text);

// Joules saved per modelled rater-minute versus the baseline's energy to target; nothing when
// either did not reach the target or the mode used no rater time.
std::optional<double> JoulesSavedPerRaterMinute(const cli::ModeResult& baseline,
                                                const cli::ModeResult& mode);

}  // namespace greenloop::experiment
