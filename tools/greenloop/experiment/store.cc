#include "tools/greenloop/experiment/store.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "common/pg/migrations.h"

namespace greenloop::experiment {

// Embedded from deploy/db/cli by greenloop_embed_migrations (tools/greenloop/CMakeLists.txt).
std::vector<pg::Migration> CliMigrations();

namespace {

std::string OptText(bool has, double v) { return has ? fmt::format("{}", v) : std::string(); }

}  // namespace

absl::StatusOr<std::unique_ptr<ExperimentStore>> ExperimentStore::Open(const std::string& url) {
  absl::StatusOr<std::unique_ptr<pg::Pool>> pool = pg::Pool::Create({.url = url, .max_size = 2});
  if (!pool.ok()) return pool.status();
  if (absl::Status s = pg::ApplyMigrations(**pool, "cli", CliMigrations()); !s.ok()) return s;
  return std::make_unique<ExperimentStore>(std::move(*pool));
}

absl::Status ExperimentStore::Save(const cli::ExperimentResult& result, const ReportFiles& files) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(result, &json).ok()) {
    return absl::InternalError("cannot encode the experiment as JSON");
  }
  return pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(
        R"sql(
INSERT INTO experiments (experiment_id, name, spec_path, dataset, state, target_accuracy,
                         start_time, update_time, wall_seconds, report_markdown, report_html,
                         result)
VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, '')::timestamptz, now(), $8, $9, $10, $11::jsonb)
ON CONFLICT (experiment_id) DO UPDATE SET
  state = EXCLUDED.state, target_accuracy = EXCLUDED.target_accuracy, update_time = now(),
  wall_seconds = EXCLUDED.wall_seconds, report_markdown = EXCLUDED.report_markdown,
  report_html = EXCLUDED.report_html, result = EXCLUDED.result)sql",
        result.experiment_id(), result.name(), result.spec_path(), result.dataset(), result.state(),
        result.target_accuracy(), result.start_time(), result.wall_seconds(), files.markdown,
        files.html, json);
    tx.exec_params("DELETE FROM experiment_runs WHERE experiment_id = $1", result.experiment_id());
    for (const cli::ModeResult& m : result.modes()) {
      tx.exec_params(
          R"sql(
INSERT INTO experiment_runs (experiment_id, run_id, mode, state, node, parameter_count,
  macs_per_sample, samples_processed, batch_size, steps, duration_seconds, energy_joules,
  energy_source, energy_to_target_joules, final_accuracy, best_accuracy, carbon_grams,
  rater_seconds_modelled, ratings, projection_error_10, projection_error_25, architecture)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
        NULLIF($14, '')::double precision, $15, $16, $17, $18, $19,
        NULLIF($20, '')::double precision, NULLIF($21, '')::double precision, $22))sql",
          result.experiment_id(), m.run_id(), m.mode(), m.state(), m.node(),
          static_cast<std::int64_t>(m.parameter_count()),
          static_cast<std::int64_t>(m.macs_per_sample()),
          static_cast<std::int64_t>(m.samples_processed()), static_cast<int>(m.batch_size()),
          static_cast<std::int64_t>(m.steps()), m.duration_seconds(), m.energy_joules(),
          m.energy_source(), OptText(m.has_energy_to_target_joules(), m.energy_to_target_joules()),
          m.final_accuracy(), m.best_accuracy(), m.carbon_grams(), m.crowd().modelled_seconds(),
          static_cast<std::int64_t>(m.crowd().submitted()),
          OptText(m.has_projection_error_10(), m.projection_error_10()),
          OptText(m.has_projection_error_25(), m.projection_error_25()), m.architecture());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<cli::ExperimentResult> ExperimentStore::Load(const std::string& experiment_id) {
  std::string json;
  absl::Status s = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result r = tx.exec_params("SELECT result::text FROM experiments WHERE experiment_id = $1",
                                    experiment_id);
    if (r.empty()) {
      return absl::NotFoundError(fmt::format("no experiment '{}' is stored", experiment_id));
    }
    json = r[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  cli::ExperimentResult result;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(json, &result, options).ok()) {
    return absl::DataLossError(
        fmt::format("experiment '{}': stored result does not parse", experiment_id));
  }
  return result;
}

absl::StatusOr<std::string> ExperimentStore::Latest() {
  std::string id;
  absl::Status s = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result r =
        tx.exec("SELECT experiment_id FROM experiments ORDER BY start_time DESC LIMIT 1");
    if (r.empty()) return absl::NotFoundError("no experiment is stored yet");
    id = r[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<std::vector<RunObservation>> ExperimentStore::Observations() {
  std::vector<RunObservation> out;
  absl::Status s = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    for (const auto& r : tx.exec(
             "SELECT parameter_count, macs_per_sample, samples_processed, batch_size, node, "
             "energy_joules, architecture FROM experiment_runs WHERE state = 'succeeded' AND "
             "energy_joules > 0 "
             "AND parameter_count > 0 AND samples_processed > 0 ORDER BY experiment_id, run_id")) {
      RunObservation o;
      o.features.parameters = r[0].as<double>();
      o.features.macs_per_sample = r[1].as<double>();
      o.features.samples_processed = r[2].as<double>();
      o.features.batch_size = r[3].as<double>();
      o.features.node_kind = r[4].as<std::string>();
      o.energy_joules = r[5].as<double>();
      o.features.architecture = r[6].as<std::string>();
      out.push_back(o);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status ExperimentStore::SavePrediction(const std::string& spec_path, const RunFeatures& f,
                                             const Estimate& e, std::optional<double> loo_error,
                                             std::size_t runs_used) {
  const std::string features = fmt::format(
      R"({{"parameters": {}, "macs_per_sample": {}, "samples_processed": {}, "batch_size": {}, "node_kind": "{}"}})",
      f.parameters, f.macs_per_sample, f.samples_processed, f.batch_size, f.node_kind);
  return pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(
        "INSERT INTO predictions (spec_path, estimate_joules, low_joules, high_joules, loo_error, "
        "runs_used, features) VALUES ($1, $2, $3, $4, NULLIF($5, '')::double precision, $6, "
        "$7::jsonb)",
        spec_path, e.energy_joules, e.low_joules, e.high_joules,
        loo_error ? fmt::format("{}", *loo_error) : std::string(), static_cast<int>(runs_used),
        features);
    return absl::OkStatus();
  });
}

absl::Status ExperimentStore::SaveStudyPoint(const std::string& study_id,
                                             const std::string& spec_path, const StudyRow& row,
                                             const cli::ModeResult& run) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(run, &json).ok()) {
    return absl::InternalError("cannot encode the study point as JSON");
  }
  std::string inference = "[";
  for (const cli::InferencePoint& p : row.inference) {
    std::string one;
    if (!google::protobuf::util::MessageToJsonString(p, &one).ok()) {
      return absl::InternalError("cannot encode the inference figures as JSON");
    }
    inference += (inference.size() > 1 ? "," : "") + one;
  }
  inference += "]";
  return pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(
        R"sql(
INSERT INTO study_points (study_id, point_id, label, spec_path, state, architecture,
  parameter_count, macs_per_sample, batch_size, learning_rate, threads, samples_processed,
  energy_joules, energy_source, energy_per_sample_joules, energy_to_target_joules, accuracy,
  duration_seconds, idle_joules, carbon_grams, inference, result)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        NULLIF($16, '')::double precision, $17, $18, $19, $20, $21::jsonb, $22::jsonb)
ON CONFLICT (study_id, point_id) DO UPDATE SET
  label = EXCLUDED.label, spec_path = EXCLUDED.spec_path, state = EXCLUDED.state,
  architecture = EXCLUDED.architecture, parameter_count = EXCLUDED.parameter_count,
  macs_per_sample = EXCLUDED.macs_per_sample, batch_size = EXCLUDED.batch_size,
  learning_rate = EXCLUDED.learning_rate, threads = EXCLUDED.threads,
  samples_processed = EXCLUDED.samples_processed, energy_joules = EXCLUDED.energy_joules,
  energy_source = EXCLUDED.energy_source,
  energy_per_sample_joules = EXCLUDED.energy_per_sample_joules,
  energy_to_target_joules = EXCLUDED.energy_to_target_joules, accuracy = EXCLUDED.accuracy,
  duration_seconds = EXCLUDED.duration_seconds, idle_joules = EXCLUDED.idle_joules,
  carbon_grams = EXCLUDED.carbon_grams, inference = EXCLUDED.inference,
  result = EXCLUDED.result, finished_at = now())sql",
        study_id, row.id, row.label, spec_path, row.state, row.architecture,
        static_cast<std::int64_t>(row.parameters), static_cast<std::int64_t>(row.macs_per_sample),
        static_cast<int>(row.batch_size), row.learning_rate, static_cast<int>(row.threads),
        static_cast<std::int64_t>(row.samples), row.energy_joules, row.energy_source,
        row.energy_per_sample_joules,
        OptText(row.energy_to_target_joules.has_value(), row.energy_to_target_joules.value_or(0)),
        row.accuracy, row.duration_seconds, row.idle_joules, row.carbon_grams, inference, json);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<cli::ModeResult>> ExperimentStore::SucceededStudyPoint(
    const std::string& study_id, const std::string& point_id, const std::string& label) {
  std::optional<std::string> json;
  absl::Status s = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result r = tx.exec_params(
        "SELECT result::text FROM study_points WHERE study_id = $1 AND point_id = $2 AND "
        "label = $3 AND state = 'succeeded'",
        study_id, point_id, label);
    if (!r.empty()) json = r[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!json) return std::optional<cli::ModeResult>();
  cli::ModeResult run;
  if (!google::protobuf::util::JsonStringToMessage(*json, &run).ok()) {
    return absl::DataLossError(
        fmt::format("study point {} of {} no longer parses as a run", point_id, study_id));
  }
  return std::optional<cli::ModeResult>(std::move(run));
}

}  // namespace greenloop::experiment
