#include "tests/bench/feedback/ceiling.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include "common/pg/pool.h"
#include "fmt/format.h"

namespace greenloop::feedback::bench {
namespace {

namespace fs = std::filesystem;

std::string Shell(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (pipe != nullptr) ::pclose(pipe);
  return output;
}

void Exec(const std::string& db_url, const std::string& sql) {
  auto pool = pg::Pool::Create({.url = db_url, .max_size = 1});
  if (!pool.ok()) throw std::runtime_error(std::string(pool.status().message()));
  if (absl::Status s = (*pool)->Run([&](pqxx::work& tx) { tx.exec0(sql); }); !s.ok()) {
    throw std::runtime_error(std::string(s.message()));
  }
}

}  // namespace

void Analyze(const std::string& db_url) { Exec(db_url, "ANALYZE"); }

double PgbenchCeiling(const std::string& db_url, int clients, int seconds, int k) {
  Exec(db_url,
       fmt::format("INSERT INTO feedback_campaigns (campaign_id, spec, ratings_per_item, "
                   "lease_ttl_seconds, gold_share) VALUES ('pgbench', '', {0}, 120, 0); "
                   "INSERT INTO feedback_items (campaign_id, dataset, sample_index, payload, "
                   "given_label, priority) SELECT 'pgbench', 2, g, "
                   "convert_to('Subject: offer', 'UTF8'), 1, g % 997 "
                   "FROM generate_series(1, 200000) g",
                   k));
  Analyze(db_url);
  const fs::path script = fs::temp_directory_path() / "feedback_bench_pgbench.sql";
  std::ofstream(script)
      << R"(\set r random(1, 1000000)
BEGIN;
WITH cand AS (SELECT item_id FROM feedback_items WHERE campaign_id = 'pgbench' AND NOT decided AND gold_answer IS NULL AND ratings_count + holds < )"
      << k
      << R"( ORDER BY priority DESC, item_id LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE feedback_items i SET holds = i.holds + 1 FROM cand WHERE i.item_id = cand.item_id RETURNING i.item_id AS item \gset
INSERT INTO feedback_leases (item_id, campaign_id, rater_id, expire_time) VALUES (:item, 'pgbench', :r, now() + interval '120 seconds') RETURNING lease_id AS lease \gset
COMMIT;
BEGIN;
SELECT state FROM feedback_leases WHERE lease_id = :lease FOR UPDATE;
INSERT INTO feedback_ratings (lease_id, item_id, campaign_id, rater_id, answer, seconds_spent, server_seconds) VALUES (:lease, :item, 'pgbench', :r, 1, 1, 1);
UPDATE feedback_leases SET state = 1, end_time = now() WHERE lease_id = :lease;
UPDATE feedback_items SET ratings_count = ratings_count + 1, holds = holds - 1 WHERE item_id = :item;
COMMIT;
)";
  const std::string output = Shell(fmt::format("pgbench -n -c {} -j 2 -T {} -f {} '{}'", clients,
                                               seconds, script.string(), db_url));
  fs::remove(script);
  // Closed, so that the service's background work leaves it alone from now on.
  Exec(db_url, "UPDATE feedback_campaigns SET closed = true WHERE campaign_id = 'pgbench'");
  std::smatch m;
  static const std::regex kTps(R"(tps = ([0-9.]+) \(without initial connection time\))");
  if (!std::regex_search(output, m, kTps)) {
    std::cerr << "pgbench failed:\n" << output;
    return 0;
  }
  return std::stod(m[1]);
}

}  // namespace greenloop::feedback::bench
