// Turning SIGTERM and SIGINT into an orderly shutdown.
#pragma once

#include <csignal>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace greenloop::rpc {

/// \brief Waits for a termination signal so that main can shut the service down cleanly.
///
/// Install() replaces the handlers of the given signals (SIGTERM and SIGINT by default) with one
/// that only writes the signal number to a pipe (the self-pipe trick: write(2) is
/// async-signal-safe, nothing else happens in the handler). Wait() blocks on that pipe in an
/// ordinary thread, so all the shutdown work runs outside signal context. Destruction restores the
/// previous handlers.
///
/// Signal dispositions are process-wide by nature, so at most one ShutdownSignal may be installed
/// at a time; a second Install() fails with FAILED_PRECONDITION. Install it in main, early, before
/// threads that might otherwise be picked to run a default handler are started. A second signal
/// while shutting down is swallowed; send SIGKILL to stop a stuck process.
///
/// Thread-safety: Wait() and Stop() may be called from any thread. Wait() may be called by several
/// threads; all of them return the same result. Destroy it only after Wait() has returned.
///
/// \code
///   GREENLOOP_ASSIGN_OR_RETURN(std::unique_ptr<rpc::ShutdownSignal> signals,
///                              rpc::ShutdownSignal::Install());
///   GREENLOOP_RETURN_IF_ERROR(server.Start());
///   std::optional<int> signal = signals->Wait();  // SIGTERM from Kubernetes, SIGINT from Ctrl-C
///   server.Shutdown();
/// \endcode
class ShutdownSignal final {
 public:
  /// Installs the handler for `signals`. FAILED_PRECONDITION if another ShutdownSignal is alive;
  /// INTERNAL if the pipe or a handler cannot be set up; INVALID_ARGUMENT for an unusable signal.
  static absl::StatusOr<std::unique_ptr<ShutdownSignal>> Install(
      std::initializer_list<int> signals = {SIGTERM, SIGINT});

  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;
  /// Restores the handlers that were installed before, then closes the pipe.
  ~ShutdownSignal();

  /// Blocks until one of the signals arrives (returns its number) or Stop() is called (nullopt).
  /// Once it has returned, later calls return the same at once.
  std::optional<int> Wait();
  /// Makes Wait() return nullopt unless a signal got there first. Async-signal-safe; idempotent.
  void Stop();

 private:
  struct Previous {
    int signal;
    struct sigaction action;
  };
  ShutdownSignal(int read_fd, int write_fd) : read_fd_(read_fd), write_fd_(write_fd) {}

  const int read_fd_;
  const int write_fd_;
  std::vector<Previous> previous_;
  std::mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<int> result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::rpc
