#include "tools/greenloop/experiment_flags.h"

#include <unistd.h>

#include <csignal>
#include <utility>

namespace greenloop::cli {

namespace {
// Where SIGINT goes: the innermost live guard's flag. A signal is process-wide, so its route is
// too; the state it sets is the guard's.
std::atomic<std::atomic<bool>*> g_sigint_target{nullptr};
static_assert(std::atomic<std::atomic<bool>*>::is_always_lock_free);

extern "C" void OnSigint(int) {
  if (std::atomic<bool>* target = g_sigint_target.load(); target != nullptr) target->store(true);
}
}  // namespace

SigintGuard::SigintGuard() {
  outer_ = g_sigint_target.exchange(&interrupted_);
  previous_ = std::signal(SIGINT, OnSigint);
}

SigintGuard::~SigintGuard() {
  std::signal(SIGINT, previous_);
  g_sigint_target.store(outer_);
}

bool SigintGuard::AnyInterrupted() {
  std::atomic<bool>* target = g_sigint_target.load();
  return target != nullptr && target->load();
}

// Report(), with a spec or experiment that does not exist counted as bad usage (exit 2).
int Exit(std::ostream& err, std::string_view program, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kNotFound) {
    err << program << ": " << status.message() << "\n";
    return kExitUsage;
  }
  return Report(err, program, status);
}

// Splits a leading positional argument (the spec or experiment) off `args`.
std::pair<std::string, std::vector<std::string_view>> Positional(
    const std::vector<std::string_view>& args) {
  if (!args.empty() && !args[0].starts_with("-")) {
    return {std::string(args[0]), {args.begin() + 1, args.end()}};
  }
  return {std::string(), args};
}

void AddCommon(config::Schema& schema, CommonArgs& a) {
  schema
      .Add("pg.url", &a.pg_url, "PostgreSQL to store experiments in; empty: not stored",
           {.secret = true})
      .Add("auth.token", &a.token, "worker token for the services; empty: none", {.secret = true})
      .Add("auth.admin_token", &a.admin_token,
           "admin token that creates one rater token per simulated rater", {.secret = true})
      .Add("output_dir", &a.output_dir, "where reports go; empty: the spec's output_dir")
      .Add("datasets.fashion_mnist_dir", &a.fashion_mnist_dir, "Fashion-MNIST IDX files")
      .Add("datasets.spam_assassin_dir", &a.spam_assassin_dir, "SpamAssassin npm package")
      .Add("infra.pid_files", &a.infra_pid_files,
           "the humans' infrastructure counted with every run, name=pid_file[,...] (e.g. "
           "feedback=.local/services/feedback.pid,postgres=.local/pg/data/postmaster.pid); "
           "empty: the trainer only");
}

// LoadArgs, then the common flags that need parsing: an exit code when the command must stop.
std::optional<int> LoadCommon(config::Schema& schema, std::string_view program,
                              const std::vector<std::string_view>& args,
                              const config::Environment& env, std::ostream& out, std::ostream& err,
                              CommonArgs& a, const std::string& epilog) {
  if (auto code = LoadArgs(schema, program, args, env, out, err, epilog)) return code;
  absl::StatusOr<std::vector<experiment::InfraProcess>> infra =
      experiment::ParseInfraProcesses(a.infra_pid_files);
  if (!infra.ok()) {
    err << program << ": " << infra.status().message() << "\n";
    return kExitUsage;
  }
  a.infra = std::move(*infra);
  return std::nullopt;
}

// The runner's options from the common flags; every runner stops on Ctrl-C (the innermost
// SigintGuard).
// `no_progress`: a line per evaluation even on a terminal.
experiment::RunnerOptions RunnerOptionsFrom(const CommonArgs& a, bool no_progress,
                                            std::string experiment_id) {
  return {.token = a.token,
          .admin_token = a.admin_token,
          .fashion_mnist_dir = a.fashion_mnist_dir,
          .spam_assassin_dir = a.spam_assassin_dir,
          .progress_in_place = !no_progress && isatty(STDERR_FILENO) == 1,
          .interrupted = [] { return SigintGuard::AnyInterrupted(); },
          .experiment_id = std::move(experiment_id),
          .infra = a.infra};
}

}  // namespace greenloop::cli
