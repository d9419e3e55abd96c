#include "tools/greenloop/experiment/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <string_view>

#include "common/grpc/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/greenloop/experiment/mode_run.h"
#include "tools/greenloop/experiment/summary.h"

namespace greenloop::experiment {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status CheckHealth(const std::string& what, const std::string& address) {
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
      rpc::CreateChannel(address, {.retry = {.max_attempts = 1}});
  if (!channel.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("{} address '{}': {}", what, address, std::string(channel.status().message())));
  }
  auto stub = ::grpc::health::v1::Health::NewStub(*channel);
  ::grpc::health::v1::HealthCheckRequest request;
  ::grpc::health::v1::HealthCheckResponse response;
  auto ctx = rpc::NewClientContext(std::chrono::seconds(3));
  const ::grpc::Status s = stub->Check(ctx.get(), request, &response);
  if (!s.ok()) {
    return absl::UnavailableError(
        fmt::format("{} at {} is down ({}); start it (deploy/local/run.sh starts the local "
                    "stack) or fix services.* in the spec",
                    what, address, s.error_message()));
  }
  if (response.status() != ::grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(fmt::format("{} at {} is not serving", what, address));
  }
  return absl::OkStatus();
}

// The services' identifiers (run ids, campaign ids): 1 to 63 characters of [a-z0-9-], not
// starting with '-'.
bool ValidRunId(std::string_view id) {
  if (id.empty() || id.size() > 63 || id.front() == '-') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::tm Utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

std::string UtcIdStamp(std::time_t t) {
  const std::tm tm = Utc(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string UtcRfc3339(std::time_t t) {
  const std::tm tm = Utc(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void ApplyTarget(cli::ModeResult& result, double target) {
  Smooth(result, 1);  // a window of one: the raw accuracies
  ApplyTargetToSmoothed(result, target);
}

ExperimentRunner::ExperimentRunner(Spec spec, RunnerOptions options, std::ostream& progress)
    : spec_(std::move(spec)), options_(std::move(options)), progress_(progress) {
  experiment_id_ = options_.experiment_id.empty()
                       ? fmt::format("{}-{}", spec_.name, UtcIdStamp(std::time(nullptr)))
                       : options_.experiment_id;
}

absl::Status ExperimentRunner::CheckServices() const {
  for (std::size_t r = 0; r < spec_.services.trainers.size(); ++r) {
    if (absl::Status s =
            CheckHealth(fmt::format("trainer (rank {})", r), spec_.services.trainers[r]);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckHealth("energy collector", spec_.services.energy); !s.ok()) return s;
  if (std::any_of(spec_.modes.begin(), spec_.modes.end(), UsesHumans)) {
    if (absl::Status s = CheckHealth("feedback service", spec_.services.feedback); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ExperimentRunner::CheckRunIds() const {
  for (v1::Mode mode : spec_.modes) {
    // The last seed's id is the longest.
    std::string id = RunIdFor(experiment_id_, spec_.seeds - 1, spec_.seeds, ModeName(mode));
    if (mode == v1::MODE_HITL_COMBINED) id = FeatureCampaignFor(id);
    if (!ValidRunId(id)) {
      return absl::InvalidArgumentError(fmt::format(
          "experiment id '{}' makes run ids such as '{}' ({} characters); run and campaign ids "
          "take at most 63 characters of a-z, 0-9 and '-': shorten the spec's name ('{}') or "
          "--experiment_id",
          experiment_id_, id, id.size(), spec_.name));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<cli::ExperimentResult> ExperimentRunner::Run() {
  const auto started = Clock::now();
  cli::ExperimentResult result;
  result.set_experiment_id(experiment_id_);
  result.set_name(spec_.name);
  result.set_spec_path(spec_.path);
  result.set_description(spec_.description);
  result.set_dataset(DatasetName(spec_.dataset));
  result.set_noise_rate(spec_.noise_rate);
  result.set_target_is_baseline_best(spec_.target_is_baseline_best);
  result.set_start_time(UtcRfc3339(std::time(nullptr)));
  const CrowdSpec& c = spec_.crowd;
  result.set_crowd_description(fmt::format(
      "{} simulated raters, k = {}{}, accuracy ~ N({:.3f}, {:.3f}) clamped to [{:.2f}, 1], "
      "{:.0f} % spammers, {:.0f} % skips, seconds per item log-normal (median {:.1f} s, sigma "
      "{:.2f}), time compression {:.0f}x, {} items leased at once",
      c.raters, c.ratings_per_item,
      c.agreeing_ratings > 0 ? fmt::format(" (decided early when {} agree)", c.agreeing_ratings)
                             : std::string(),
      c.accuracy_mean, c.accuracy_sd, c.accuracy_min, 100 * c.spammer_share, 100 * c.skip_share,
      c.seconds_median, c.seconds_sigma, c.time_compression, c.lease_batch));

  if (std::any_of(spec_.modes.begin(), spec_.modes.end(), UsesHumans) && oracle_ == nullptr) {
    if (spec_.dataset == v1::DATASET_FASHION_MNIST) {
      auto o = ImageOracle::LoadFashionMnist(options_.fashion_mnist_dir);
      if (!o.ok()) return o.status();
      oracle_ = std::move(*o);
    } else {
      auto o = TextOracle::LoadSpamAssassin(options_.spam_assassin_dir);
      if (!o.ok()) return o.status();
      oracle_ = std::move(*o);
    }
  }

  result.set_state("completed");
  result.set_seeds(static_cast<std::uint32_t>(spec_.seeds));
  result.set_eval_smoothing(static_cast<std::uint32_t>(spec_.eval_smoothing));
  result.set_target_accuracy(spec_.target_is_baseline_best ? 0.0 : spec_.target_accuracy);
  for (std::int64_t seed = 0; seed < spec_.seeds && !interrupted_; ++seed) {
    if (spec_.seeds > 1) {
      progress_ << fmt::format("seed {}/{} (seed {}, noise seed {}, crowd seed {})\n", seed + 1,
                               spec_.seeds, spec_.seed + seed, spec_.noise_seed + seed,
                               spec_.crowd.seed + seed);
    }
    RunSeed(seed, result);
  }
  if (interrupted_) result.set_state("interrupted");
  ApplyTargets(result);
  ApplyModelled(result);
  for (cli::ModeSummary& s : Summarise(result)) *result.add_summaries() = std::move(s);
  if (result.state() == "completed" &&
      std::all_of(result.modes().begin(), result.modes().end(),
                  [](const cli::ModeResult& m) { return m.state() == "failed"; })) {
    result.set_state("failed");
  }
  result.set_wall_seconds(std::chrono::duration<double>(Clock::now() - started).count());
  return result;
}

void ExperimentRunner::RunSeed(std::int64_t seed, cli::ExperimentResult& result) {
  double target = spec_.target_is_baseline_best ? 0.0 : spec_.target_accuracy;
  for (v1::Mode mode : spec_.modes) {
    const bool is_baseline = mode == v1::MODE_BASELINE;
    // The baseline runs its whole budget (its plateau may be the target); the others stop at
    // the target when the spec says so.
    const double trainer_target = (is_baseline || !spec_.stop_at_target) ? 0.0 : target;
    ModeRun run(spec_, options_, progress_, experiment_id_, oracle_.get(), mode, trainer_target,
                seed);
    cli::ModeResult m = run.Run();
    if (run.stopped_by_user()) interrupted_ = true;
    if (is_baseline && spec_.target_is_baseline_best && m.state() == "succeeded") {
      target = m.has_best_smoothed_accuracy() ? m.best_smoothed_accuracy() : m.best_accuracy();
    }
    *result.add_modes() = std::move(m);
    if (interrupted_) return;
  }
}

}  // namespace greenloop::experiment
