// The humans' infrastructure as the experiment counts it: the processes (the feedback service,
// PostgreSQL's postmaster, whose backends are its children and counted with it) that a run's
// human loop keeps busy, named with their pid files.
//
//   --infra.pid_files=feedback=.local/services/feedback.pid,postgres=.local/pg/data/postmaster.pid
//
// The runner registers each with the node's collector under <run_id>-<name> for every mode (so
// that both sides of a comparison carry it) and reads its energy at the end of the run.
//
// Thread-safety: pure functions and file reads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace greenloop::experiment {

struct InfraProcess {
  std::string name;      // [a-z0-9]{1,12}
  std::string pid_file;  // its first line is the pid
};

// Parses "name=path[,name=path...]" (empty: none). INVALID_ARGUMENT naming infra.pid_files and the
// entry for a missing '=', an empty path, a bad or repeated name.
absl::StatusOr<std::vector<InfraProcess>> ParseInfraProcesses(std::string_view text);

// Reads the pid on the first line of `path` (a service's pid file, PostgreSQL's postmaster.pid).
// NOT_FOUND when it cannot be read; INVALID_ARGUMENT when the line is not a positive number.
absl::StatusOr<int> ReadPidFile(const std::string& path);

// The run id `name` is registered under during run `run_id`. INVALID_ARGUMENT when it would pass
// the collector's 63 characters.
absl::StatusOr<std::string> InfraRunId(const std::string& run_id, const std::string& name);

}  // namespace greenloop::experiment
