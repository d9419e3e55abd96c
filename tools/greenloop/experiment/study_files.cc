// The study's report files and plots (study.h, WriteStudyReport).
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "tools/greenloop/experiment/report.h"
#include "tools/greenloop/experiment/study.h"

namespace greenloop::experiment {
namespace {

struct PlotInput {
  std::string script;
  std::vector<std::pair<std::string, std::string>> data_files;
  std::vector<std::string> plots;
};

constexpr const char* kParetoPlot = "accuracy-vs-energy.svg";
constexpr const char* kParamsPlot = "energy-vs-parameters.svg";
constexpr const char* kMacsPlot = "energy-vs-macs.svg";
constexpr const char* kInferencePlot = "inference-vs-batch.svg";

std::string Terminal(const char* name, const std::string& title, const std::string& x,
                     const std::string& y) {
  return fmt::format(
      "set terminal svg size 720,480 dynamic\nset output '{}'\nset title \"{}\"\n"
      "set xlabel \"{}\"\nset ylabel \"{}\"\nset grid\nset key below horizontal\n",
      name, title, x, y);
}

PlotInput StudyPlots(const StudyAnalysis& a) {
  PlotInput in;
  if (a.rows.size() < 2) return in;
  std::string points, front, sizes;
  for (const StudyRow& r : a.rows) {
    points += fmt::format("{} {}\n", r.energy_joules, r.accuracy);
    sizes += fmt::format("{} {} {}\n", r.parameters, r.macs_per_sample, r.energy_joules);
  }
  for (std::size_t i : a.pareto) {
    front += fmt::format("{} {}\n", a.rows[i].energy_joules, a.rows[i].accuracy);
  }
  in.data_files = {{"points.dat", points}, {"front.dat", front}, {"sizes.dat", sizes}};
  const std::string source = a.rows.front().energy_source;
  std::string& s = in.script;
  s += Terminal(kParetoPlot, "Accuracy against training energy",
                "training energy (J, " + source + ")", "accuracy");
  s += "plot 'points.dat' using 1:2 with points pt 7 title 'points', 'front.dat' using 1:2 with "
       "linespoints lw 2 title 'Pareto front'\nunset output\n";
  const std::pair<const char*, int> fits[] = {{kParamsPlot, 1}, {kMacsPlot, 2}};
  for (std::size_t f = 0; f < 2; ++f) {
    const LogLogFit& fit = a.fits[f];
    s += Terminal(fits[f].first, "Training energy against " + fit.quantity, fit.quantity + " (log)",
                  "energy (J, " + source + ", log)");
    s += fmt::format(
        "set logscale xy\nplot 'sizes.dat' using {}:3 with points pt 7 title 'points', "
        "exp({}) * x**{} title 'fit: slope {:.2f}, R² {:.2f}'\nunset logscale\nunset output\n",
        fits[f].second, fit.intercept, fit.slope, fit.slope, fit.r_squared);
  }
  in.plots = {kParetoPlot, kParamsPlot, kMacsPlot};
  std::string series;
  for (std::size_t i = 0; i < a.rows.size(); ++i) {
    std::string data;
    for (const cli::InferencePoint& p : a.rows[i].inference) {
      if (p.error().empty() && p.joules_per_sample() > 0) {
        data += fmt::format("{} {}\n", p.batch_size(), 1000 * p.joules_per_sample());
      }
    }
    if (data.empty()) continue;
    const std::string name = fmt::format("inference-{}.dat", i);
    in.data_files.emplace_back(name, data);
    series += fmt::format("{}'{}' using 1:2 with linespoints title \"{}\"",
                          series.empty() ? "" : ", ", name, a.rows[i].label);
  }
  if (!series.empty()) {
    s += Terminal(kInferencePlot, "Inference energy per sample against batch size",
                  "batch size (log)", "mJ per sample (" + source + ", log)");
    s += "set logscale xy\nplot " + series + "\nunset logscale\nunset output\n";
    in.plots.push_back(kInferencePlot);
  }
  return in;
}

}  // namespace

absl::StatusOr<StudyFiles> WriteStudyReport(const std::string& study_id,
                                            const std::string& spec_path,
                                            const StudyAnalysis& analysis, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path out = fs::path(dir) / study_id;
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot create {}: {}", out.string(), ec.message()));
  }
  StudyFiles files;
  const PlotInput plot = StudyPlots(analysis);
  if (plot.script.empty()) {
    files.plot_warning = "plots not drawn: fewer than 2 points succeeded";
  } else {
    for (const auto& [name, content] : plot.data_files) std::ofstream(out / name) << content;
    if (absl::Status s = RunGnuplot(out.string(), plot.script); !s.ok()) {
      files.plot_warning = std::string(s.message());
    } else {
      files.plots = plot.plots;
    }
  }
  std::string md = StudyMarkdown(study_id, spec_path, analysis, files.plots);
  if (!files.plot_warning.empty()) md += "\n_" + files.plot_warning + "_\n";
  files.markdown = (out / "study.md").string();
  std::ofstream(files.markdown) << md;
  files.html = (out / "study.html").string();
  std::ofstream(files.html) << MarkdownToHtml(md, out.string(), "study " + study_id);
  if (!fs::exists(files.markdown) || !fs::exists(files.html)) {
    return absl::InternalError(fmt::format("cannot write the study report under {}", out.string()));
  }
  return files;
}

}  // namespace greenloop::experiment
