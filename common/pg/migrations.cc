#include "common/pg/migrations.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <pqxx/result>
#include <pqxx/transaction>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging/logging.h"
#include "common/status/status.h"

namespace greenloop::pg {
namespace {

constexpr int kMaxVersion = 9999;
constexpr absl::string_view kPattern = "NNNN_name.sql (four digits, then a-z, 0-9 and _)";

// Serializes the creation of schema_migrations between components that share a database.
constexpr std::int64_t kCreateTableLockKey = 0x676c5f6d69677274;  // "gl_migrt"

constexpr std::string_view kCreateTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  component  text        NOT NULL,
  version    integer     NOT NULL,
  name       text        NOT NULL,
  checksum   text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (component, version)
))sql";

bool ValidName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

// A stable 64-bit key for pg_advisory_lock (FNV-1a), the same in every process and release.
std::int64_t LockKey(std::string_view component) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (char c : "greenloop.schema_migrations/" + std::string(component)) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return static_cast<std::int64_t>(hash);
}

struct Applied {
  std::string name;
  std::string checksum;
};

}  // namespace

std::string MigrationFileName(const Migration& migration) {
  return absl::StrFormat("%04d_%s.sql", migration.version, migration.name);
}

absl::StatusOr<Migration> ParseMigrationFileName(std::string_view file_name) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("migration file \"", std::string(file_name),
                                                   "\" ", why, "; expected ", kPattern));
  };
  if (!file_name.ends_with(".sql")) return bad("does not end in .sql");
  if (file_name.size() < 9 || file_name[4] != '_' ||
      !std::all_of(file_name.begin(), file_name.begin() + 4,
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    return bad("does not start with four digits and _");
  }
  Migration migration;
  migration.version = std::stoi(std::string(file_name.substr(0, 4)));
  if (migration.version < 1) return bad("has version 0000; versions start at 0001");
  migration.name = std::string(file_name.substr(5, file_name.size() - 9));
  if (migration.name.empty()) return bad("has no name after the version");
  if (!ValidName(migration.name)) return bad("has a name with characters other than a-z, 0-9, _");
  return migration;
}

absl::Status ValidateMigrations(const std::vector<Migration>& migrations) {
  std::map<int, const Migration*> seen;
  for (const Migration& m : migrations) {
    if (m.version < 1 || m.version > kMaxVersion) {
      return absl::InvalidArgumentError(absl::StrCat("migration \"", m.name, "\" has version ",
                                                     m.version, "; versions are 1 to 9999"));
    }
    if (!ValidName(m.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("migration ", MigrationFileName(m), " has a bad name; expected ", kPattern));
    }
    if (absl::StripAsciiWhitespace(m.sql).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("migration ", MigrationFileName(m), " is empty"));
    }
    auto [it, inserted] = seen.emplace(m.version, &m);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("migrations ", MigrationFileName(*it->second),
                                                     " and ", MigrationFileName(m),
                                                     " have the same version ", m.version));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Migration>> LoadMigrationsFromDir(const std::filesystem::path& dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(
        absl::StrCat("migrations directory ", dir.string(), " does not exist"));
  }
  std::vector<Migration> migrations;
  std::map<int, std::string> files;  // version -> file name, to name both sides of a duplicate
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() != ".sql" || !entry.is_regular_file(error)) continue;
    const std::string file_name = entry.path().filename().string();
    GREENLOOP_ASSIGN_OR_RETURN(Migration migration, ParseMigrationFileName(file_name));
    if (auto [it, inserted] = files.emplace(migration.version, file_name); !inserted) {
      return absl::InvalidArgumentError(absl::StrCat("migration files ", it->second, " and ",
                                                     file_name, " in ", dir.string(),
                                                     " have the same version ", migration.version));
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::InternalError(absl::StrCat("cannot read migration ", entry.path().string()));
    }
    migration.sql = std::move(contents).str();
    if (absl::StripAsciiWhitespace(migration.sql).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("migration file ", entry.path().string(), " is empty"));
    }
    migrations.push_back(std::move(migration));
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot list migrations in ", dir.string(), ": ", error.message()));
  }
  std::sort(migrations.begin(), migrations.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  return migrations;
}

absl::Status ApplyMigrations(Pool& pool, std::string_view component,
                             const std::vector<Migration>& migrations) {
  if (component.empty()) return absl::InvalidArgumentError("migration component is empty");
  GREENLOOP_RETURN_IF_ERROR(ValidateMigrations(migrations));
  const std::string comp(component);
  std::vector<const Migration*> sorted;
  sorted.reserve(migrations.size());
  for (const Migration& m : migrations) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const Migration* a, const Migration* b) { return a->version < b->version; });

  GREENLOOP_ASSIGN_OR_RETURN(Pool::Lease lease, pool.Acquire());
  const std::int64_t key = LockKey(component);
  int backend_pid = 0;
  const absl::Time wait_start = absl::Now();
  // A session lock, taken inside a transaction: it outlives the commit and is released below or
  // when the session ends.
  GREENLOOP_RETURN_IF_ERROR(lease.Transact([&](pqxx::work& tx) {
    tx.exec_params("SELECT pg_advisory_lock($1)", key);
    backend_pid = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
    return absl::OkStatus();
  }));
  absl::Cleanup unlock = [&] {
    bool released = false;
    absl::Status status = lease.Transact([&](pqxx::work& tx) {
      released = tx.exec_params1("SELECT pg_advisory_unlock($1)", key)[0].as<bool>();
      return absl::OkStatus();
    });
    // Never give a connection that may still hold the lock back to the pool.
    if (!status.ok() || !released) lease.Discard();
  };
  const absl::Duration waited = absl::Now() - wait_start;
  if (waited > absl::Seconds(1)) {
    logging::Info("waited for the migration lock",
                  {{"component", comp}, {"waited_ms", absl::ToInt64Milliseconds(waited)}});
  }

  std::map<int, Applied> applied;
  std::map<int, std::string> checksums;
  GREENLOOP_RETURN_IF_ERROR(lease.Transact([&](pqxx::work& tx) {
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kCreateTableLockKey);
    tx.exec(std::string(kCreateTable));
    for (const auto& row : tx.exec_params(
             "SELECT version, name, checksum FROM schema_migrations WHERE component = $1", comp)) {
      applied[row[0].as<int>()] = Applied{row[1].as<std::string>(), row[2].as<std::string>()};
    }
    // sha256 of the file's bytes, as `sha256sum NNNN_name.sql` prints it.
    for (const Migration* m : sorted) {
      checksums[m->version] =
          tx.exec_params1("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", m->sql)[0]
              .as<std::string>();
    }
    return absl::OkStatus();
  }));

  std::vector<const Migration*> pending;
  for (const Migration* m : sorted) {
    auto it = applied.find(m->version);
    if (it == applied.end()) {
      pending.push_back(m);
      continue;
    }
    const std::string& now = checksums[m->version];
    if (it->second.checksum != now) {
      return absl::FailedPreconditionError(
          absl::StrCat("migration ", m->version, " (", MigrationFileName(*m), ") of component \"",
                       comp, "\" was edited after it was applied: checksum ",
                       it->second.checksum.substr(0, 12), " in the database, ", now.substr(0, 12),
                       " now; never edit an applied migration, add a new one"));
    }
    if (it->second.name != m->name) {
      logging::Warn("applied migration was renamed", {{"component", comp},
                                                      {"version", m->version},
                                                      {"recorded_name", it->second.name},
                                                      {"name", m->name}});
    }
    applied.erase(it);
  }
  for (const auto& [version, unknown] : applied) {
    logging::Warn("database has a migration this binary does not know (newer binary ran here?)",
                  {{"component", comp}, {"version", version}, {"name", unknown.name}});
  }

  for (const Migration* m : pending) {
    const std::string file = MigrationFileName(*m);
    const absl::Time start = absl::Now();
    absl::Status status = lease.Transact([&](pqxx::work& tx) {
      // libpqxx 6 silently reconnects a broken connection at the next BEGIN; the new session
      // would not hold the lock.
      if (tx.exec1("SELECT pg_backend_pid()")[0].as<int>() != backend_pid) {
        return absl::AbortedError(
            absl::StrCat("lost the PostgreSQL session holding the migration lock of component \"",
                         comp, "\"; start again"));
      }
      tx.exec(m->sql);
      tx.exec_params(
          "INSERT INTO schema_migrations (component, version, name, checksum) "
          "VALUES ($1, $2, $3, $4)",
          comp, m->version, m->name, checksums[m->version]);
      return absl::OkStatus();
    });
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("migration ", m->version, " (", file, ") of component \"",
                                       comp, "\" failed: ", status.message()));
    }
    logging::Info("applied migration",
                  {{"component", comp},
                   {"version", m->version},
                   {"file", file},
                   {"duration_ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
  }
  logging::Info("schema up to date", {{"component", comp},
                                      {"applied_now", static_cast<std::int64_t>(pending.size())},
                                      {"version", sorted.empty() ? 0 : sorted.back()->version}});
  return absl::OkStatus();
}

}  // namespace greenloop::pg
