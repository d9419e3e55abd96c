#include "tools/greenloop/experiment/report.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/escaping.h"
#include "tools/greenloop/experiment/feature_summary.h"
#include "tools/greenloop/experiment/summary.h"

namespace greenloop::experiment {
namespace {

std::string Opt(bool has, double v, const char* format_spec) {
  return has ? fmt::format(fmt::runtime(format_spec), v) : "—";
}

// The energy's source, and whether some of it could not be read (a lower bound then).
std::string EnergySource(const cli::ModeResult& m) {
  const std::string source = m.energy_source().empty() ? "unknown" : m.energy_source();
  return m.energy_incomplete() ? source + ", incomplete" : source;
}

struct Row {
  std::string mode, state, to_target_j, to_target_wh, share, final_acc, best_acc, time, co2,
      verdicts, ratings, rater_hours, saved_per_min, source;
};

std::vector<Row> Rows(const cli::ExperimentResult& r) {
  std::vector<Row> rows;
  for (const cli::ModeResult& m : r.modes()) {
    const cli::ModeResult* base = BaselineOf(r, m.seed_index());
    Row row;
    row.mode = r.seeds() > 1 ? fmt::format("{}/s{}", m.mode(), m.seed_index()) : m.mode();
    row.state = m.state();
    const bool reached = m.has_energy_to_target_joules();
    row.to_target_j = Opt(reached, m.energy_to_target_joules(), "{:.1f}");
    row.to_target_wh = Opt(reached, m.energy_to_target_joules() / 3600.0, "{:.4f}");
    const bool share = reached && base != nullptr && base->has_energy_to_target_joules() &&
                       base->energy_to_target_joules() > 0;
    row.share = Opt(
        share, share ? 100.0 * m.energy_to_target_joules() / base->energy_to_target_joules() : 0.0,
        "{:.1f} %");
    row.final_acc = fmt::format("{:.4f}", m.final_accuracy());
    row.best_acc = fmt::format("{:.4f}", m.best_accuracy());
    row.time = fmt::format("{:.1f} s", m.duration_seconds());
    row.co2 = fmt::format("{:.4f}", m.carbon_grams());
    // Label verdicts are checked against the clean labels; a rule verdict has no label to check.
    row.verdicts = m.verdicts_applied() > 0 && m.mode() != "hitl_features"
                       ? fmt::format("{} ({:.0f} % right)", m.verdicts_applied(),
                                     100.0 * static_cast<double>(m.verdicts_correct()) /
                                         static_cast<double>(m.verdicts_applied()))
                       : fmt::format("{}", m.verdicts_applied());
    row.ratings = m.crowd().raters() > 0 ? fmt::format("{}", m.crowd().submitted()) : "—";
    row.rater_hours =
        m.crowd().raters() > 0 ? fmt::format("{:.3f}", m.crowd().modelled_seconds() / 3600) : "—";
    std::optional<double> saved =
        base != nullptr ? JoulesSavedPerRaterMinute(*base, m) : std::nullopt;
    row.saved_per_min = saved ? fmt::format("{:.1f}", *saved) : "—";
    row.source = EnergySource(m);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

std::string EscapeHtml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

absl::Status RunGnuplot(const std::string& dir_name, const std::string& script) {
  const std::filesystem::path dir(dir_name);
  const std::filesystem::path path = dir / "plots.gp";
  std::ofstream(path) << script;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    return absl::FailedPreconditionError(
        "plots not drawn: gnuplot is not installed (Debian package gnuplot-nox; "
        "deploy/local/bootstrap.sh installs it)");
  }
  const std::string cmd = fmt::format("cd '{}' && gnuplot plots.gp > plots.log 2>&1", dir.string());
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(fmt::format("gnuplot failed; see {}", (dir / "plots.log").string()));
  }
  return absl::OkStatus();
}

std::string MarkdownToHtml(const std::string& md, const std::string& dir,
                           const std::string& title) {
  const std::filesystem::path out(dir);
  std::string html = fmt::format(
      "<!doctype html><html><head><meta charset='utf-8'><title>greenloop {}</title><style>body{{"
      "font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;"
      "margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}</style></head>"
      "<body>\n",
      EscapeHtml(title));
  std::istringstream lines(md);
  bool in_table = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("|", 0) == 0) {
      if (line.find("---") != std::string::npos && line.find("| ") == std::string::npos) continue;
      if (line.rfind("|---", 0) == 0) continue;
      if (!in_table) html += "<table>\n";
      html += "<tr>";
      std::string cell;
      std::istringstream cells(line.substr(1));
      while (std::getline(cells, cell, '|')) html += "<td>" + EscapeHtml(cell) + "</td>";
      html += "</tr>\n";
      in_table = true;
      continue;
    }
    if (in_table) html += "</table>\n";
    in_table = false;
    if (line.rfind("# ", 0) == 0) {
      html += "<h1>" + EscapeHtml(line.substr(2)) + "</h1>\n";
    } else if (line.rfind("## ", 0) == 0) {
      html += "<h2>" + EscapeHtml(line.substr(3)) + "</h2>\n";
    } else if (line.rfind("### ", 0) == 0) {
      html += "<h3>" + EscapeHtml(line.substr(4)) + "</h3>\n";
    } else if (line.rfind("![", 0) == 0 && line.ends_with(".png)")) {
      const std::string name =
          line.substr(line.find('(') + 1, line.rfind(')') - line.find('(') - 1);
      std::ifstream png(out / name, std::ios::binary);
      std::stringstream ss;
      ss << png.rdbuf();
      html += fmt::format(
          "<figure><img alt='{0}' src='data:image/png;base64,{1}'><figcaption>{0}"
          "</figcaption></figure>\n",
          EscapeHtml(name), absl::Base64Escape(ss.str()));
    } else if (line.rfind("![", 0) == 0) {
      const std::string name =
          line.substr(line.find('(') + 1, line.rfind(')') - line.find('(') - 1);
      std::ifstream svg(out / name);
      std::stringstream ss;
      ss << svg.rdbuf();
      std::string body = ss.str();
      if (auto at = body.find("<svg"); at != std::string::npos) body = body.substr(at);
      html += "<figure>" + body + "</figure>\n";
    } else if (!line.empty()) {
      html += "<p>" + EscapeHtml(line) + "</p>\n";
    }
  }
  if (in_table) html += "</table>\n";
  html += "</body></html>\n";
  return html;
}

std::optional<double> JoulesSavedPerRaterMinute(const cli::ModeResult& baseline,
                                                const cli::ModeResult& mode) {
  if (!baseline.has_energy_to_target_joules() || !mode.has_energy_to_target_joules()) {
    return std::nullopt;
  }
  const double minutes = mode.crowd().modelled_seconds() / 60.0;
  if (minutes <= 0) return std::nullopt;
  return (baseline.energy_to_target_joules() - mode.energy_to_target_joules()) / minutes;
}

std::string SummaryTable(const cli::ExperimentResult& result) {
  std::string out = fmt::format("experiment {} — target accuracy {:.4f}{}\n",
                                result.experiment_id(), result.target_accuracy(),
                                result.target_is_baseline_best() ? " (the baseline's best)" : "");
  out += fmt::format("{:<11} {:<11} {:>11} {:>8} {:>8} {:>8} {:>9} {:>14} {:>8} {:>9} {:>11} {}\n",
                     "mode", "state", "J→target", "%base", "final", "best", "time", "verdicts",
                     "ratings", "rater-h", "J/rater-min", "energy");
  for (const Row& r : Rows(result)) {
    out +=
        fmt::format("{:<11} {:<11} {:>11} {:>8} {:>8} {:>8} {:>9} {:>14} {:>8} {:>9} {:>11} {}\n",
                    r.mode, r.state, r.to_target_j, r.share, r.final_acc, r.best_acc, r.time,
                    r.verdicts, r.ratings, r.rater_hours, r.saved_per_min, r.source);
  }
  return out;
}

std::string MarkdownReport(const cli::ExperimentResult& result,
                           const std::vector<std::string>& plots) {
  std::string md = fmt::format("# Experiment `{}`\n\n", result.experiment_id());
  if (!result.description().empty()) md += result.description() + "\n\n";
  md += fmt::format(
      "Spec `{}`; dataset {} with {:.0f} % injected label noise; state **{}**; started {}; "
      "wall time {:.1f} s.\n\n",
      result.spec_path(), result.dataset(), 100 * result.noise_rate(), result.state(),
      result.start_time(), result.wall_seconds());
  md += fmt::format(
      "Target accuracy: **{:.4f}**{}. Energy to target is the run's cumulative "
      "active energy at the first evaluation at or above the target, scoring and "
      "selection overhead included (they run in the training process).\n\n",
      result.target_accuracy(),
      result.target_is_baseline_best() ? " (the baseline's best accuracy)" : "");
  if (!result.summaries().empty()) md += SeedsMarkdown(result);
  md += FeatureMarkdown(result);
  md += "## Comparison\n\n";
  md +=
      "| mode | state | energy to target (J) | (Wh) | share of baseline | final acc. | best acc. "
      "| time | gCO2e | verdicts applied | ratings | rater-hours (modelled) | J saved per "
      "rater-minute | energy |\n";
  md += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const Row& r : Rows(result)) {
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                      r.mode, r.state, r.to_target_j, r.to_target_wh, r.share, r.final_acc,
                      r.best_acc, r.time, r.co2, r.verdicts, r.ratings, r.rater_hours,
                      r.saved_per_min, r.source);
  }
  md +=
      "\n`energy` says where the joules came from: `measured` (RAPL/NVML/hwmon) or `estimated` "
      "(no meter on this node: the collector's utilisation model). Rater time is `modelled` "
      "(simulated raters' drawn seconds per item), never measured.\n\n";
  if (!result.crowd_description().empty()) {
    md += fmt::format("Crowd: {}.\n\n", result.crowd_description());
  }
  for (const cli::ModeResult& m : result.modes()) {
    md += fmt::format("## {}{}\n\n| figure | value | source |\n|---|---|---|\n", m.mode(),
                      result.seeds() > 1 ? fmt::format(" (seed {})", m.seed_index()) : "");
    const auto row = [&md](const std::string& k, const std::string& v, const std::string& src) {
      md += fmt::format("| {} | {} | {} |\n", k, v, src);
    };
    row("run", fmt::format("`{}` on {}", m.run_id(), m.node().empty() ? "?" : m.node()), "");
    row("state", m.state() + (m.finish_reason().empty() ? "" : " (" + m.finish_reason() + ")"), "");
    if (!m.error().empty()) row("error", m.error(), "");
    row("steps",
        fmt::format("{} of {} planned; {} samples", m.steps(), m.planned_steps(),
                    m.samples_processed()),
        "");
    row("energy to target",
        m.has_energy_to_target_joules()
            ? fmt::format("{:.1f} J at step {} ({:.1f} s)", m.energy_to_target_joules(),
                          m.steps_to_target(), m.seconds_to_target())
            : "not reached",
        EnergySource(m));
    row("active energy, whole run",
        fmt::format("{:.1f} J (collector: {:.1f} J)", m.energy_joules(),
                    m.collector_active_joules()),
        EnergySource(m));
    row("idle energy over the run", fmt::format("{:.1f} J", m.idle_energy_joules()),
        EnergySource(m));
    for (const cli::DomainJoules& d : m.domains()) {
      row(fmt::format("domain {}", d.domain()),
          fmt::format("{:.1f} J active, {:.1f} J idle", d.active_energy_joules(),
                      d.idle_energy_joules()),
          d.source());
    }
    for (const cli::InfraEnergy& i : m.infra()) {
      row(fmt::format("infrastructure: {}", i.name()),
          i.error().empty()
              ? fmt::format("{:.1f} J active over {:.1f} s (pid {}, its process tree)",
                            i.active_energy_joules(), i.duration_seconds(), i.pid())
              : fmt::format("not counted: {}", i.error()),
          i.error().empty() ? i.source() : "");
    }
    if (m.has_infra_to_target_joules()) {
      row("infrastructure to target (in the share)",
          fmt::format("{:.1f} J", m.infra_to_target_joules()), EnergySource(m));
    }
    row("carbon", fmt::format("{:.4f} gCO2e", m.carbon_grams()),
        m.carbon_factors_source().empty() ? EnergySource(m) : m.carbon_factors_source());
    row("accuracy", fmt::format("final {:.4f}, best {:.4f}", m.final_accuracy(), m.best_accuracy()),
        "measured");
    if (m.has_test_accuracy()) {
      row("test accuracy (reported, never used to stop)",
          fmt::format("{:.4f} at stop; {:.4f} at the best smoothed validation accuracy ({})",
                      m.test_accuracy(), m.best_test_accuracy(),
                      Opt(m.has_best_smoothed_accuracy(), m.best_smoothed_accuracy(), "{:.4f}")),
          "measured");
    }
    if (m.macs() > 0) {
      row("modelled work",
          fmt::format("{:.3g} MACs ({:.1f} % evaluation){}", m.macs(),
                      100.0 * m.eval_macs() / m.macs(),
                      m.has_modelled_energy_to_target_joules()
                          ? fmt::format("; {:.1f} J to target at the baseline's J/MAC",
                                        m.modelled_energy_to_target_joules())
                          : ""),
          "modelled");
    }
    if (m.samples_pruned() > 0 || m.samples_reviewed() > 0) {
      row("sample relevance",
          fmt::format("{} samples pruned over the epochs; {} reviewed for noise",
                      m.samples_pruned(), m.samples_reviewed()),
          "");
    }
    if (m.feedback_errors() > 0) {
      row("degraded",
          fmt::format("{} enqueue calls failed; the run trained on without humans meanwhile",
                      m.feedback_errors()),
          "");
    }
    row("verdicts",
        fmt::format("{} received, {} applied; {} relabelled, {} dropped, {} reweighted; "
                    "{} items enqueued",
                    m.verdicts_received(), m.verdicts_applied(), m.samples_relabelled(),
                    m.samples_dropped(), m.samples_reweighted(), m.items_enqueued()),
        "");
    if (m.verdicts_applied() > 0 && m.mode() != "hitl_features") {
      row("verdict precision",
          fmt::format("{:.1f} % ({} of {} applied verdicts right against the clean labels)",
                      100.0 * static_cast<double>(m.verdicts_correct()) /
                          static_cast<double>(m.verdicts_applied()),
                      m.verdicts_correct(), m.verdicts_applied()),
          "measured");
    }
    if (m.crowd().raters() > 0) {
      const cli::CrowdSummary& c = m.crowd();
      row("crowd",
          fmt::format("{} raters ({} spammers), mean accuracy {:.3f}", c.raters(), c.spammers(),
                      c.mean_accuracy()),
          "modelled");
      row("ratings",
          fmt::format("{} submitted, {} skipped ({} unrecognised), {} right ({:.1f} %)",
                      c.submitted(), c.skipped(), c.unknown(), c.right(),
                      c.submitted() > 0 ? 100.0 * static_cast<double>(c.right()) /
                                              static_cast<double>(c.submitted())
                                        : 0.0),
          "measured (answers vs clean labels)");
      row("rater time",
          fmt::format("{:.1f} min modelled, {:.1f} s wall ({:.0f}x compression); {:.1f} real "
                      "raters would keep up with this run in real time",
                      c.modelled_seconds() / 60, c.wall_seconds(), c.time_compression(),
                      m.real_raters_equivalent()),
          "modelled");
      if (c.rpc_errors() > 0) {
        row("rater API errors", fmt::format("{} (last: {})", c.rpc_errors(), c.last_error()), "");
      }
    }
    row("model",
        fmt::format("{} parameters, {} MACs/sample, batch {}", m.parameter_count(),
                    m.macs_per_sample(), m.batch_size()),
        "");
    row("projection at 10 % / 25 %",
        fmt::format("{} / {} J (error {} / {})",
                    Opt(m.has_projection_at_10(), m.projection_at_10(), "{:.1f}"),
                    Opt(m.has_projection_at_25(), m.projection_at_25(), "{:.1f}"),
                    Opt(m.has_projection_error_10(), 100 * m.projection_error_10(), "{:+.1f} %"),
                    Opt(m.has_projection_error_25(), 100 * m.projection_error_25(), "{:+.1f} %")),
        "projection errors only for runs that used their whole budget");
    md += "\n";
  }
  if (!plots.empty()) {
    md += "## Plots\n\n";
    for (const std::string& p : plots) md += fmt::format("![{}]({})\n\n", p, p);
  }
  return md;
}

absl::StatusOr<ReportFiles> WriteReport(const cli::ExperimentResult& result,
                                        const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path out = fs::path(dir) / result.experiment_id();
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec)
    return absl::InternalError(fmt::format("cannot create {}: {}", out.string(), ec.message()));
  ReportFiles files;

  // Data for gnuplot: one file per mode.
  std::string curves, projections;
  int n = 0;
  for (const cli::ModeResult& m : result.modes()) {
    const std::string data = fmt::format("curve-{}.dat", m.mode());
    std::ofstream f(out / data);
    f << "# step energy_joules accuracy\n";
    for (const cli::CurvePoint& p : m.curve()) {
      f << p.step() << " " << p.energy_joules() << " " << p.accuracy() << "\n";
    }
    if (!m.curve().empty()) {
      curves += fmt::format("{}'{}' using 2:3 with linespoints title '{}'", n++ > 0 ? ", " : "",
                            data, m.mode());
    }
    const std::string pdata = fmt::format("projection-{}.dat", m.mode());
    std::ofstream pf(out / pdata);
    pf << "# fraction relative_error\n";
    const double actual = m.energy_joules();
    bool any = false;
    if (actual > 0 && m.steps() >= m.planned_steps() && m.planned_steps() > 0) {
      for (const cli::ProjectionPoint& p : m.projections()) {
        pf << p.fraction() * 100 << " " << 100 * (p.projected_joules() / actual - 1) << "\n";
        any = true;
      }
    }
    if (any) {
      projections += fmt::format("{}'{}' using 1:2 with lines title '{}'",
                                 projections.empty() ? "" : ", ", pdata, m.mode());
    }
  }
  std::ofstream domains(out / "domains.dat");
  domains << "# mode active_joules idle_joules\n";
  for (const cli::ModeResult& m : result.modes()) {
    domains << m.mode() << " " << m.collector_active_joules() << " " << m.idle_energy_joules()
            << "\n";
  }
  domains.close();
  std::string source = "unknown";
  for (const cli::ModeResult& m : result.modes()) {
    if (!m.energy_source().empty()) source = m.energy_source();
  }
  std::string script = "set terminal svg size 800,480 dynamic enhanced font 'sans,12'\n";
  std::vector<std::string> plots;
  if (!curves.empty()) {
    script += fmt::format(
        "set output 'accuracy-vs-energy.svg'\nset title 'Test accuracy vs cumulative active "
        "energy ({})'\nset xlabel 'energy (J)'\nset ylabel 'test accuracy'\nset key bottom right\n"
        "set grid\n{}plot {}\n",
        source,
        result.target_accuracy() > 0
            ? fmt::format("set arrow from graph 0, first {0} to graph 1, first {0} nohead dt 2\n",
                          result.target_accuracy())
            : "",
        curves);
    plots.push_back("accuracy-vs-energy.svg");
  }
  script += fmt::format(
      "unset arrow\nset output 'energy-by-domain.svg'\nset title 'Energy per run: active and idle "
      "({})'\nset style data histograms\nset style histogram rowstacked\nset style fill solid 0.8 "
      "border -1\nset boxwidth 0.6\nset xlabel 'mode'\nset ylabel 'energy (J)'\nset key top left\n"
      "plot 'domains.dat' using 2:xtic(1) title 'active', '' using 3 title 'idle'\n",
      source);
  plots.push_back("energy-by-domain.svg");
  if (!projections.empty()) {
    script += fmt::format(
        "set output 'projection-error.svg'\nset style data lines\nset title 'Early projection of "
        "total energy: error over the run'\nset xlabel 'share of planned steps done (%)'\nset "
        "ylabel 'projected / actual - 1 (%)'\nset key top right\nset grid\nplot {}\n",
        projections);
    plots.push_back("projection-error.svg");
  }
  if (absl::Status s = RunGnuplot(out.string(), script); !s.ok()) {
    files.plot_warning = std::string(s.message());
    plots.clear();
  }
  for (const std::string& p : plots) files.plots.push_back((out / p).string());

  for (const auto& [name, png] : ExplanationPictures(result)) {
    std::ofstream(out / name, std::ios::binary) << png;
  }
  std::string md = MarkdownReport(result, plots);
  if (!files.plot_warning.empty()) md += "_" + files.plot_warning + "_\n";
  files.markdown = (out / "report.md").string();
  std::ofstream(files.markdown) << md;

  // HTML: the same content, tables as HTML, SVGs inlined so the file stands alone.
  const std::string html = MarkdownToHtml(md, out.string(), result.experiment_id());
  files.html = (out / "report.html").string();
  std::ofstream(files.html) << html;
  if (!fs::exists(files.markdown) || !fs::exists(files.html)) {
    return absl::InternalError(fmt::format("cannot write the report under {}", out.string()));
  }
  return files;
}

}  // namespace greenloop::experiment
