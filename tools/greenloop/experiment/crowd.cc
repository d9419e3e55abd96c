#include "tools/greenloop/experiment/crowd.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <string_view>
#include <utility>

#include "common/grpc/channel.h"

namespace greenloop::experiment {

struct SimulatedCrowd::Rater {
  RaterProfile profile;
  std::string token;
  std::mt19937_64 rng;
  mutable std::mutex mu;  // guards totals
  RaterTotals totals;
  std::vector<bool> closed;  // per campaign: it answered FAILED_PRECONDITION (the rater's thread)
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
                               std::vector<std::string> campaign_ids, const Oracle* oracle,
                               std::vector<RaterProfile> profiles, std::vector<std::string> tokens)
    : spec_(spec),
      channel_(std::move(channel)),
      campaign_ids_(std::move(campaign_ids)),
      oracle_(oracle) {
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    auto r = std::make_unique<Rater>();
    r->profile = profiles[i];
    r->token = i < tokens.size() ? tokens[i] : std::string();
    r->rng.seed(static_cast<std::uint64_t>(spec.seed) * 1000003ULL + i + 1);
    r->totals.name = r->profile.name;
    r->totals.accuracy = r->profile.accuracy;
    r->totals.spammer = r->profile.spammer;
    r->closed.assign(campaign_ids_.size(), false);
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

// What a rater decided about one item.
struct SimulatedCrowd::Judgement {
  bool skip = false;
  v1::SkipReason reason = v1::SKIP_REASON_UNSURE;
  bool known = false;  // the oracle recognised the item
  bool right = false;  // a submitted answer equal to the truth
  v1::Answer answer;
};

namespace {
bool IsFeatureQuestion(v1::QuestionKind kind) {
  return kind == v1::QUESTION_KIND_FEATURE_MASK || kind == v1::QUESTION_KIND_FEATURE_RULE;
}
}  // namespace

std::vector<std::uint32_t> DrawMask(const std::vector<std::uint32_t>& truth, std::uint32_t cells,
                                    double recall, double precision, bool spammer,
                                    std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::set<std::uint32_t> marked;
  if (spammer || cells == 0) {
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n && cells > 0; ++i)
      marked.insert(static_cast<std::uint32_t>(rng() % cells));
    return {marked.begin(), marked.end()};
  }
  const std::set<std::uint32_t> true_cells(truth.begin(), truth.end());
  for (std::uint32_t c : true_cells) {
    if (c < cells && unit(rng) < recall) marked.insert(c);
  }
  // Expected false marks: recall·|truth|·(1 − precision) / precision, drawn cell by cell.
  const double others = static_cast<double>(cells) - static_cast<double>(true_cells.size());
  const double wrong =
      recall * static_cast<double>(true_cells.size()) * (1 - precision) / std::max(precision, 1e-9);
  const double p_false = others > 0 ? std::min(1.0, wrong / others) : 0.0;
  for (std::uint32_t c = 0; c < cells; ++c) {
    if (!true_cells.contains(c) && unit(rng) < p_false) marked.insert(c);
  }
  return {marked.begin(), marked.end()};
}

std::pair<std::vector<std::uint32_t>, std::uint32_t> FeatureTruth(
    const v1::LeasedItem& item, const std::vector<std::uint32_t>& cells,
    const std::vector<std::string>& words) {
  const v1::Question& q = item.question();
  if (!item.payload().has_text()) {
    return {cells, q.feature_grid().rows() * q.feature_grid().cols()};
  }
  std::vector<std::uint32_t> truth;
  std::uint32_t n = 0;
  std::string_view rest = item.payload().text();
  while (!rest.empty()) {
    const std::size_t end = std::min(rest.find('\n'), rest.size());
    const std::string_view word = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    if (word.empty()) continue;
    if (std::find(words.begin(), words.end(), word) != words.end()) truth.push_back(n);
    ++n;
  }
  return {truth, n};
}

SimulatedCrowd::Judgement SimulatedCrowd::JudgeFeatures(Rater& rater,
                                                        const v1::LeasedItem& item) const {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Judgement j;
  j.known = true;
  if (!rater.profile.spammer && unit(rater.rng) < spec_.skip_share) {
    j.skip = true;
    return j;
  }
  const auto [truth, cells] = FeatureTruth(item, spec_.irrelevant_cells, spec_.irrelevant_words);
  const std::vector<std::uint32_t> mask =
      DrawMask(truth, cells, spec_.feature_recall, spec_.feature_precision, rater.profile.spammer,
               rater.rng);
  if (mask.empty() && item.question().kind() == v1::QUESTION_KIND_FEATURE_RULE) {
    j.skip = true;  // nothing to name: a rule needs a cell
    return j;
  }
  for (std::uint32_t c : mask) j.answer.mutable_feature_mask()->add_irrelevant_cells(c);
  j.answer.mutable_feature_mask();
  std::vector<std::uint32_t> sorted = truth;
  std::sort(sorted.begin(), sorted.end());
  j.right = mask == sorted;
  return j;
}

SimulatedCrowd::Judgement SimulatedCrowd::Judge(Rater& rater, const v1::LeasedItem& item) const {
  if (IsFeatureQuestion(item.question().kind())) return JudgeFeatures(rater, item);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Judgement j;
  // A plain pair rather than std::optional: GCC 12 warns (falsely) about its value.
  std::uint32_t truth = 0;
  if (oracle_ != nullptr) {
    if (std::optional<std::uint32_t> t = oracle_->TrueLabel(item.payload())) {
      truth = *t;
      j.known = true;
    }
  }
  const v1::Question& q = item.question();
  const auto labels = static_cast<std::uint32_t>(std::max(q.labels_size(), 2));
  std::uint32_t label = 0;
  if (rater.profile.spammer) {
    label = static_cast<std::uint32_t>(rater.rng() % labels);
  } else if (!j.known) {
    j.skip = true;
    j.reason = v1::SKIP_REASON_UNREADABLE;
  } else if (unit(rater.rng) < spec_.skip_share) {
    j.skip = true;
  } else if (unit(rater.rng) < rater.profile.accuracy) {
    label = truth;
  } else {
    label = (truth + 1 + static_cast<std::uint32_t>(rater.rng() % (labels - 1))) % labels;
  }
  if (q.kind() == v1::QUESTION_KIND_RELEVANCE) j.skip = true;
  if (j.skip) return j;
  if (q.kind() == v1::QUESTION_KIND_LABEL_CHECK) {
    // "Is the given label right?" — the honest answer, flipped when the rater errs.
    const bool correct = j.known && q.has_given_label() && q.given_label() == truth;
    const bool says =
        rater.profile.spammer ? (rater.rng() & 1) != 0 : (label == truth ? correct : !correct);
    j.answer.set_label_correct(says);
    j.right = says == correct;
  } else {
    j.answer.set_label(label);
    j.right = j.known && label == truth;
  }
  return j;
}

void SimulatedCrowd::Error(Rater& rater, std::string_view what, const ::grpc::Status& s) {
  {
    std::lock_guard lock(rater.mu);
    ++rater.totals.rpc_errors;
  }
  std::lock_guard lock(mu_);
  last_error_ = fmt::format("{}: {}: {}", rater.profile.name, what, s.error_message());
}

::grpc::Status SimulatedCrowd::LeaseFrom(Rater& rater, v1::FeedbackService::Stub& stub,
                                         const std::string& campaign_id, v1::LeaseResponse& lease) {
  v1::LeaseRequest request;
  request.set_campaign_id(campaign_id);
  request.set_max_items(static_cast<std::uint32_t>(spec_.lease_batch));
  auto ctx = rpc::NewClientContext(std::chrono::seconds(10), rater.token);
  const ::grpc::Status s = stub.Lease(ctx.get(), request, &lease);
  if (!s.ok() && s.error_code() != ::grpc::StatusCode::FAILED_PRECONDITION &&
      s.error_code() != ::grpc::StatusCode::NOT_FOUND) {
    Error(rater, "Lease", s);
  }
  return s;
}

SimulatedCrowd::Leased SimulatedCrowd::LeaseBatch(Rater& rater, v1::FeedbackService::Stub& stub,
                                                  v1::LeaseResponse& lease) {
  double retry_ms = 500;
  bool open = false;
  for (std::size_t c = 0; c < campaign_ids_.size(); ++c) {
    if (rater.closed[c]) continue;
    lease.Clear();
    const ::grpc::Status s = LeaseFrom(rater, stub, campaign_ids_[c], lease);
    if (s.error_code() == ::grpc::StatusCode::FAILED_PRECONDITION) {
      rater.closed[c] = true;
      continue;
    }
    open = true;
    if (!s.ok()) {
      retry_ms = std::min(retry_ms, 200.0);
      continue;
    }
    if (!lease.items().empty()) return Leased::kItems;
    retry_ms = std::min(retry_ms, std::clamp<double>(lease.retry_after_ms(), 20.0, 500.0));
  }
  if (!open) return Leased::kClosed;
  return Wait(retry_ms / 1000.0) ? Leased::kRetry : Leased::kClosed;
}

void SimulatedCrowd::Release(Rater& rater, v1::FeedbackService::Stub& stub,
                             const v1::LeaseResponse& lease, int from) {
  for (int i = from; i < lease.items_size(); ++i) {
    v1::ReleaseRequest request;
    request.set_lease_id(lease.items(i).lease_id());
    v1::ReleaseResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(2), rater.token);
    stub.Release(ctx.get(), request, &response);
  }
}

void SimulatedCrowd::Answer(Rater& rater, v1::FeedbackService::Stub& stub,
                            const v1::LeasedItem& item, double modelled) {
  const Judgement j = Judge(rater, item);
  auto ctx = rpc::NewClientContext(std::chrono::seconds(10), rater.token);
  if (j.skip) {
    v1::SkipRequest request;
    request.set_lease_id(item.lease_id());
    request.set_reason(j.reason);
    v1::SkipResponse response;
    const ::grpc::Status s = stub.Skip(ctx.get(), request, &response);
    if (!s.ok()) return Error(rater, "Skip", s);
    std::lock_guard lock(rater.mu);
    ++rater.totals.skipped;
    if (!j.known) ++rater.totals.unknown;
    rater.totals.modelled_seconds += modelled;
    return;
  }
  v1::SubmitRequest request;
  request.set_lease_id(item.lease_id());
  request.set_seconds_spent(std::min(modelled, 86400.0));
  *request.mutable_answer() = j.answer;
  v1::SubmitResponse response;
  const ::grpc::Status s = stub.Submit(ctx.get(), request, &response);
  if (!s.ok()) return Error(rater, "Submit", s);
  std::lock_guard lock(rater.mu);
  ++rater.totals.submitted;
  if (j.right) ++rater.totals.right;
  rater.totals.modelled_seconds += modelled;
}

void SimulatedCrowd::Loop(Rater& rater) {
  auto stub = v1::FeedbackService::NewStub(channel_);
  std::lognormal_distribution<double> seconds(std::log(spec_.seconds_median), spec_.seconds_sigma);
  std::lognormal_distribution<double> feature_seconds(std::log(spec_.feature_seconds_median),
                                                      spec_.seconds_sigma);
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    v1::LeaseResponse lease;
    const Leased leased = LeaseBatch(rater, *stub, lease);
    if (leased == Leased::kClosed) return;
    if (leased == Leased::kRetry) continue;
    {
      std::lock_guard lock(rater.mu);
      rater.totals.leased += static_cast<std::uint64_t>(lease.items_size());
    }
    for (int i = 0; i < lease.items_size(); ++i) {
      const double modelled = IsFeatureQuestion(lease.items(i).question().kind())
                                  ? feature_seconds(rater.rng)
                                  : seconds(rater.rng);
      if (!Wait(modelled / spec_.time_compression)) {
        Release(rater, *stub, lease, i);  // the one in hand and the ones prefetched
        return;
      }
      Answer(rater, *stub, lease.items(i), modelled);
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
