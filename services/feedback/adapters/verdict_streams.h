// WatchVerdicts streams: gRPC callback-API writers fed from the verdict table by one pump thread.
#pragma once

#include <grpcpp/support/server_callback.h>

#include <cstdint>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "greenloop/v1/feedback.pb.h"
#include "services/feedback/core/queue.h"

namespace greenloop::feedback {

class VerdictStream;

/// \brief Serves every open WatchVerdicts stream.
///
/// Each stream remembers the seq of the last verdict it handed to gRPC. One pump thread reads the
/// next verdicts of a stream from the store when the stream has written everything it had and
/// either its campaign was notified (Notify(), called by the queue after a commit that added
/// verdicts) or `poll_interval` passed (verdicts written by another replica, a missed wake-up).
/// A stream writes one response at a time, so a slow trainer only slows itself; its cursor makes
/// resuming after any disconnect exact. A stream of a closed campaign ends with OK after its last
/// verdict; CloseAll() ends every stream with UNAVAILABLE (shutdown: clients resume elsewhere).
///
/// Thread-safety: thread-safe. Start() once; Stop() (or the destructor) joins the pump after
/// CloseAll(). The queue must outlive this.
class VerdictStreams final {
 public:
  VerdictStreams(FeedbackQueue* queue, absl::Duration poll_interval = absl::Seconds(1));
  ~VerdictStreams();

  void Start();
  /// A reactor streaming `campaign_id`'s verdicts after `after_seq`; owned by gRPC.
  ::grpc::ServerWriteReactor<v1::WatchVerdictsResponse>* Open(const std::string& campaign_id,
                                                              std::int64_t after_seq);
  /// Wakes the streams of `campaign_id`.
  void Notify(const std::string& campaign_id);
  /// Ends every open stream with UNAVAILABLE and refuses new ones.
  void CloseAll();
  void Stop();
  /// Streams open now.
  int open_streams() const;

 private:
  friend class VerdictStream;
  void Remove(VerdictStream* stream);
  void Wake();
  void Pump();

  FeedbackQueue* const queue_;
  const absl::Duration poll_interval_;
  mutable absl::Mutex mu_;  // guards streams_ and closing_; held while the pump feeds a stream
  std::set<VerdictStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex wake_mu_;
  std::set<std::string> dirty_ ABSL_GUARDED_BY(wake_mu_);
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread pump_;
};

/// A reactor that ends the call at once with `status` (a refused WatchVerdicts).
::grpc::ServerWriteReactor<v1::WatchVerdictsResponse>* FailedVerdictStream(
    const ::grpc::Status& status);

}  // namespace greenloop::feedback
