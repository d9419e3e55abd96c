#include "tools/greenloop/experiment/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "tools/greenloop/experiment/report.h"
#include "tools/greenloop/experiment/runner.h"

namespace greenloop::experiment {
namespace {

// The trainer's and feedback service's identifier rule (ValidateIdentifier): 1 to 63 characters
// of [a-z0-9-], not starting with '-'.
constexpr std::size_t kMaxIdLength = 63;
constexpr std::string_view kPlotName = "energy-saved-vs-human-minutes.svg";

bool ValidIdentifier(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || id[0] == '-') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

absl::Status Invalid(SweepFactor factor, std::string_view message) {
  return absl::InvalidArgumentError(fmt::format("--{}: {}", FactorName(factor), message));
}

// Parses every value of one factor; strict: the whole text must be the number.
absl::StatusOr<std::vector<double>> ParseValues(SweepFactor factor,
                                                const std::vector<std::string>& items,
                                                const CrowdSpec& crowd) {
  std::vector<double> out;
  std::set<double> seen;
  for (const std::string& item : items) {
    if (item.empty()) return Invalid(factor, "an empty value in the list (write e.g. 3,6,9)");
    double v = 0;
    const char* end = item.data() + item.size();
    if (factor == SweepFactor::kRaters) {
      std::int64_t n = 0;
      auto [ptr, ec] = std::from_chars(item.data(), end, n);
      if (ec != std::errc() || ptr != end) {
        return Invalid(factor, fmt::format("'{}' is not a whole number of raters", item));
      }
      if (n < std::max<std::int64_t>(1, crowd.ratings_per_item)) {
        return Invalid(factor, fmt::format("{} is below the spec's crowd.ratings_per_item ({}): no "
                                           "item could get its k ratings",
                                           n, crowd.ratings_per_item));
      }
      if (n > 200) return Invalid(factor, fmt::format("{} is above 200 raters", n));
      v = static_cast<double>(n);
    } else {
      auto [ptr, ec] = std::from_chars(item.data(), end, v);
      if (ec != std::errc() || ptr != end || !std::isfinite(v)) {
        return Invalid(factor, fmt::format("'{}' is not a number", item));
      }
      if (factor == SweepFactor::kAccuracy) {
        if (!(v > 0.0 && v <= 1.0)) {
          return Invalid(factor, fmt::format("{} is not an accuracy in (0, 1]", item));
        }
        if (v < crowd.accuracy_min) {
          return Invalid(factor, fmt::format("{} is below the spec's crowd.accuracy_min ({}); "
                                             "lower that in the spec to sweep below it",
                                             item, crowd.accuracy_min));
        }
      } else if (!(v >= 0.0 && v <= 1.0)) {
        return Invalid(factor, fmt::format("{} is not a share in [0, 1]", item));
      }
    }
    if (!seen.insert(v).second) return Invalid(factor, fmt::format("{} is given twice", item));
    out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

double ValueOf(SweepFactor factor, const CrowdSpec& crowd) {
  switch (factor) {
    case SweepFactor::kRaters:
      return static_cast<double>(crowd.raters);
    case SweepFactor::kAccuracy:
      return crowd.accuracy_mean;
    case SweepFactor::kSpammerShare:
      return crowd.spammer_share;
  }
  return 0;
}

// "6", "0.95", "0.2": the shortest text that reads back as the value.
std::string ValueText(double v) { return fmt::format("{}", v); }

// How a factor is named: the flag, the label prefix ("raters = 6"), the id prefix
// ("raters-6"), and the per-point plot tag ("6 raters", "acc 0.95", "spam 0.2").
struct FactorNames {
  const char* flag;
  const char* label;
  const char* id;
  const char* tag_before;
  const char* tag_after;
};

const FactorNames& Names(SweepFactor factor) {
  static constexpr FactorNames kRaters{"raters", "raters", "raters", "", " raters"};
  static constexpr FactorNames kAccuracy{"accuracy", "accuracy", "accuracy", "acc ", ""};
  static constexpr FactorNames kSpammers{"spammer_share", "spammer share", "spammers", "spam ", ""};
  switch (factor) {
    case SweepFactor::kAccuracy:
      return kAccuracy;
    case SweepFactor::kSpammerShare:
      return kSpammers;
    case SweepFactor::kRaters:
      break;
  }
  return kRaters;
}

std::string Label(SweepFactor factor, double v) {
  return fmt::format("{} = {}", Names(factor).label, ValueText(v));
}

std::string IdPart(SweepFactor factor, double v) {
  std::string value = ValueText(v);
  std::replace(value.begin(), value.end(), '.', 'p');
  std::replace(value.begin(), value.end(), '+', 'p');
  return fmt::format("{}-{}", Names(factor).id, value);
}

std::string PlotTag(SweepFactor factor, double v) {
  return fmt::format("{}{}{}", Names(factor).tag_before, ValueText(v), Names(factor).tag_after);
}

std::string Opt(const std::optional<double>& v, const char* format_spec) {
  return v ? fmt::format(fmt::runtime(format_spec), *v) : "—";
}

std::string EnergySource(const cli::ModeResult& m) {
  return m.energy_source().empty() ? "unknown" : m.energy_source();
}

// "estimated" if any run's energy was estimated, else "measured", else "unknown".
std::string SweepEnergySource(const SweepResult& r) {
  std::set<std::string> sources;
  if (r.baseline) sources.insert(EnergySource(*r.baseline));
  for (const SweepOutcome& o : r.points) sources.insert(EnergySource(o.run));
  if (sources.contains("estimated")) return "estimated";
  if (sources.contains("measured")) return "measured";
  return "unknown";
}

// The outcomes of `factor`'s series (the centre and that factor's points) whose run succeeded,
// in ascending value.
std::vector<const SweepOutcome*> Series(const SweepResult& r, SweepFactor factor,
                                        bool succeeded_only) {
  std::vector<const SweepOutcome*> out;
  for (const SweepOutcome& o : r.points) {
    if (o.point.factor.has_value() && *o.point.factor != factor) continue;
    if (succeeded_only && o.run.state() != "succeeded") continue;
    out.push_back(&o);
  }
  std::stable_sort(out.begin(), out.end(), [factor](const SweepOutcome* a, const SweepOutcome* b) {
    return ValueOf(factor, a->point.crowd) < ValueOf(factor, b->point.crowd);
  });
  return out;
}

bool Varied(const SweepResult& r, SweepFactor factor) {
  return std::any_of(r.points.begin(), r.points.end(),
                     [factor](const SweepOutcome& o) { return o.point.factor == factor; });
}

struct Row {
  std::string point, raters, accuracy, spammers, state, to_target, saved, saved_share, minutes,
      per_minute, final_acc, best_acc, verdicts, ratings, source;
};

Row RowOf(const std::optional<cli::ModeResult>& baseline, const SweepOutcome& o) {
  const PointFigures f = FiguresOf(baseline, o.run);
  const CrowdSpec& c = o.point.crowd;
  Row row;
  row.point = o.point.label;
  row.raters = fmt::format("{}", c.raters);
  row.accuracy = fmt::format("{:.3f}", c.accuracy_mean);
  row.spammers = fmt::format("{:.0f} %", 100 * c.spammer_share);
  row.state = o.run.state();
  row.to_target = f.reached ? fmt::format("{:.1f}", o.run.energy_to_target_joules())
                            : std::string("not reached");
  row.saved = Opt(f.saved_joules, "{:+.1f}");
  row.saved_share = f.saved_share ? fmt::format("{:+.1f} %", 100 * *f.saved_share) : "—";
  row.minutes = fmt::format("{:.1f}", f.human_minutes);
  row.per_minute = Opt(f.joules_per_rater_minute, "{:.2f}");
  row.final_acc = fmt::format("{:.4f}", o.run.final_accuracy());
  row.best_acc = fmt::format("{:.4f}", o.run.best_accuracy());
  row.verdicts = f.verdict_precision ? fmt::format("{} ({:.0f} % right)", o.run.verdicts_applied(),
                                                   100 * *f.verdict_precision)
                                     : fmt::format("{}", o.run.verdicts_applied());
  row.ratings = fmt::format("{}", o.run.crowd().submitted());
  row.source = EnergySource(o.run);
  return row;
}

std::string TargetText(const SweepResult& r) {
  return fmt::format("{:.4f}{}", r.target_accuracy,
                     r.target_is_baseline_best ? " (the baseline's best)" : " (the spec's)");
}

std::string BaselineText(const SweepResult& r) {
  if (!r.baseline) return "did not run";
  const cli::ModeResult& b = *r.baseline;
  return fmt::format(
      "run `{}` {}; energy to target {}; best accuracy {:.4f}; {:.1f} s", b.run_id(), b.state(),
      b.has_energy_to_target_joules()
          ? fmt::format("{:.1f} J ({})", b.energy_to_target_joules(), EnergySource(b))
          : std::string("not reached"),
      b.best_accuracy(), b.duration_seconds());
}

}  // namespace

std::string FactorName(SweepFactor factor) { return Names(factor).flag; }

std::string DefaultSweepId(const std::string& spec_name, std::time_t now) {
  std::string name = spec_name.substr(0, 16);
  while (!name.empty() && name.back() == '-') name.pop_back();
  return fmt::format("{}-sweep-{}", name.empty() ? "x" : name, UtcIdStamp(now));
}

absl::StatusOr<SweepPlan> PlanSweep(const Spec& spec, const SweepValues& values,
                                    const std::string& sweep_id) {
  const CrowdSpec& centre = spec.crowd;
  if (centre.raters < std::max<std::int64_t>(1, centre.ratings_per_item)) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: crowd.raters ({}) must be at least 1 and crowd.ratings_per_item ({}): the sweep's "
        "centre is the spec's crowd",
        spec.path, centre.raters, centre.ratings_per_item));
  }
  SweepPlan plan;
  plan.sweep_id = sweep_id;
  plan.baseline_id = sweep_id + "-baseline";
  SweepPoint c;
  c.label = "centre";
  c.id = sweep_id + "-centre";
  c.crowd = centre;
  plan.points.push_back(c);
  const std::vector<std::pair<SweepFactor, const std::vector<std::string>*>> lists = {
      {SweepFactor::kRaters, &values.raters},
      {SweepFactor::kAccuracy, &values.accuracy},
      {SweepFactor::kSpammerShare, &values.spammer_share}};
  for (const auto& [factor, items] : lists) {
    absl::StatusOr<std::vector<double>> parsed = ParseValues(factor, *items, centre);
    if (!parsed.ok()) return parsed.status();
    for (double v : *parsed) {
      if (v == ValueOf(factor, centre)) continue;  // the centre, already planned
      SweepPoint p;
      p.factor = factor;
      p.value = v;
      p.label = Label(factor, v);
      p.id = fmt::format("{}-{}", sweep_id, IdPart(factor, v));
      p.crowd = centre;
      switch (factor) {
        case SweepFactor::kRaters:
          p.crowd.raters = static_cast<std::int64_t>(v);
          break;
        case SweepFactor::kAccuracy:
          p.crowd.accuracy_mean = v;
          break;
        case SweepFactor::kSpammerShare:
          p.crowd.spammer_share = v;
          break;
      }
      plan.points.push_back(p);
    }
  }
  // Every run id (<experiment id>-<mode>) must pass the trainer's identifier rule.
  constexpr std::string_view kLongestMode = "-baseline";
  for (const std::string& id : [&plan] {
         std::vector<std::string> ids = {plan.baseline_id};
         for (const SweepPoint& p : plan.points) ids.push_back(p.id);
         return ids;
       }()) {
    if (!ValidIdentifier(id) || id.size() + kLongestMode.size() > kMaxIdLength) {
      return absl::InvalidArgumentError(fmt::format(
          "sweep id '{}' gives the run id '{}{}', which is not 1 to 63 characters of [a-z0-9-]: "
          "give a shorter --sweep_id",
          sweep_id, id, kLongestMode));
    }
  }
  return plan;
}

PointFigures FiguresOf(const std::optional<cli::ModeResult>& baseline, const cli::ModeResult& run) {
  PointFigures f;
  f.reached = run.has_energy_to_target_joules();
  f.human_minutes = run.crowd().modelled_seconds() / 60.0;
  if (baseline && baseline->has_energy_to_target_joules() && f.reached) {
    const double base = baseline->energy_to_target_joules();
    f.saved_joules = base - run.energy_to_target_joules();
    if (base > 0) f.saved_share = *f.saved_joules / base;
    f.joules_per_rater_minute = JoulesSavedPerRaterMinute(*baseline, run);
  }
  if (run.verdicts_applied() > 0 && run.mode() != "hitl_features") {  // rules have no label
    f.verdict_precision =
        static_cast<double>(run.verdicts_correct()) / static_cast<double>(run.verdicts_applied());
  }
  return f;
}

RaterAnalysis AnalyseRaters(const SweepResult& result) {
  RaterAnalysis a;
  if (!Varied(result, SweepFactor::kRaters)) {
    a.conclusion = "crowd size was not varied: no conclusion on adding raters";
    return a;
  }
  if (!result.baseline || !result.baseline->has_energy_to_target_joules()) {
    a.conclusion =
        "the baseline did not reach the target, so no saving can be computed: no conclusion on "
        "adding raters";
    return a;
  }
  const std::vector<const SweepOutcome*> series = Series(result, SweepFactor::kRaters, true);
  const double floor_joules = result.min_saving_share * result.baseline->energy_to_target_joules();
  for (std::size_t i = 1; i < series.size(); ++i) {
    const SweepOutcome& from = *series[i - 1];
    const SweepOutcome& to = *series[i];
    const PointFigures f0 = FiguresOf(result.baseline, from.run);
    const PointFigures f1 = FiguresOf(result.baseline, to.run);
    MarginalStep s;
    s.from_raters = from.point.crowd.raters;
    s.to_raters = to.point.crowd.raters;
    s.delta_minutes = f1.human_minutes - f0.human_minutes;
    if (f0.saved_joules && f1.saved_joules) {
      s.delta_saved_joules = *f1.saved_joules - *f0.saved_joules;
      if (s.delta_minutes > 0) s.joules_per_extra_minute = *s.delta_saved_joules / s.delta_minutes;
      s.pays = *s.delta_saved_joules > floor_joules;
      if (s.delta_minutes <= 0) {
        s.note = "no extra rater time";
      }
    } else if (f0.reached && !f1.reached) {
      s.pays = false;
      s.note = fmt::format("{} raters did not reach the target", s.to_raters);
    } else if (!f0.reached && f1.reached) {
      s.pays = true;
      s.note = fmt::format("only {} raters reached the target", s.to_raters);
    } else {
      s.note = "neither reached the target";
    }
    if (s.pays == false && !a.stops_paying_beyond) a.stops_paying_beyond = s.from_raters;
    a.steps.push_back(s);
  }
  const bool any_known = std::any_of(a.steps.begin(), a.steps.end(),
                                     [](const MarginalStep& s) { return s.pays.has_value(); });
  if (a.stops_paying_beyond) {
    const auto it = std::find_if(a.steps.begin(), a.steps.end(), [](const MarginalStep& s) {
      return s.pays.has_value() && !*s.pays;
    });
    std::string why = it->note;
    if (it->delta_saved_joules) {
      why = *it->delta_saved_joules < 0
                ? fmt::format("going from {} to {} raters saved {:.1f} J less", it->from_raters,
                              it->to_raters, -*it->delta_saved_joules)
            : *it->delta_saved_joules > 0
                ? fmt::format(
                      "going from {} to {} raters saved only {:.1f} J more, within the noise "
                      "floor of {:.1f} J ({:.0f} % of the baseline's energy to target)",
                      it->from_raters, it->to_raters, *it->delta_saved_joules, floor_joules,
                      100 * result.min_saving_share)
                : fmt::format("going from {} to {} raters saved no more energy", it->from_raters,
                              it->to_raters);
      if (it->joules_per_extra_minute) {
        why += fmt::format(" ({:.2f} J per extra rater-minute)", *it->joules_per_extra_minute);
      }
    }
    a.conclusion =
        fmt::format("adding raters stops paying beyond {} raters: {}", *a.stops_paying_beyond, why);
  } else if (any_known) {
    const std::int64_t lo = series.front()->point.crowd.raters;
    const std::int64_t hi = series.back()->point.crowd.raters;
    a.conclusion = fmt::format(
        "adding raters did not stop paying within {}–{} raters: every larger crowd saved more "
        "energy than the noise floor ({:.1f} J)",
        lo, hi, floor_joules);
  } else {
    a.conclusion =
        "too few crowd sizes ran to completion and reached the target to say where adding "
        "raters stops paying";
  }
  // The marginal view says nothing about whether humans paid at all.
  const bool any_saving = std::any_of(series.begin(), series.end(), [&result](const auto* o) {
    const std::optional<double> saved = FiguresOf(result.baseline, o->run).saved_joules;
    return saved && *saved > 0;
  });
  if (any_known && !any_saving) {
    a.conclusion += "; no crowd size saved energy against the baseline at all";
  }
  return a;
}

std::string SweepTable(const SweepResult& result) {
  std::string out = fmt::format("sweep {} ({}, {}) — target accuracy {}\n", result.sweep_id,
                                result.mode, result.state, TargetText(result));
  out += "baseline: " + BaselineText(result) + "\n";
  constexpr std::string_view kFormat =
      "{:<22} {:>6} {:>6} {:>6} {:<11} {:>11} {:>9} {:>8} {:>9} {:>11} {:>7} {:>7} {:>15} {:>7} "
      "{}\n";
  out += fmt::format(fmt::runtime(kFormat), "point", "raters", "acc", "spam", "state", "J→target",
                     "saved J", "saved", "human-min", "J/rater-min", "final", "best", "verdicts",
                     "ratings", "energy");
  for (const SweepOutcome& o : result.points) {
    const Row r = RowOf(result.baseline, o);
    out += fmt::format(fmt::runtime(kFormat), r.point, r.raters, r.accuracy, r.spammers, r.state,
                       r.to_target, r.saved, r.saved_share, r.minutes, r.per_minute, r.final_acc,
                       r.best_acc, r.verdicts, r.ratings, r.source);
  }
  out +=
      "human-min is modelled (simulated raters' seconds per item); energy as the run's "
      "collector reported it\n";
  out += AnalyseRaters(result).conclusion + "\n";
  return out;
}

std::string SweepMarkdown(const SweepResult& result, const std::vector<std::string>& plots) {
  std::string md = fmt::format("# Crowd sweep `{}`\n\n", result.sweep_id);
  md += fmt::format(
      "Spec `{}`; dataset {}; mode **{}**; state **{}**; started {}; wall time {:.1f} s.\n\n",
      result.spec_path, result.dataset, result.mode, result.state, result.start_time,
      result.wall_seconds);
  const CrowdSpec& c = result.centre;
  md += fmt::format(
      "One factor at a time around the spec's crowd (the centre): {} raters, k = {}, accuracy ~ "
      "N({:.3f}, {:.3f}), {:.0f} % spammers, median {:.1f} s per item. Each point is one short "
      "{} run stopped at the target, stored as its own experiment.\n\n",
      c.raters, c.ratings_per_item, c.accuracy_mean, c.accuracy_sd, 100 * c.spammer_share,
      c.seconds_median, result.mode);
  md += fmt::format("Target accuracy: **{}**.\n\n", TargetText(result));
  md += fmt::format("Baseline: {}.\n\n", BaselineText(result));
  md += "## Points\n\n";
  md +=
      "| point | raters | accuracy | spammers | state | energy to target (J) | saved vs baseline "
      "(J) | saved | human minutes (modelled) | J saved per rater-minute | final acc. | best acc. "
      "| verdicts applied | ratings | energy |\n";
  md += "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const SweepOutcome& o : result.points) {
    const Row r = RowOf(result.baseline, o);
    md += fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.point,
        r.raters, r.accuracy, r.spammers, r.state, r.to_target, r.saved, r.saved_share, r.minutes,
        r.per_minute, r.final_acc, r.best_acc, r.verdicts, r.ratings, r.source);
  }
  md +=
      "\n`energy` says where the joules came from: `measured` (RAPL/NVML/hwmon) or `estimated` "
      "(no meter on the node: the collector's utilisation model). Human minutes are `modelled` "
      "(the simulated raters' drawn seconds per item), never measured. Verdict precision is "
      "against the clean labels (`measured`).\n\n";
  md += "## Where adding raters stops paying\n\n";
  const RaterAnalysis a = AnalyseRaters(result);
  if (!a.steps.empty()) {
    md +=
        "| crowd size | extra human minutes (modelled) | extra energy saved (J) | J per extra "
        "rater-minute | pays | note |\n|---|---:|---:|---:|---|---|\n";
    for (const MarginalStep& s : a.steps) {
      md += fmt::format("| {} → {} | {:+.1f} | {} | {} | {} | {} |\n", s.from_raters, s.to_raters,
                        s.delta_minutes, Opt(s.delta_saved_joules, "{:+.1f}"),
                        Opt(s.joules_per_extra_minute, "{:+.2f}"),
                        s.pays ? (*s.pays ? "yes" : "no") : "—", s.note);
    }
    md += "\n";
  }
  md += fmt::format("**{}**.\n\n", a.conclusion);
  if (!plots.empty()) {
    md += "## Energy saved against human minutes\n\n";
    for (const std::string& p : plots) md += fmt::format("![{}]({})\n\n", p, p);
  }
  return md;
}

SweepPlotInput SweepPlot(const SweepResult& result) {
  SweepPlotInput in;
  std::string plots;
  const std::vector<std::pair<SweepFactor, std::string>> titles = {
      {SweepFactor::kRaters, "crowd size"},
      {SweepFactor::kAccuracy, "rater accuracy"},
      {SweepFactor::kSpammerShare, "spammer share"}};
  std::optional<std::pair<double, double>> centre;
  for (const auto& [factor, title] : titles) {
    if (!Varied(result, factor)) continue;
    std::string data = "# human_minutes_modelled energy_saved_joules label\n";
    int rows = 0;
    for (const SweepOutcome* o : Series(result, factor, true)) {
      const PointFigures f = FiguresOf(result.baseline, o->run);
      if (!f.saved_joules) continue;
      const bool is_centre = !o->point.factor.has_value();
      if (is_centre) centre = {f.human_minutes, *f.saved_joules};
      data += fmt::format("{} {} \"{}\"\n", f.human_minutes, *f.saved_joules,
                          is_centre ? "" : PlotTag(factor, o->point.value));
      ++rows;
    }
    if (rows == 0) continue;
    const std::string file = fmt::format("sweep-{}.dat", FactorName(factor));
    in.data_files.emplace_back(file, data);
    plots += fmt::format(
        "{}'{}' using 1:2 with linespoints title '{}', '' using 1:2:3 with labels offset char "
        "0,0.8 font ',9' notitle",
        plots.empty() ? "" : ", ", file, title);
  }
  if (plots.empty()) return in;
  if (centre) {
    in.data_files.emplace_back(
        "sweep-centre.dat",
        fmt::format("# the spec's crowd\n{} {} \"spec's crowd\"\n", centre->first, centre->second));
    plots += ", 'sweep-centre.dat' using 1:2:3 with labels offset char 0,-1 font ',9' notitle";
  }
  plots += ", 0 with lines dt 2 lc rgb 'gray' title 'break-even'";
  const std::string source = SweepEnergySource(result);
  in.script = fmt::format(
      "set terminal svg size 800,520 dynamic enhanced font 'sans,12'\n"
      "set output '{}'\n"
      "set title 'Energy saved against human minutes ({} runs)'\n"
      "set xlabel 'human time (rater-minutes, modelled)'\n"
      "set ylabel 'energy to target saved vs baseline (J, {})'\n"
      "set key below horizontal\nset grid\nset offsets graph 0.05, graph 0.05, graph 0.1, graph "
      "0.1\nplot {}\n",
      kPlotName, result.mode, source, plots);
  return in;
}

absl::StatusOr<SweepFiles> WriteSweepReport(const SweepResult& result, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path out = fs::path(dir) / result.sweep_id;
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot create {}: {}", out.string(), ec.message()));
  }
  SweepFiles files;
  std::vector<std::string> plots;
  const SweepPlotInput plot = SweepPlot(result);
  if (plot.script.empty()) {
    files.plot_warning =
        "chart not drawn: no point both ran to completion and has a saving against the baseline";
  } else {
    for (const auto& [name, content] : plot.data_files) std::ofstream(out / name) << content;
    if (absl::Status s = RunGnuplot(out.string(), plot.script); !s.ok()) {
      files.plot_warning = std::string(s.message());
    } else {
      plots.emplace_back(kPlotName);
      files.plot = (out / kPlotName).string();
    }
  }
  std::string md = SweepMarkdown(result, plots);
  if (!files.plot_warning.empty()) md += "_" + files.plot_warning + "_\n";
  files.markdown = (out / "sweep.md").string();
  std::ofstream(files.markdown) << md;
  files.html = (out / "sweep.html").string();
  std::ofstream(files.html) << MarkdownToHtml(md, out.string(), "sweep " + result.sweep_id);
  if (!fs::exists(files.markdown) || !fs::exists(files.html)) {
    return absl::InternalError(fmt::format("cannot write the sweep report under {}", out.string()));
  }
  return files;
}

}  // namespace greenloop::experiment
