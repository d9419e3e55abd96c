#include "services/energy/storage/pg_store.h"

#include <pqxx/pqxx>
#include <sstream>

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace greenloop::energy {
namespace {

double Epoch(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }
absl::Time FromEpoch(double s) { return absl::UnixEpoch() + absl::Seconds(s); }

// PostgreSQL array literal of strings: {"a","b"} with quotes and backslashes escaped.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ",";
    out += "\"";
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

template <typename T>
std::string IntArray(const std::vector<T>& values) {
  return fmt::format("{{{}}}", fmt::join(values, ","));
}

std::vector<std::string> Split(const std::string& joined) {
  std::vector<std::string> out;
  if (joined.empty()) return out;
  std::stringstream in(joined);
  std::string item;
  while (std::getline(in, item, '\x1f')) out.push_back(item);
  return out;
}

std::optional<Domain> ParseDomain(std::string_view name) {
  for (Domain d : {Domain::kPackage, Domain::kCore, Domain::kUncore, Domain::kDram, Domain::kPsys,
                   Domain::kGpu, Domain::kHwmon, Domain::kNode}) {
    if (DomainName(d) == name) return d;
  }
  return std::nullopt;
}

std::optional<Source> ParseSource(std::string_view name) {
  for (Source s : {Source::kRapl, Source::kNvml, Source::kHwmon, Source::kEstimated}) {
    if (SourceName(s) == name) return s;
  }
  return std::nullopt;
}

constexpr const char* kSelectRuns = R"sql(
  SELECT run_id, active, extract(epoch FROM first_register_time)::float8,
         extract(epoch FROM register_time)::float8, extract(epoch FROM end_time)::float8,
         extract(epoch FROM unregister_time)::float8, duration_seconds, gap_seconds,
         active_joules, idle_joules, array_to_string(estimated_domains, E'\x1f'),
         array_to_string(pids, E'\x1f'), array_to_string(live_pids, E'\x1f'),
         array_to_string(ranks, E'\x1f'), array_to_string(gpu_uuids, E'\x1f'), owner
    FROM energy_runs WHERE node = $1)sql";

std::vector<RunEnergy> ReadRuns(pqxx::work& tx, const pqxx::result& rows, const std::string& node) {
  std::vector<RunEnergy> runs;
  for (const auto& row : rows) {
    RunEnergy r;
    r.run_id = row[0].as<std::string>();
    r.active = row[1].as<bool>();
    r.first_register_time = FromEpoch(row[2].as<double>());
    r.register_time = FromEpoch(row[3].as<double>());
    r.end_time = FromEpoch(row[4].as<double>());
    if (!row[5].is_null()) r.unregister_time = FromEpoch(row[5].as<double>());
    r.duration_seconds = row[6].as<double>();
    r.gap_seconds = row[7].as<double>();
    r.active_joules = row[8].as<double>();
    r.idle_joules = row[9].as<double>();
    for (const std::string& d : Split(row[10].as<std::string>())) {
      if (auto domain = ParseDomain(d)) r.estimated_domains.insert(*domain);
    }
    for (const std::string& p : Split(row[11].as<std::string>())) r.pids.push_back(std::stoi(p));
    for (const std::string& p : Split(row[12].as<std::string>())) {
      r.live_pids.push_back(std::stoi(p));
    }
    for (const std::string& k : Split(row[13].as<std::string>())) {
      r.ranks.push_back(static_cast<unsigned>(std::stoul(k)));
    }
    for (const std::string& u : Split(row[14].as<std::string>())) {
      r.gpus.push_back({.uuid = u});
    }
    r.owner = row[15].as<std::string>();
    for (const auto& d : tx.exec_params(
             R"sql(SELECT domain, source, array_to_string(zones, E'\x1f'), active_joules,
                          idle_joules, seconds
                     FROM energy_run_domains WHERE run_id = $1 AND node = $2)sql",
             r.run_id, node)) {
      auto domain = ParseDomain(d[0].as<std::string>());
      auto source = ParseSource(d[1].as<std::string>());
      if (!domain || !source) continue;
      DomainTotals& t = r.domains[{*domain, *source}];
      for (const std::string& z : Split(d[2].as<std::string>())) t.zones.insert(z);
      t.active_joules = d[3].as<double>();
      t.idle_joules = d[4].as<double>();
      t.seconds = d[5].as<double>();
    }
    runs.push_back(std::move(r));
  }
  return runs;
}

}  // namespace

PgEnergyStore::PgEnergyStore(pg::Pool* pool, std::string node, CarbonFactors carbon)
    : pool_(pool), node_(std::move(node)), carbon_(std::move(carbon)) {}

absl::Status PgEnergyStore::Write(const StoreBatch& batch) {
  return pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    if (!batch.batch_id.empty()) {
      // A batch committed before (its commit's answer lost) is not applied again: its samples
      // add to their buckets.
      const pqxx::result fresh = tx.exec_params(
          "INSERT INTO energy_write_batches (node, batch_id) VALUES ($1, $2) "
          "ON CONFLICT DO NOTHING",
          node_, batch.batch_id);
      if (fresh.affected_rows() == 0) return absl::OkStatus();
      tx.exec_params(
          "DELETE FROM energy_write_batches "
          "WHERE node = $1 AND written_at < now() - interval '7 days'",
          node_);
    }
    for (const SampleRow& s : batch.samples) {
      tx.exec_params(
          R"sql(INSERT INTO energy_samples (node, zone, bucket_start, domain, source,
                  bucket_seconds, energy_joules, idle_joules, covered_seconds)
                VALUES ($1, $2, to_timestamp($3), $4, $5, $6, $7, $8, $9)
                ON CONFLICT (node, zone, bucket_start) DO UPDATE SET
                  energy_joules = energy_samples.energy_joules + EXCLUDED.energy_joules,
                  idle_joules = energy_samples.idle_joules + EXCLUDED.idle_joules,
                  covered_seconds = energy_samples.covered_seconds + EXCLUDED.covered_seconds,
                  source = CASE WHEN EXCLUDED.source = 'estimated' THEN 'estimated'
                                ELSE energy_samples.source END)sql",
          node_, s.zone, Epoch(s.bucket_start), std::string(DomainName(s.domain)),
          std::string(SourceName(s.source)), s.bucket_seconds, s.energy_joules, s.idle_joules,
          s.covered_seconds);
    }
    for (const RunEnergy& r : batch.runs) {
      std::vector<std::string> estimated, gpus;
      for (Domain d : r.estimated_domains) estimated.emplace_back(DomainName(d));
      for (const GpuDescription& g : r.gpus) gpus.push_back(g.uuid);
      // -1: still registered (NULL in the table).
      const double unregister = r.unregister_time.has_value() ? Epoch(*r.unregister_time) : -1;
      tx.exec_params(
          R"sql(INSERT INTO energy_runs (run_id, node, active, first_register_time, register_time,
                  end_time, unregister_time, duration_seconds, gap_seconds, active_joules,
                  idle_joules, carbon_grams, idle_carbon_grams, estimated_domains, pids,
                  live_pids, ranks, gpu_uuids, owner, updated_at)
                VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5), to_timestamp($6),
                        to_timestamp(NULLIF($7::float8, -1)), $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                        $19, now())
                ON CONFLICT (run_id, node) DO UPDATE SET
                  active = EXCLUDED.active, first_register_time = EXCLUDED.first_register_time,
                  register_time = EXCLUDED.register_time, end_time = EXCLUDED.end_time,
                  unregister_time = EXCLUDED.unregister_time,
                  duration_seconds = EXCLUDED.duration_seconds,
                  gap_seconds = EXCLUDED.gap_seconds, active_joules = EXCLUDED.active_joules,
                  idle_joules = EXCLUDED.idle_joules, carbon_grams = EXCLUDED.carbon_grams,
                  idle_carbon_grams = EXCLUDED.idle_carbon_grams,
                  estimated_domains = EXCLUDED.estimated_domains, pids = EXCLUDED.pids,
                  live_pids = EXCLUDED.live_pids, ranks = EXCLUDED.ranks,
                  gpu_uuids = EXCLUDED.gpu_uuids, owner = EXCLUDED.owner, updated_at = now())sql",
          r.run_id, node_, r.active, Epoch(r.first_register_time), Epoch(r.register_time),
          Epoch(r.end_time), unregister, r.duration_seconds, r.gap_seconds, r.active_joules,
          r.idle_joules, CarbonGrams(r.active_joules, carbon_), CarbonGrams(r.idle_joules, carbon_),
          TextArray(estimated), IntArray(r.pids), IntArray(r.live_pids), IntArray(r.ranks),
          TextArray(gpus), r.owner);
      for (const auto& [key, totals] : r.domains) {
        tx.exec_params(
            R"sql(INSERT INTO energy_run_domains (run_id, node, domain, source, zones,
                    active_joules, idle_joules, seconds)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                  ON CONFLICT (run_id, node, domain, source) DO UPDATE SET
                    zones = EXCLUDED.zones, active_joules = EXCLUDED.active_joules,
                    idle_joules = EXCLUDED.idle_joules, seconds = EXCLUDED.seconds)sql",
            r.run_id, node_, std::string(DomainName(key.domain)),
            std::string(SourceName(key.source)),
            TextArray({totals.zones.begin(), totals.zones.end()}), totals.active_joules,
            totals.idle_joules, totals.seconds);
      }
    }
    if (batch.state.has_value()) {
      tx.exec_params(
          R"sql(INSERT INTO energy_collector_state (node, boot_id, saved_at, counters)
                VALUES ($1, $2, to_timestamp($3), $4)
                ON CONFLICT (node) DO UPDATE SET boot_id = EXCLUDED.boot_id,
                  saved_at = EXCLUDED.saved_at, counters = EXCLUDED.counters)sql",
          node_, batch.state->boot_id, Epoch(batch.state->saved_at), EncodeCounters(*batch.state));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<SavedState>> PgEnergyStore::Load() {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<std::optional<SavedState>> {
    pqxx::result state = tx.exec_params(
        "SELECT boot_id, extract(epoch FROM saved_at)::float8, counters "
        "FROM energy_collector_state WHERE node = $1",
        node_);
    pqxx::result runs = tx.exec_params(std::string(kSelectRuns) + " AND active", node_);
    if (state.empty() && runs.empty()) return std::optional<SavedState>();
    SavedState saved;
    if (!state.empty()) {
      saved.boot_id = state[0][0].as<std::string>();
      saved.saved_at = FromEpoch(state[0][1].as<double>());
      if (absl::Status s = DecodeCounters(state[0][2].as<std::string>(), saved); !s.ok()) {
        return s;
      }
    } else {
      saved.saved_at = absl::InfinitePast();
    }
    saved.runs = ReadRuns(tx, runs, node_);
    return std::optional<SavedState>(std::move(saved));
  });
}

absl::StatusOr<RunEnergy> PgEnergyStore::LoadRun(std::string_view run_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<RunEnergy> {
    pqxx::result rows =
        tx.exec_params(std::string(kSelectRuns) + " AND run_id = $2", node_, std::string(run_id));
    std::vector<RunEnergy> runs = ReadRuns(tx, rows, node_);
    if (runs.empty()) {
      return absl::NotFoundError(
          fmt::format("run {} was never registered on node {}", run_id, node_));
    }
    return std::move(runs.front());
  });
}

}  // namespace greenloop::energy
