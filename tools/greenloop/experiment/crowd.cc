#include "tools/greenloop/experiment/crowd.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/grpc/channel.h"
#include "greenloop/v1/feedback.grpc.pb.h"

namespace greenloop::experiment {

struct SimulatedCrowd::Rater {
  RaterProfile profile;
  std::string token;
  std::mt19937_64 rng;
  mutable std::mutex mu;  // guards totals
  RaterTotals totals;
};

std::vector<RaterProfile> DrawProfiles(const CrowdSpec& spec, const std::string& name_prefix) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(spec.seed));
  std::normal_distribution<double> accuracy(spec.accuracy_mean, spec.accuracy_sd);
  const auto spammers = static_cast<std::int64_t>(
      std::llround(spec.spammer_share * static_cast<double>(spec.raters)));
  std::vector<RaterProfile> out;
  for (std::int64_t i = 0; i < spec.raters; ++i) {
    RaterProfile p;
    p.name = fmt::format("{}-{}", name_prefix, i + 1);
    p.spammer = i < spammers;
    const double a = spec.accuracy_sd > 0 ? accuracy(rng) : spec.accuracy_mean;
    p.accuracy = std::clamp(a, spec.accuracy_min, 1.0);
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> CreateRaterTokens(
    const std::shared_ptr<::grpc::Channel>& channel, const std::string& address,
    const std::string& admin_token, const std::vector<RaterProfile>& profiles) {
  auto stub = v1::FeedbackService::NewStub(channel);
  std::vector<std::string> tokens;
  for (const RaterProfile& p : profiles) {
    v1::CreateTokenRequest request;
    request.set_role(v1::ROLE_RATER);
    request.set_name(p.name.substr(0, 64));
    v1::CreateTokenResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), admin_token);
    const ::grpc::Status s = stub->CreateToken(ctx.get(), request, &response);
    if (!s.ok()) {
      const auto code = s.error_code() == ::grpc::StatusCode::UNAVAILABLE
                            ? absl::StatusCode::kUnavailable
                            : absl::StatusCode::kFailedPrecondition;
      return absl::Status(code, fmt::format("feedback service at {}: cannot create a rater token "
                                            "for {}: {}",
                                            address, p.name, s.error_message()));
    }
    tokens.push_back(response.token());
  }
  return tokens;
}

SimulatedCrowd::SimulatedCrowd(const CrowdSpec& spec, std::shared_ptr<::grpc::Channel> channel,
                               std::string campaign_id, const Oracle* oracle,
                               std::vector<RaterProfile> profiles, std::vector<std::string> tokens)
    : spec_(spec),
      channel_(std::move(channel)),
      campaign_id_(std::move(campaign_id)),
      oracle_(oracle) {
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    auto r = std::make_unique<Rater>();
    r->profile = profiles[i];
    r->token = i < tokens.size() ? tokens[i] : std::string();
    r->rng.seed(static_cast<std::uint64_t>(spec.seed) * 1000003ULL + i + 1);
    r->totals.name = r->profile.name;
    r->totals.accuracy = r->profile.accuracy;
    r->totals.spammer = r->profile.spammer;
    raters_.push_back(std::move(r));
  }
}

SimulatedCrowd::~SimulatedCrowd() { Stop(); }

void SimulatedCrowd::Start() {
  start_ = std::chrono::steady_clock::now();
  for (auto& r : raters_) {
    Rater* rater = r.get();
    threads_.emplace_back([this, rater] { Loop(*rater); });
  }
}

void SimulatedCrowd::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && threads_.empty()) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  if (!threads_.empty()) end_ = std::chrono::steady_clock::now();
  threads_.clear();
}

bool SimulatedCrowd::Wait(double seconds) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return stop_; });
}

void SimulatedCrowd::Loop(Rater& rater) {
  auto stub = v1::FeedbackService::NewStub(channel_);
  std::lognormal_distribution<double> seconds(std::log(spec_.seconds_median), spec_.seconds_sigma);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto error = [&](const std::string& what, const ::grpc::Status& s) {
    {
      std::lock_guard lock(rater.mu);
      ++rater.totals.rpc_errors;
    }
    std::lock_guard lock(mu_);
    last_error_ = fmt::format("{}: {}: {}", rater.profile.name, what, s.error_message());
  };
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    v1::LeaseRequest lease_request;
    lease_request.set_campaign_id(campaign_id_);
    lease_request.set_max_items(1);
    v1::LeaseResponse lease;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), rater.token);
    const ::grpc::Status ls = stub->Lease(ctx.get(), lease_request, &lease);
    if (ls.error_code() == ::grpc::StatusCode::FAILED_PRECONDITION) return;  // campaign closed
    if (!ls.ok()) {
      if (ls.error_code() != ::grpc::StatusCode::NOT_FOUND) error("Lease", ls);
      if (!Wait(0.2)) return;
      continue;
    }
    if (lease.items().empty()) {
      const double retry_ms = std::clamp<double>(lease.retry_after_ms(), 20.0, 500.0);
      if (!Wait(retry_ms / 1000.0)) return;
      continue;
    }
    for (const v1::LeasedItem& item : lease.items()) {
      {
        std::lock_guard lock(rater.mu);
        ++rater.totals.leased;
      }
      const double modelled = seconds(rater.rng);
      const bool stopped = !Wait(modelled / spec_.time_compression);
      if (stopped) {
        v1::ReleaseRequest rr;
        rr.set_lease_id(item.lease_id());
        v1::ReleaseResponse rresp;
        auto rctx = rpc::NewClientContext(std::chrono::seconds(2), rater.token);
        stub->Release(rctx.get(), rr, &rresp);
        return;
      }
      // A plain pair rather than std::optional: GCC 12 warns (falsely) about its value.
      std::uint32_t truth_label = 0;
      bool known = false;
      if (oracle_ != nullptr) {
        if (std::optional<std::uint32_t> t = oracle_->TrueLabel(item.payload())) {
          truth_label = *t;
          known = true;
        }
      }
      const v1::Question& q = item.question();
      const auto labels = static_cast<std::uint32_t>(std::max(q.labels_size(), 2));
      bool skip = false;
      v1::SkipReason reason = v1::SKIP_REASON_UNSURE;
      std::uint32_t answer_label = 0;
      if (rater.profile.spammer) {
        answer_label = static_cast<std::uint32_t>(rater.rng() % labels);
      } else if (!known) {
        skip = true;
        reason = v1::SKIP_REASON_UNREADABLE;
      } else if (unit(rater.rng) < spec_.skip_share) {
        skip = true;
      } else if (unit(rater.rng) < rater.profile.accuracy) {
        answer_label = truth_label;
      } else {
        // Another label, uniformly.
        answer_label =
            static_cast<std::uint32_t>((truth_label + 1 + rater.rng() % (labels - 1)) % labels);
      }
      if (q.kind() == v1::QUESTION_KIND_RELEVANCE) skip = true;
      if (skip) {
        v1::SkipRequest sr;
        sr.set_lease_id(item.lease_id());
        sr.set_reason(reason);
        v1::SkipResponse sresp;
        auto sctx = rpc::NewClientContext(std::chrono::seconds(10), rater.token);
        const ::grpc::Status s = stub->Skip(sctx.get(), sr, &sresp);
        std::lock_guard lock(rater.mu);
        if (s.ok()) {
          ++rater.totals.skipped;
          if (!known) ++rater.totals.unknown;
          rater.totals.modelled_seconds += modelled;
        }
        if (!s.ok()) ++rater.totals.rpc_errors;
        continue;
      }
      v1::SubmitRequest sub;
      sub.set_lease_id(item.lease_id());
      sub.set_seconds_spent(std::min(modelled, 86400.0));
      bool right = false;
      if (q.kind() == v1::QUESTION_KIND_LABEL_CHECK) {
        // "Is the given label right?" — the honest answer, flipped when the rater errs.
        const bool correct = known && q.has_given_label() && q.given_label() == truth_label;
        const bool says = rater.profile.spammer
                              ? (rater.rng() & 1) != 0
                              : (answer_label == truth_label ? correct : !correct);
        sub.mutable_answer()->set_label_correct(says);
        right = says == correct;
      } else {
        sub.mutable_answer()->set_label(answer_label);
        right = known && answer_label == truth_label;
      }
      v1::SubmitResponse sresp;
      auto sctx = rpc::NewClientContext(std::chrono::seconds(10), rater.token);
      const ::grpc::Status s = stub->Submit(sctx.get(), sub, &sresp);
      if (!s.ok()) {
        error("Submit", s);
        continue;
      }
      std::lock_guard lock(rater.mu);
      ++rater.totals.submitted;
      if (right) ++rater.totals.right;
      rater.totals.modelled_seconds += modelled;
    }
  }
}

CrowdStats SimulatedCrowd::Stats() const {
  CrowdStats out;
  out.total.name = "all";
  for (const auto& r : raters_) {
    std::lock_guard lock(r->mu);
    out.raters.push_back(r->totals);
    RaterTotals& t = out.total;
    t.leased += r->totals.leased;
    t.submitted += r->totals.submitted;
    t.skipped += r->totals.skipped;
    t.right += r->totals.right;
    t.unknown += r->totals.unknown;
    t.rpc_errors += r->totals.rpc_errors;
    t.modelled_seconds += r->totals.modelled_seconds;
  }
  std::lock_guard lock(mu_);
  const auto end = threads_.empty() && end_ > start_ ? end_ : std::chrono::steady_clock::now();
  out.wall_seconds = start_.time_since_epoch().count() == 0
                         ? 0.0
                         : std::chrono::duration<double>(end - start_).count();
  out.last_error = last_error_;
  return out;
}

}  // namespace greenloop::experiment
