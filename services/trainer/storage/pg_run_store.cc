#include "services/trainer/storage/pg_run_store.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <array>
#include <pqxx/pqxx>
#include <string_view>

#include "absl/time/time.h"
#include "common/pg/migrations.h"

namespace greenloop::trainer {

std::vector<pg::Migration> TrainerMigrations();

namespace {

using google::protobuf::util::TimeUtil;

// A timestamp as PostgreSQL reads it, or "" for unset (NULLIF(...)::timestamptz gives NULL).
std::string Time(const google::protobuf::Timestamp& t, bool set) {
  return set ? TimeUtil::ToString(t) : std::string();
}

std::string OptionalNumber(bool set, double value) {
  return set ? fmt::format("{}", value) : std::string();
}

// A text element of a PostgreSQL array literal: quoted, with backslashes and quotes escaped.
std::string Quoted(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + '"';
}

// The change log's columns as PostgreSQL array literals, for one INSERT ... unnest.
class ChangeColumns final {
 public:
  void Add(const SampleChange& c) {
    Push(0, fmt::format("{}", c.step));
    Push(1, fmt::format("{}", c.sample_index));
    Push(2, Quoted(ChangeActionName(c.action)));
    Push(3, fmt::format("{}", c.old_label));
    Push(4, fmt::format("{}", c.new_label));
    Push(5, fmt::format("{}", c.old_weight));
    Push(6, fmt::format("{}", c.new_weight));
    Push(7, Quoted(ChangeSourceName(c.source)));
    Push(8, Quoted(c.item_id));
    Push(9, fmt::format("{}", c.revision));
    Push(10, fmt::format("{}", c.confidence));
    Push(11, fmt::format("{}", c.clean_label));
    Push(12, c.correct ? "t" : "f");
  }
  std::string Array(std::size_t column) const { return "{" + columns_[column] + "}"; }

 private:
  void Push(std::size_t column, std::string_view value) {
    std::string& text = columns_[column];
    if (!text.empty()) text += ',';
    text += value;
  }
  std::array<std::string, 13> columns_;
};

}  // namespace

absl::Status ApplyTrainerMigrations(pg::Pool& pool) {
  return pg::ApplyMigrations(pool, "trainer", TrainerMigrations());
}

PgRunStore::PgRunStore(pg::Pool* pool) : pool_(pool) {}

absl::Status PgRunStore::SaveRun(const v1::Run& run) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = false;
  if (auto s = google::protobuf::util::MessageToJsonString(run, &json, options); !s.ok()) {
    return absl::InternalError(fmt::format("cannot encode run {} as JSON", run.run_id()));
  }
  return pool_->Run([&](pqxx::work& tx) {
    tx.exec_params(
        R"sql(
INSERT INTO runs (run_id, rank, world_size, node, experiment_id, dataset, mode, state,
                  finish_reason, error_message, create_time, start_time, end_time,
                  parameter_count, macs_per_sample, steps, samples_processed, eval_accuracy,
                  best_eval_accuracy, energy_joules, energy_to_target_joules, steps_to_target,
                  run, update_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::timestamptz,
        NULLIF($12, '')::timestamptz, NULLIF($13, '')::timestamptz,
        NULLIF($14, '')::bigint, NULLIF($15, '')::bigint, $16, $17,
        NULLIF($18, '')::double precision, NULLIF($19, '')::double precision, $20,
        NULLIF($21, '')::double precision, NULLIF($22, '')::bigint, $23::jsonb, now())
ON CONFLICT (run_id, rank) DO UPDATE SET
  world_size = EXCLUDED.world_size, node = EXCLUDED.node, experiment_id = EXCLUDED.experiment_id,
  dataset = EXCLUDED.dataset, mode = EXCLUDED.mode, state = EXCLUDED.state,
  finish_reason = EXCLUDED.finish_reason, error_message = EXCLUDED.error_message,
  start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
  parameter_count = EXCLUDED.parameter_count, macs_per_sample = EXCLUDED.macs_per_sample,
  steps = EXCLUDED.steps, samples_processed = EXCLUDED.samples_processed,
  eval_accuracy = EXCLUDED.eval_accuracy, best_eval_accuracy = EXCLUDED.best_eval_accuracy,
  energy_joules = EXCLUDED.energy_joules,
  energy_to_target_joules = EXCLUDED.energy_to_target_joules,
  steps_to_target = EXCLUDED.steps_to_target, run = EXCLUDED.run, update_time = now()
)sql",
        run.run_id(), static_cast<int>(run.rank()),
        static_cast<int>(std::max(1u, run.world_size())), run.node(), run.config().experiment_id(),
        v1::Dataset_Name(run.config().dataset()), v1::Mode_Name(run.config().mode()),
        v1::RunState_Name(run.state()), v1::FinishReason_Name(run.finish_reason()),
        run.error_message(), TimeUtil::ToString(run.create_time()),
        Time(run.start_time(), run.has_start_time()), Time(run.end_time(), run.has_end_time()),
        run.has_model() ? std::to_string(run.model().parameter_count()) : std::string(),
        run.has_model() ? std::to_string(run.model().macs_per_sample()) : std::string(),
        static_cast<long long>(run.progress().step()),
        static_cast<long long>(run.progress().samples_processed()),
        OptionalNumber(run.progress().has_eval_accuracy(), run.progress().eval_accuracy()),
        OptionalNumber(run.has_best_eval_accuracy(), run.best_eval_accuracy()),
        run.progress().energy_joules(),
        OptionalNumber(run.has_energy_to_target_joules(), run.energy_to_target_joules()),
        run.has_steps_to_target() ? std::to_string(run.steps_to_target()) : std::string(), json);
  });
}

absl::Status PgRunStore::AddEvaluation(const std::string& run_id, std::uint32_t rank,
                                       const EvaluationPoint& p) {
  return pool_->Run([&](pqxx::work& tx) {
    tx.exec_params(
        R"sql(
INSERT INTO run_evaluations (run_id, rank, step, epoch, samples_processed, eval_accuracy,
                             eval_loss, train_loss, energy_joules, node_energy_joules,
                             elapsed_seconds, record_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::timestamptz)
ON CONFLICT (run_id, rank, step) DO UPDATE SET
  eval_accuracy = EXCLUDED.eval_accuracy, eval_loss = EXCLUDED.eval_loss,
  energy_joules = EXCLUDED.energy_joules, node_energy_joules = EXCLUDED.node_energy_joules,
  elapsed_seconds = EXCLUDED.elapsed_seconds, record_time = EXCLUDED.record_time
)sql",
        run_id, static_cast<int>(rank), static_cast<long long>(p.step), static_cast<int>(p.epoch),
        static_cast<long long>(p.samples_processed), p.eval_accuracy, p.eval_loss, p.train_loss,
        p.energy_joules, p.node_energy_joules, p.elapsed_seconds,
        absl::FormatTime(absl::RFC3339_full, p.record_time, absl::UTCTimeZone()));
  });
}

absl::Status PgRunStore::AddChanges(const std::string& run_id, std::uint32_t rank,
                                    const std::vector<SampleChange>& changes) {
  if (changes.empty()) return absl::OkStatus();
  // One statement for the whole batch: a column array per field, unnested in order.
  ChangeColumns columns;
  for (const SampleChange& c : changes) columns.Add(c);
  return pool_->Run([&](pqxx::work& tx) {
    tx.exec_params(
        R"sql(
INSERT INTO run_changes (run_id, rank, step, sample_index, action, old_label, new_label,
                         old_weight, new_weight, source, item_id, revision, confidence,
                         clean_label, correct)
SELECT $1, $2, c.step, c.sample_index, c.action, c.old_label, c.new_label, c.old_weight,
       c.new_weight, c.source, c.item_id, c.revision, c.confidence, c.clean_label, c.correct
FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::int[], $7::int[],
            $8::float8[], $9::float8[], $10::text[], $11::text[], $12::int[], $13::float8[],
            $14::int[], $15::bool[]) WITH ORDINALITY
  AS c(step, sample_index, action, old_label, new_label, old_weight, new_weight, source,
       item_id, revision, confidence, clean_label, correct, ord)
ORDER BY c.ord
)sql",
        run_id, static_cast<int>(rank), columns.Array(0), columns.Array(1), columns.Array(2),
        columns.Array(3), columns.Array(4), columns.Array(5), columns.Array(6), columns.Array(7),
        columns.Array(8), columns.Array(9), columns.Array(10), columns.Array(11),
        columns.Array(12));
  });
}

absl::StatusOr<std::vector<v1::Run>> PgRunStore::LoadRuns(const std::string& node) {
  absl::StatusOr<std::vector<std::string>> rows = pool_->Run([&](pqxx::work& tx) {
    std::vector<std::string> out;
    for (const auto& row : tx.exec_params(
             "SELECT run::text FROM runs WHERE node = $1 ORDER BY create_time DESC, run_id",
             node)) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  });
  if (!rows.ok()) return rows.status();
  std::vector<v1::Run> runs;
  for (const std::string& json : *rows) {
    v1::Run run;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(json, &run, options).ok()) {
      return absl::DataLossError("a stored run is not a greenloop.v1.Run");
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace greenloop::trainer
