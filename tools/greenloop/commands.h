// The subcommands of the `greenloop` command line.
//
// Each command takes its arguments (without the program and command names), the environment and
// two streams, and returns the process exit code. They write results to `out` and one line per
// problem to `err`, so main() stays wiring only and tests run them in-process.
//
//   greenloop rpc health --target HOST:PORT [--service NAME]   gRPC health of a service
//   greenloop rpc list --target HOST:PORT                      services it serves (reflection)
//   greenloop db status [--pg.url URL]                         migrations applied per component
//   greenloop version
//
// Exit codes: 0 success; 1 the command ran and the answer is bad (NOT_SERVING) or it failed;
// 2 bad usage or config; 3 a dependency (the service, PostgreSQL) is unreachable.
#pragma once

#include <optional>
#include <ostream>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/config/config.h"

namespace greenloop::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

// Loads `schema` from `args` (after the command words) and the environment. Returns an exit code
// when the command should stop here (help printed with `extra_help` after the usage, or bad input
// reported as one line), nothing when it should go on. Shared by every command file.
std::optional<int> LoadArgs(config::Schema& schema, std::string_view program,
                            const std::vector<std::string_view>& args,
                            const config::Environment& env, std::ostream& out, std::ostream& err,
                            std::string_view extra_help = {});

// Prints `status` as one line and returns its exit code: 3 for UNAVAILABLE and DEADLINE_EXCEEDED,
// 2 for INVALID_ARGUMENT, 1 otherwise.
int Report(std::ostream& err, std::string_view program, const absl::Status& status);

// Dispatches `args` (argv without the program name) to a command.
int Main(const std::vector<std::string_view>& args, const config::Environment& env,
         std::ostream& out, std::ostream& err);

// Asks grpc.health.v1.Health/Check of `--target` for `--service` ("" is the whole server).
// Prints SERVING, NOT_SERVING, ...; kExitOk only for SERVING.
int RpcHealth(const std::vector<std::string_view>& args, const config::Environment& env,
              std::ostream& out, std::ostream& err);

// Lists the services `--target` serves, through the reflection service, one per line, sorted.
int RpcList(const std::vector<std::string_view>& args, const config::Environment& env,
            std::ostream& out, std::ostream& err);

// Prints the migrations applied to the database at `--pg.url`, per component.
int DbStatus(const std::vector<std::string_view>& args, const config::Environment& env,
             std::ostream& out, std::ostream& err);

}  // namespace greenloop::cli
