#include "tools/greenloop/experiment/study.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <utility>

#include "services/trainer/core/run_config.h"

namespace greenloop::experiment {
namespace {

absl::Status Bad(const std::string& flag, const std::string& message) {
  return absl::InvalidArgumentError(fmt::format("--{}: {}", flag, message));
}

absl::StatusOr<std::vector<std::int64_t>> Ints(const std::string& flag,
                                               const std::vector<std::string>& values,
                                               std::int64_t low, std::int64_t high) {
  std::vector<std::int64_t> out;
  for (const std::string& text : values) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < low || v > high) {
      return Bad(flag, fmt::format("'{}' is not a whole number in [{}, {}]", text, low, high));
    }
    if (std::find(out.begin(), out.end(), v) != out.end()) {
      return Bad(flag, fmt::format("{} is given twice", v));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<std::vector<double>> Doubles(const std::string& flag,
                                            const std::vector<std::string>& values, double low,
                                            double high) {
  std::vector<double> out;
  for (const std::string& text : values) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(v >= low && v <= high)) {
      return Bad(flag, fmt::format("'{}' is not a number in [{}, {}]", text, low, high));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<std::vector<v1::ModelKind>> Models(const Spec& spec, const StudyGrid& grid) {
  if (grid.models.empty()) return std::vector<v1::ModelKind>{spec.model};
  std::vector<v1::ModelKind> out;
  for (const std::string& name : grid.models) {
    const std::optional<v1::ModelKind> kind = ModelKindByName(name);
    if (!kind) {
      std::string known;
      for (const std::string& n : ModelNames()) known += (known.empty() ? "" : ", ") + n;
      return Bad("models", fmt::format("unknown architecture '{}' ({})", name, known));
    }
    const v1::ModelKind resolved = trainer::ResolveModelKind(*kind, spec.dataset);
    if (trainer::IsImageModel(resolved) != (spec.dataset == v1::DATASET_FASHION_MNIST)) {
      return Bad("models",
                 fmt::format("{} does not fit dataset {}", name, DatasetName(spec.dataset)));
    }
    out.push_back(*kind);
  }
  return out;
}

// The settings of one point besides its model.
struct Settings {
  std::int64_t batch = 0;
  double learning_rate = 0;
  std::int64_t threads = 0;
};

std::string PointLabel(v1::ModelKind kind, const v1::ModelShape& shape, const Settings& s,
                       v1::Dataset dataset) {
  const v1::ModelKind resolved = trainer::ResolveModelKind(kind, dataset);
  const v1::ModelShape r = trainer::ResolveModelShape(resolved, shape);
  std::string model = ModelName(resolved);
  if (r.width() > 0) model += fmt::format(" w{}", r.width());
  if (r.depth() > 0) model += fmt::format(" d{}", r.depth());
  return fmt::format(
      "{} · batch {} · lr {:g} · {}", model, s.batch, s.learning_rate,
      s.threads > 0 ? fmt::format("{} threads", s.threads) : std::string("trainer's threads"));
}

absl::Status CheckShape(v1::ModelKind kind, v1::Dataset dataset, const v1::ModelShape& shape) {
  absl::Status s = trainer::ValidateModelShape(trainer::ResolveModelKind(kind, dataset), shape);
  if (s.ok()) return s;
  const std::string message(s.message());
  return Bad(message.find(".depth") != std::string::npos ? "depths" : "widths", message);
}

bool ValidStudyId(const std::string& id) {
  return !id.empty() && id.size() <= 40 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

absl::StatusOr<StudyPlan> PlanStudy(const Spec& spec, const StudyGrid& grid,
                                    const std::string& study_id, bool yes) {
  if (!ValidStudyId(study_id)) {
    return Bad("study_id", fmt::format("'{}' must be 1 to 40 characters of [a-z0-9-]", study_id));
  }
  absl::StatusOr<std::vector<v1::ModelKind>> models = Models(spec, grid);
  if (!models.ok()) return models.status();
  absl::StatusOr<std::vector<std::int64_t>> widths = Ints("widths", grid.widths, 1, 512);
  if (!widths.ok()) return widths.status();
  absl::StatusOr<std::vector<std::int64_t>> depths = Ints("depths", grid.depths, 1, 64);
  if (!depths.ok()) return depths.status();
  absl::StatusOr<std::vector<std::int64_t>> batches =
      Ints("batch_sizes", grid.batch_sizes, 1, 4096);
  if (!batches.ok()) return batches.status();
  absl::StatusOr<std::vector<double>> rates =
      Doubles("learning_rates", grid.learning_rates, 1e-7, 1);
  if (!rates.ok()) return rates.status();
  absl::StatusOr<std::vector<std::int64_t>> threads = Ints("threads", grid.threads, 1, 256);
  if (!threads.ok()) return threads.status();
  if (batches->empty()) batches->push_back(spec.batch_size);
  if (rates->empty()) rates->push_back(spec.learning_rate);
  if (threads->empty()) threads->push_back(spec.threads);

  StudyPlan plan{.study_id = study_id};
  for (v1::ModelKind kind : *models) {
    const v1::ModelShape defaults =
        trainer::ResolveModelShape(trainer::ResolveModelKind(kind, spec.dataset), {});
    // A factor the model does not have stays at its default (0).
    const std::vector<std::int64_t> ws =
        defaults.width() > 0 && !widths->empty() ? *widths : std::vector<std::int64_t>{0};
    const std::vector<std::int64_t> ds =
        defaults.depth() > 0 && !depths->empty() ? *depths : std::vector<std::int64_t>{0};
    for (std::int64_t w : ws) {
      for (std::int64_t d : ds) {
        v1::ModelShape shape;
        shape.set_width(static_cast<std::uint32_t>(w));
        shape.set_depth(static_cast<std::uint32_t>(d));
        if (absl::Status s = CheckShape(kind, spec.dataset, shape); !s.ok()) return s;
        for (std::int64_t b : *batches) {
          for (double lr : *rates) {
            for (std::int64_t t : *threads) {
              StudyPoint& p = plan.points.emplace_back();
              p.id = fmt::format("{}-p{:02}", study_id, plan.points.size());
              const Settings settings{.batch = b, .learning_rate = lr, .threads = t};
              p.label = PointLabel(kind, shape, settings, spec.dataset);
              p.spec = spec;
              p.spec.model = kind;
              p.spec.model_width = w;
              p.spec.model_depth = d;
              p.spec.batch_size = b;
              p.spec.learning_rate = lr;
              p.spec.threads = t;
              p.spec.modes = {v1::MODE_BASELINE};
              p.spec.seeds = 1;
              p.spec.description = fmt::format("Green-ML study {}, point {}: {}. {}", study_id,
                                               plan.points.size(), p.label, spec.description);
            }
          }
        }
      }
    }
  }
  if (static_cast<std::int64_t>(plan.points.size()) > grid.max_points && !yes) {
    return Bad("max_points", fmt::format("the grid has {} points, above {}; add --yes to run it",
                                         plan.points.size(), grid.max_points));
  }
  return plan;
}

namespace {

std::optional<double> ProjectionErrorAt(const cli::ModeResult& m, double fraction) {
  const bool full = m.state() == "succeeded" && m.planned_steps() > 0 &&
                    m.steps() >= m.planned_steps() && m.energy_joules() > 0;
  if (!full) return std::nullopt;
  // The last projection made within the first `fraction` of the run: what was known by then.
  std::optional<double> error;
  for (const cli::ProjectionPoint& p : m.projections()) {
    if (p.fraction() <= fraction + 1e-9) error = p.projected_joules() / m.energy_joules() - 1.0;
  }
  return error;
}

}  // namespace

StudyRow RowOf(const StudyPoint& point, const cli::ModeResult& run) {
  StudyRow r;
  r.id = point.id;
  r.label = point.label;
  r.state = run.state();
  r.architecture = run.architecture();
  r.parameters = static_cast<double>(run.parameter_count());
  r.macs_per_sample = static_cast<double>(run.macs_per_sample());
  r.batch_size =
      run.batch_size() > 0 ? run.batch_size() : static_cast<double>(point.spec.batch_size);
  r.learning_rate = point.spec.learning_rate;
  r.threads = static_cast<double>(point.spec.threads);
  r.samples = static_cast<double>(run.samples_processed());
  r.energy_joules =
      run.collector_active_joules() > 0 ? run.collector_active_joules() : run.energy_joules();
  r.energy_source = run.energy_source();
  r.energy_per_sample_joules = r.samples > 0 ? r.energy_joules / r.samples : 0.0;
  if (run.has_energy_to_target_joules()) r.energy_to_target_joules = run.energy_to_target_joules();
  r.accuracy = run.has_test_accuracy() ? run.test_accuracy() : run.best_accuracy();
  r.duration_seconds = run.duration_seconds();
  r.idle_joules = run.idle_energy_joules();
  r.carbon_grams = run.carbon_grams();
  r.projection_error_5 = ProjectionErrorAt(run, 0.05);
  r.projection_error_25 = ProjectionErrorAt(run, 0.25);
  r.inference = {run.inference().begin(), run.inference().end()};
  r.node = run.node();
  return r;
}

std::optional<double> Pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = std::min(x.size(), y.size());
  if (n < 3) return std::nullopt;
  const double mx = std::accumulate(x.begin(), x.begin() + n, 0.0) / n;
  const double my = std::accumulate(y.begin(), y.begin() + n, 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0 || syy <= 0) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

namespace {

std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (std::size_t k = i; k <= j; ++k) ranks[order[k]] = mean_rank;
    i = j + 1;
  }
  return ranks;
}

}  // namespace

std::optional<double> Spearman(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = std::min(x.size(), y.size());
  return Pearson(Ranks({x.begin(), x.begin() + n}), Ranks({y.begin(), y.begin() + n}));
}

std::vector<std::size_t> ParetoFront(const std::vector<StudyRow>& rows) {
  std::vector<std::size_t> front;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    bool dominated = false;
    for (std::size_t j = 0; j < rows.size() && !dominated; ++j) {
      dominated =
          j != i && rows[j].energy_joules <= rows[i].energy_joules &&
          rows[j].accuracy >= rows[i].accuracy &&
          (rows[j].energy_joules < rows[i].energy_joules || rows[j].accuracy > rows[i].accuracy);
    }
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](std::size_t a, std::size_t b) {
    return rows[a].energy_joules < rows[b].energy_joules;
  });
  return front;
}

}  // namespace greenloop::experiment
