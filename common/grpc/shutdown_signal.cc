#include "common/grpc/shutdown_signal.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace greenloop::rpc {
namespace {

// The write end of the live ShutdownSignal's pipe, or -1. The handler can reach nothing else, so
// this is the one piece of process-wide state, as signal dispositions are process-wide.
std::atomic<int> g_write_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free fd");

// Byte written by Stop(); signal numbers are never 0.
constexpr unsigned char kStopByte = 0;

extern "C" void OnShutdownSignal(int signal) {
  const int saved_errno = errno;
  const int fd = g_write_fd.load(std::memory_order_acquire);
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(signal);
    // Non-blocking: if the pipe is somehow full, a shutdown is already pending; drop this one.
    [[maybe_unused]] const ssize_t written = write(fd, &byte, 1);
  }
  errno = saved_errno;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShutdownSignal>> ShutdownSignal::Install(
    std::initializer_list<int> signals) {
  for (const int signal : signals) {
    if (signal <= 0 || signal > 255 || signal == SIGKILL || signal == SIGSTOP) {
      return absl::InvalidArgumentError(absl::StrCat("cannot handle signal ", signal));
    }
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  // Only the write end is non-blocking: the handler must never block, Wait() should.
  if (fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0) {
    const int error = errno;
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fcntl(O_NONBLOCK): ", std::strerror(error)));
  }
  int expected = -1;
  if (!g_write_fd.compare_exchange_strong(expected, fds[1], std::memory_order_acq_rel)) {
    close(fds[0]);
    close(fds[1]);
    return absl::FailedPreconditionError(
        "a ShutdownSignal is already installed; signal handlers are process-wide, keep one");
  }
  std::unique_ptr<ShutdownSignal> self(new ShutdownSignal(fds[0], fds[1]));
  for (const int signal : signals) {
    struct sigaction action {};
    action.sa_handler = OnShutdownSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // other threads' blocking calls carry on undisturbed
    Previous previous{signal, {}};
    if (sigaction(signal, &action, &previous.action) != 0) {
      const int error = errno;
      self.reset();  // restores what was installed so far
      return absl::InternalError(absl::StrCat("sigaction(", signal, "): ", std::strerror(error)));
    }
    self->previous_.push_back(previous);
  }
  return self;
}

ShutdownSignal::~ShutdownSignal() {
  // Handlers first, so no new handler invocation sees the fd; then the fd.
  for (auto it = previous_.rbegin(); it != previous_.rend(); ++it) {
    sigaction(it->signal, &it->action, nullptr);
  }
  g_write_fd.store(-1, std::memory_order_release);
  close(read_fd_);
  close(write_fd_);
}

std::optional<int> ShutdownSignal::Wait() {
  std::lock_guard<std::mutex> lock(mu_);
  while (!done_) {
    unsigned char byte = 0;
    const ssize_t n = read(read_fd_, &byte, 1);
    if (n == 1) {
      done_ = true;
      if (byte != kStopByte) {
        result_ = static_cast<int>(byte);
      }
    } else if (n == 0 || errno != EINTR) {
      // Cannot happen while the write end is open; treat as Stop() rather than spin.
      done_ = true;
    }
  }
  return result_;
}

void ShutdownSignal::Stop() {
  [[maybe_unused]] const ssize_t written = write(write_fd_, &kStopByte, 1);
}

}  // namespace greenloop::rpc
