// The greenloop-feedback binary a benchmark drives: started on a database of the caller's, given
// rater tokens and filled campaigns over its own gRPC API, and stopped (SIGTERM) on destruction.
//
//   ServiceUnderTest service(db.url());
//   std::vector<std::string> raters = service.RaterTokens(200);
//   service.FillCampaign("bench-0", 50'000, /*k=*/3);
//   v1::FeedbackService::Stub& stub = service.stub(r);   // one of a few distinct connections
//   ...
//   service.CloseCampaign("bench-0");
//
// Thread-safety: stub() may be used from many threads; the other methods from one.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "greenloop/v1/feedback.grpc.pb.h"

namespace greenloop::feedback::bench {

/// The admin token every benchmarked service is started with.
inline constexpr char kBenchAdminToken[] = "glt_benchAdminNotForProduction0123456789abcd";

class ServiceUnderTest final {
 public:
  /// Starts the binary on `db_url` with `extra_flags` after the defaults (loopback ports chosen
  /// by the kernel, no rate limit). Throws std::runtime_error when it does not come up.
  explicit ServiceUnderTest(const std::string& db_url, std::vector<std::string> extra_flags = {});
  ServiceUnderTest(const ServiceUnderTest&) = delete;
  ServiceUnderTest& operator=(const ServiceUnderTest&) = delete;
  ~ServiceUnderTest();

  pid_t pid() const { return pid_; }
  /// One of `channels()` stubs, each on its own HTTP/2 connection.
  v1::FeedbackService::Stub& stub(std::size_t i) const { return *stubs_[i % stubs_.size()]; }
  std::size_t channels() const { return stubs_.size(); }

  /// `n` new rater tokens' secrets.
  std::vector<std::string> RaterTokens(int n);
  /// Creates a label-check campaign with `items` items, `k` ratings per item.
  void FillCampaign(const std::string& campaign_id, int items, int k);
  /// Closes a campaign (so that the service's background work stops looking at it).
  void CloseCampaign(const std::string& campaign_id);

 private:
  std::string Token(int role, const std::string& name);

  pid_t pid_ = -1;
  std::filesystem::path log_;
  std::string worker_token_;
  std::vector<std::unique_ptr<v1::FeedbackService::Stub>> stubs_;
};

}  // namespace greenloop::feedback::bench
