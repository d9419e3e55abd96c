// Versioned SQL migrations, applied once each at service start under an advisory lock.
//
// Each component (a service: "energy", "feedback", ...) keeps its schema as numbered SQL files,
// `NNNN_name.sql` (four digits, then lowercase letters, digits and underscores), in one directory.
// The build embeds them into the binary with greenloop_embed_migrations() (cmake/
// GreenloopMigrations.cmake), so a service does not read files at run time; tools and tests can
// read a directory with LoadMigrationsFromDir(). At start, main applies the pending ones:
//
//   // CMakeLists.txt: greenloop_embed_migrations(TARGET feedback_storage
//   //                   DIR migrations NAME greenloop::feedback::Migrations)
//   GREENLOOP_RETURN_IF_ERROR(pg::ApplyMigrations(*pool, "feedback", feedback::Migrations()));
//
// ApplyMigrations() holds a PostgreSQL advisory lock keyed on the component while it works, so
// replicas starting together apply each migration exactly once; it records what it applied in
// schema_migrations(component, version, name, checksum, applied_at) and runs each pending
// migration in its own transaction. The rules, enforced here: never edit a migration once it has
// been applied anywhere (its checksum is checked at every start) — add a new one instead;
// statements that cannot run inside a transaction (CREATE INDEX CONCURRENTLY, VACUUM) are not
// supported.
//
// Thread-safety: the functions are thread-safe; concurrent ApplyMigrations() calls, in one
// process or many, serialize on the advisory lock.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/pg/pool.h"

namespace greenloop::pg {

struct Migration {
  int version = 0;   // NNNN of the file name, 1 to 9999
  std::string name;  // the part between NNNN_ and .sql
  std::string sql;   // the file's bytes, run as one multi-statement string

  friend bool operator==(const Migration&, const Migration&) = default;
};

// Returns the file name a migration comes from: "0003_add_rater_index.sql".
std::string MigrationFileName(const Migration& migration);

// Parses "NNNN_name.sql" into version and name (sql left empty); INVALID_ARGUMENT naming the file
// and the expected pattern otherwise.
absl::StatusOr<Migration> ParseMigrationFileName(std::string_view file_name);

// Checks a set of migrations: versions 1 to 9999, each once, names valid, SQL not blank.
// INVALID_ARGUMENT naming the offending file(s).
absl::Status ValidateMigrations(const std::vector<Migration>& migrations);

// Reads every *.sql file of `dir`, sorted by version (other files are ignored). NOT_FOUND if `dir`
// is not a directory; INVALID_ARGUMENT naming the file for a bad name, a duplicate version or a
// blank file; INTERNAL if a file cannot be read.
absl::StatusOr<std::vector<Migration>> LoadMigrationsFromDir(const std::filesystem::path& dir);

// Applies the migrations of `component` that the database has not recorded yet, in version
// order, each in its own transaction, under a session advisory lock on the component (waits for
// another process that holds it). Logs each migration it applies. Errors: INVALID_ARGUMENT (see
// ValidateMigrations, or an empty component); FAILED_PRECONDITION naming version and file when an
// applied migration's SQL has changed; a failing migration's own code (see errors.h) with the
// version and file in the message, the migrations before it staying applied; ABORTED if the
// session holding the lock was lost midway; UNAVAILABLE / DEADLINE_EXCEEDED from the pool.
absl::Status ApplyMigrations(Pool& pool, std::string_view component,
                             const std::vector<Migration>& migrations);

}  // namespace greenloop::pg
