// The bare-SQL ceiling a feedback benchmark is compared with: pgbench running the queue's two
// transactions (lease one item, submit its rating) as plain SQL on the same tables and server.
#pragma once

#include <string>

namespace greenloop::feedback::bench {

/// Fills a 200 000-item campaign 'pgbench' in the database at `db_url` and runs pgbench with
/// `clients` clients for `seconds`; cycles (lease + submit) per second, 0 when pgbench failed
/// (its output goes to stderr).
double PgbenchCeiling(const std::string& db_url, int clients, int seconds, int k);

/// ANALYZE on the whole database: fresh bulk loads have no planner statistics yet (autovacuum
/// would get there within a minute), and without them the queue query sorts a whole campaign.
void Analyze(const std::string& db_url);

}  // namespace greenloop::feedback::bench
