// A simulated crowd: N raters that judge items through the real rater API (FeedbackService Lease,
// Submit, Skip over gRPC, each with its own bearer token, exactly as the web client does).
//
// Each rater has an accuracy drawn from Normal(accuracy_mean, accuracy_sd) clamped to
// [accuracy_min, 1]; a share of raters are spammers who answer uniformly at random. An honest
// rater recognises the item (Oracle), skips a share of items as unsure, answers right with its
// accuracy and otherwise picks another label uniformly. Seconds per item are log-normal (median
// seconds_median, sigma seconds_sigma); the rater waits seconds / time_compression of wall time
// and reports the modelled seconds in SubmitRequest.seconds_spent, so the report can give both
// the modelled human time and the wall time.
//
// A crowd may work several campaigns (MODE_HITL_COMBINED's feature and label questions): a rater
// leases from the first one that has work, in the order given, and stops once every one is closed.
//
//   SimulatedCrowd crowd(spec.crowd, channel, {"exp-1-hitl"}, &oracle, profiles, tokens);
//   crowd.Start();
//   ... the run ...
//   crowd.Stop();
//   CrowdStats s = crowd.Stats();
//
// Deterministic for a seed except for the interleaving of raters (threads) and the server.
// Thread-safety: Start/Stop from one thread; Stats() from any.
#pragma once

#include <grpcpp/channel.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "tools/greenloop/experiment/oracle.h"
#include "tools/greenloop/experiment/spec.h"

namespace greenloop::experiment {

// One simulated rater's traits.
struct RaterProfile {
  std::string name;
  double accuracy = 1.0;
  bool spammer = false;
};

// The cells an honest rater marks on a feature question over `cells` cells when `truth` are the
// ones that do not matter: each true cell with probability `recall`, and false cells (uniformly
// among the others) so that the expected share of true cells among the marks is `precision`.
// Sorted. A spammer (`spammer`) marks one to five cells at random.
std::vector<std::uint32_t> DrawMask(const std::vector<std::uint32_t>& truth, std::uint32_t cells,
                                    double recall, double precision, bool spammer,
                                    std::mt19937_64& rng);

// The cells of a feature item that truly do not matter, and how many cells it has: for a text
// item (its payload the words, one per line) the positions of `words` among its words; otherwise
// `cells` over the question's grid.
std::pair<std::vector<std::uint32_t>, std::uint32_t> FeatureTruth(
    const v1::LeasedItem& item, const std::vector<std::uint32_t>& cells,
    const std::vector<std::string>& words);

// Draws `spec.raters` profiles from the crowd spec; the first round(spammer_share × raters) are
// spammers. Deterministic for spec.seed.
std::vector<RaterProfile> DrawProfiles(const CrowdSpec& spec, const std::string& name_prefix);

// What a rater (or the whole crowd) did.
struct RaterTotals {
  std::string name;
  double accuracy = 0;
  bool spammer = false;
  std::uint64_t leased = 0;
  std::uint64_t submitted = 0;
  std::uint64_t skipped = 0;
  std::uint64_t right = 0;       // submitted answers equal to the truth
  std::uint64_t unknown = 0;     // items the oracle did not recognise (skipped as unreadable)
  std::uint64_t rpc_errors = 0;  // failed Lease/Submit/Skip calls
  double modelled_seconds = 0;   // seconds_spent reported (and skipped items' time)
};
struct CrowdStats {
  std::vector<RaterTotals> raters;
  RaterTotals total;
  double wall_seconds = 0;
  std::string last_error;
};

// Creates one ROLE_RATER token per profile with FeedbackService.CreateToken, authenticated with
// `admin_token`. Returns the secrets in profile order. The error names the feedback service.
absl::StatusOr<std::vector<std::string>> CreateRaterTokens(
    const std::shared_ptr<::grpc::Channel>& channel, const std::string& address,
    const std::string& admin_token, const std::vector<RaterProfile>& profiles);

class SimulatedCrowd final {
 public:
  // `campaign_ids` in the order raters prefer them (at least one); `oracle` is not owned and must
  // outlive the crowd; tokens[i] is profiles[i]'s bearer token (empty: calls without one, for a
  // service with authentication disabled).
  SimulatedCrowd(const CrowdSpec& spec, std::shared_ptr<::grpc::Channel> channel,
                 std::vector<std::string> campaign_ids, const Oracle* oracle,
                 std::vector<RaterProfile> profiles, std::vector<std::string> tokens);
  ~SimulatedCrowd();
  SimulatedCrowd(const SimulatedCrowd&) = delete;
  SimulatedCrowd& operator=(const SimulatedCrowd&) = delete;

  // Starts one thread per rater. Raters retry while a campaign does not exist yet and stop on
  // their own once every campaign is closed.
  void Start();
  // Stops every rater (in-flight waits are cut short; held leases, the one in hand and the ones
  // prefetched, are released) and joins them.
  // Idempotent.
  void Stop();
  CrowdStats Stats() const;

 private:
  struct Rater;
  struct Judgement;
  enum class Leased { kItems, kRetry, kClosed };
  void Loop(Rater& rater);
  // Leases up to spec.lease_batch items into `lease` from the first campaign that has some;
  // kRetry after waiting when none came (or on an error other than a closed campaign), kClosed
  // when every campaign is closed or on Stop.
  Leased LeaseBatch(Rater& rater, v1::FeedbackService::Stub& stub, v1::LeaseResponse& lease);
  // One Lease from `campaign_id`: FAILED_PRECONDITION is a closed campaign, NOT_FOUND one not
  // created yet (neither counted as an error).
  ::grpc::Status LeaseFrom(Rater& rater, v1::FeedbackService::Stub& stub,
                           const std::string& campaign_id, v1::LeaseResponse& lease);
  // What `rater` answers to `item` (or that it skips it).
  Judgement Judge(Rater& rater, const v1::LeasedItem& item) const;
  // The same for a feature question: a mask of spec.irrelevant_cells (DrawMask); for a text item
  // (its payload the words, one per line) the positions of spec.irrelevant_words among them.
  Judgement JudgeFeatures(Rater& rater, const v1::LeasedItem& item) const;
  // Submits or skips `item` after `modelled` seconds of (simulated) human work.
  void Answer(Rater& rater, v1::FeedbackService::Stub& stub, const v1::LeasedItem& item,
              double modelled);
  // Releases lease.items(from) onwards.
  void Release(Rater& rater, v1::FeedbackService::Stub& stub, const v1::LeaseResponse& lease,
               int from);
  void Error(Rater& rater, std::string_view what, const ::grpc::Status& s);
  // Waits up to `seconds` of wall time; false when stopped meanwhile.
  bool Wait(double seconds);

  CrowdSpec spec_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::vector<std::string> campaign_ids_;
  const Oracle* oracle_;
  std::vector<std::unique_ptr<Rater>> raters_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point end_;
  std::string last_error_;
};

}  // namespace greenloop::experiment
