#include "tools/greenloop/experiment/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <thread>

#include "common/grpc/channel.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "greenloop/v1/trainer.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/greenloop/experiment/crowd.h"
#include "tools/greenloop/experiment/summary.h"

namespace greenloop::experiment {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::pair<std::string, std::string>>& LabelSet(v1::Dataset dataset) {
  static const auto* fashion =
      new std::vector<std::pair<std::string, std::string>>{{"t_shirt_top", "T-shirt/top"},
                                                           {"trouser", "Trouser"},
                                                           {"pullover", "Pullover"},
                                                           {"dress", "Dress"},
                                                           {"coat", "Coat"},
                                                           {"sandal", "Sandal"},
                                                           {"shirt", "Shirt"},
                                                           {"sneaker", "Sneaker"},
                                                           {"bag", "Bag"},
                                                           {"ankle_boot", "Ankle boot"}};
  static const auto* spam =
      new std::vector<std::pair<std::string, std::string>>{{"ham", "Ham"}, {"spam", "Spam"}};
  return dataset == v1::DATASET_SPAM_ASSASSIN ? *spam : *fashion;
}

std::string Duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "--:--";
  const auto s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string FinishReasonName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_TARGET_REACHED:
      return "target reached";
    case v1::FINISH_REASON_EPOCH_BUDGET:
      return "epoch budget";
    case v1::FINISH_REASON_STEP_BUDGET:
      return "step budget";
    case v1::FINISH_REASON_ENERGY_BUDGET:
      return "energy budget";
    case v1::FINISH_REASON_STOPPED:
      return "stopped";
    case v1::FINISH_REASON_ERROR:
      return "error";
    default:
      return "";
  }
}

std::string DomainName(v1::EnergyDomain d) {
  std::string name = v1::EnergyDomain_Name(d);
  if (name.rfind("ENERGY_DOMAIN_", 0) == 0) name = name.substr(14);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

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
      "{} simulated raters, k = {}, accuracy ~ N({:.3f}, {:.3f}) clamped to [{:.2f}, 1], "
      "{:.0f} % spammers, {:.0f} % skips, seconds per item log-normal (median {:.1f} s, sigma "
      "{:.2f}), time compression {:.0f}x",
      c.raters, c.ratings_per_item, c.accuracy_mean, c.accuracy_sd, c.accuracy_min,
      100 * c.spammer_share, 100 * c.skip_share, c.seconds_median, c.seconds_sigma,
      c.time_compression));

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
    cli::ModeResult m = RunMode(mode, trainer_target, seed);
    if (is_baseline && spec_.target_is_baseline_best && m.state() == "succeeded") {
      target = m.has_best_smoothed_accuracy() ? m.best_smoothed_accuracy() : m.best_accuracy();
    }
    *result.add_modes() = std::move(m);
    if (interrupted_) return;
  }
}

cli::ModeResult ExperimentRunner::RunMode(v1::Mode mode, double target, std::int64_t seed) {
  cli::ModeResult m;
  const std::string mode_name = ModeName(mode);
  const std::string run_id = spec_.seeds > 1
                                 ? fmt::format("{}-s{}-{}", experiment_id_, seed, mode_name)
                                 : fmt::format("{}-{}", experiment_id_, mode_name);
  m.set_mode(mode_name);
  m.set_run_id(run_id);
  m.set_seed_index(static_cast<std::uint32_t>(seed));
  CrowdSpec crowd_spec = spec_.crowd;
  crowd_spec.seed += seed;
  m.set_batch_size(static_cast<std::uint32_t>(spec_.batch_size * spec_.ranks));
  const auto fail = [&](std::string message) {
    m.set_state("failed");
    m.set_error(std::move(message));
    progress_ << fmt::format("[{:<8}] failed: {}\n", mode_name, m.error());
    return m;
  };

  // Channels.
  std::vector<std::unique_ptr<v1::TrainerService::Stub>> trainers;
  for (const std::string& address : spec_.services.trainers) {
    auto ch = rpc::CreateChannel(address);
    if (!ch.ok()) return fail(std::string(ch.status().message()));
    trainers.push_back(v1::TrainerService::NewStub(*ch));
  }
  auto energy_channel = rpc::CreateChannel(spec_.services.energy);
  if (!energy_channel.ok()) return fail(std::string(energy_channel.status().message()));

  // Human modes: a campaign of their own and a crowd working it.
  std::unique_ptr<SimulatedCrowd> crowd;
  std::shared_ptr<::grpc::Channel> feedback_channel;
  const std::string campaign_id = run_id;
  if (UsesHumans(mode)) {
    auto ch = rpc::CreateChannel(spec_.services.feedback);
    if (!ch.ok()) return fail(std::string(ch.status().message()));
    feedback_channel = *ch;
    auto stub = v1::FeedbackService::NewStub(feedback_channel);
    v1::CreateCampaignRequest request;
    request.set_campaign_id(campaign_id);
    v1::CampaignSpec* cs = request.mutable_spec();
    cs->set_display_name(fmt::format("{}: check labels ({})", experiment_id_, mode_name));
    cs->set_run_id(run_id);
    cs->set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
    for (const auto& [name, display] : LabelSet(spec_.dataset)) {
      v1::Label* l = cs->add_labels();
      l->set_name(name);
      l->set_display_name(display);
    }
    cs->set_ratings_per_item(static_cast<std::uint32_t>(spec_.crowd.ratings_per_item));
    cs->set_gold_share(spec_.crowd.gold_share);
    cs->set_show_model_prediction(spec_.crowd.show_model_prediction);
    v1::CreateCampaignResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
    const ::grpc::Status s = stub->CreateCampaign(ctx.get(), request, &response);
    if (!s.ok()) {
      return fail(fmt::format("feedback service at {}: CreateCampaign: {}", spec_.services.feedback,
                              s.error_message()));
    }
    std::vector<RaterProfile> profiles = DrawProfiles(crowd_spec, fmt::format("sim-{}", run_id));
    std::vector<std::string> tokens;
    if (!options_.admin_token.empty()) {
      auto t = CreateRaterTokens(feedback_channel, spec_.services.feedback, options_.admin_token,
                                 profiles);
      if (!t.ok()) return fail(std::string(t.status().message()));
      tokens = std::move(*t);
    }
    crowd = std::make_unique<SimulatedCrowd>(crowd_spec, feedback_channel, campaign_id,
                                             oracle_.get(), profiles, tokens);
    cli::CrowdSummary* cs_out = m.mutable_crowd();
    cs_out->set_raters(static_cast<std::uint32_t>(profiles.size()));
    double sum = 0;
    for (const RaterProfile& p : profiles) {
      if (p.spammer) cs_out->set_spammers(cs_out->spammers() + 1);
      sum += p.accuracy;
    }
    cs_out->set_mean_accuracy(profiles.empty() ? 0 : sum / static_cast<double>(profiles.size()));
    cs_out->set_time_compression(spec_.crowd.time_compression);
    crowd->Start();
  }
  const auto stop_crowd = [&] {
    if (!crowd) return;
    crowd->Stop();
    const CrowdStats st = crowd->Stats();
    cli::CrowdSummary* cs = m.mutable_crowd();
    cs->set_leased(st.total.leased);
    cs->set_submitted(st.total.submitted);
    cs->set_skipped(st.total.skipped);
    cs->set_right(st.total.right);
    cs->set_unknown(st.total.unknown);
    cs->set_rpc_errors(st.total.rpc_errors);
    cs->set_modelled_seconds(st.total.modelled_seconds);
    cs->set_wall_seconds(st.wall_seconds);
    cs->set_last_error(st.last_error);
    auto stub = v1::FeedbackService::NewStub(feedback_channel);
    v1::CloseCampaignRequest request;
    request.set_campaign_id(campaign_id);
    v1::CloseCampaignResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(5), options_.token);
    stub->CloseCampaign(ctx.get(), request, &response);
    crowd.reset();
  };

  // Start every rank.
  const v1::RunConfig config = RunConfigFor(spec_, mode, experiment_id_, campaign_id, target, seed);
  for (std::size_t r = 0; r < trainers.size(); ++r) {
    v1::StartRunRequest request;
    request.set_run_id(run_id);
    *request.mutable_config() = config;
    request.set_rank(static_cast<std::uint32_t>(r));
    request.set_world_size(static_cast<std::uint32_t>(trainers.size()));
    if (trainers.size() > 1) {
      request.set_rendezvous_host(spec_.services.rendezvous_host);
      request.set_rendezvous_port(static_cast<std::uint32_t>(spec_.services.rendezvous_port));
    }
    v1::StartRunResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(30), options_.token);
    const ::grpc::Status s = trainers[r]->StartRun(ctx.get(), request, &response);
    if (!s.ok()) {
      stop_crowd();
      return fail(fmt::format("trainer (rank {}) at {}: StartRun: {}", r,
                              spec_.services.trainers[r], s.error_message()));
    }
  }

  // Ctrl-C watcher: stops every rank; the progress stream then ends on its own.
  std::atomic<bool> done{false};
  std::atomic<bool> stopped_by_user{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (options_.interrupted()) {
        stopped_by_user = true;
        for (auto& t : trainers) {
          v1::StopRunRequest request;
          request.set_run_id(run_id);
          request.set_reason("greenloop experiment: interrupted (Ctrl-C)");
          v1::StopRunResponse response;
          auto ctx = rpc::NewClientContext(std::chrono::seconds(5), options_.token);
          t->StopRun(ctx.get(), request, &response);
        }
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  // Follow rank 0.
  {
    v1::StreamProgressRequest request;
    request.set_run_id(run_id);
    request.set_min_interval_ms(500);
    ::grpc::ClientContext ctx;
    if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
    auto stream = trainers[0]->StreamProgress(&ctx, request);
    v1::StreamProgressResponse event;
    std::uint64_t last_eval_step = 0;
    bool any_eval = false;
    while (stream->Read(&event)) {
      const v1::Progress& p = event.progress();
      if (event.kind() == v1::PROGRESS_EVENT_KIND_EVALUATION && p.has_eval_accuracy() &&
          (!any_eval || p.step() != last_eval_step)) {
        cli::CurvePoint* cp = m.add_curve();
        cp->set_step(p.step());
        cp->set_elapsed_seconds(p.elapsed_seconds());
        cp->set_accuracy(p.eval_accuracy());
        cp->set_energy_joules(p.energy_joules());
        cp->set_macs(p.macs());
        last_eval_step = p.step();
        any_eval = true;
      }
      if (p.has_projected_total_energy_joules() && p.planned_steps() > 0) {
        const double fraction =
            static_cast<double>(p.step()) / static_cast<double>(p.planned_steps());
        if (m.projections().empty() || m.projections().rbegin()->step() != p.step()) {
          cli::ProjectionPoint* pp = m.add_projections();
          pp->set_fraction(fraction);
          pp->set_step(p.step());
          pp->set_projected_joules(p.projected_total_energy_joules());
        }
        if (!m.has_projection_at_10() && fraction >= 0.10) {
          m.set_projection_at_10(p.projected_total_energy_joules());
        }
        if (!m.has_projection_at_25() && fraction >= 0.25) {
          m.set_projection_at_25(p.projected_total_energy_joules());
        }
      }
      // Progress bar.
      const double frac = p.planned_steps() > 0 ? static_cast<double>(p.step()) /
                                                      static_cast<double>(p.planned_steps())
                                                : 0.0;
      const int filled = static_cast<int>(std::clamp(frac, 0.0, 1.0) * 20);
      const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                              std::string(static_cast<std::size_t>(20 - filled), '.');
      const std::string line = fmt::format(
          "[{:<8}] epoch {:>2}  step {:>5}/{:<5} [{}] {:>3.0f}%  acc {}  {:>9.1f} J  ETA {}",
          mode_name, p.epoch(), p.step(), p.planned_steps(), bar, 100 * frac,
          p.has_eval_accuracy() ? fmt::format("{:.4f}", p.eval_accuracy()) : std::string("  -   "),
          p.energy_joules(), p.has_eta_seconds() ? Duration(p.eta_seconds()) : "--:--");
      if (options_.progress_in_place) {
        progress_ << "\r" << line << std::flush;
      } else if (event.kind() == v1::PROGRESS_EVENT_KIND_EVALUATION) {
        progress_ << line << "\n" << std::flush;
      }
    }
    const ::grpc::Status s = stream->Finish();
    if (options_.progress_in_place) progress_ << "\n";
    if (!s.ok()) m.set_error(fmt::format("progress stream: {}", s.error_message()));
  }
  done = true;
  watcher.join();
  stop_crowd();

  // The final state of rank 0.
  v1::GetRunResponse got;
  ::grpc::Status gs;
  for (int attempt = 0; attempt < 3; ++attempt) {
    v1::GetRunRequest request;
    request.set_run_id(run_id);
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
    gs = trainers[0]->GetRun(ctx.get(), request, &got);
    if (gs.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!gs.ok()) {
    return fail(fmt::format("trainer (rank 0) at {}: GetRun: {} (the worker died?)",
                            spec_.services.trainers[0], gs.error_message()));
  }
  const v1::Run& run = got.run();
  const v1::Progress& p = run.progress();
  switch (run.state()) {
    case v1::RUN_STATE_SUCCEEDED:
      m.set_state("succeeded");
      break;
    case v1::RUN_STATE_STOPPED:
      m.set_state(stopped_by_user ? "interrupted" : "stopped");
      break;
    case v1::RUN_STATE_FAILED:
      m.set_state("failed");
      break;
    default:
      m.set_state(stopped_by_user ? "interrupted" : "failed");
      break;
  }
  if (stopped_by_user) interrupted_ = true;
  if (!run.error_message().empty()) m.set_error(run.error_message());
  m.set_finish_reason(FinishReasonName(run.finish_reason()));
  m.set_final_accuracy(p.has_eval_accuracy() ? p.eval_accuracy() : 0.0);
  m.set_best_accuracy(run.has_best_eval_accuracy() ? run.best_eval_accuracy() : 0.0);
  m.set_duration_seconds(p.elapsed_seconds());
  m.set_steps(p.step());
  m.set_planned_steps(p.planned_steps());
  m.set_samples_processed(p.samples_processed());
  m.set_energy_joules(p.energy_joules());
  m.set_items_enqueued(p.items_enqueued());
  m.set_verdicts_received(p.verdicts_received());
  m.set_verdicts_applied(p.verdicts_applied());
  m.set_samples_dropped(p.samples_dropped());
  m.set_samples_relabelled(p.samples_relabelled());
  m.set_samples_reweighted(p.samples_reweighted());
  m.set_verdicts_correct(p.verdicts_correct());
  if (run.has_test_accuracy()) m.set_test_accuracy(run.test_accuracy());
  if (run.has_best_test_accuracy()) m.set_best_test_accuracy(run.best_test_accuracy());
  if (run.has_best_smoothed_eval_accuracy()) {
    m.set_best_smoothed_accuracy(run.best_smoothed_eval_accuracy());
  }
  m.set_macs(p.macs());
  m.set_eval_macs(p.eval_macs());
  m.set_samples_pruned(p.samples_pruned());
  m.set_samples_reviewed(p.samples_reviewed());
  m.set_feedback_errors(p.feedback_errors());
  if (m.crowd().raters() > 0 && p.elapsed_seconds() > 0) {
    m.set_real_raters_equivalent(m.crowd().modelled_seconds() / p.elapsed_seconds());
  }
  m.set_parameter_count(run.model().parameter_count());
  m.set_macs_per_sample(run.model().macs_per_sample());
  m.set_node(run.node());
  if (run.has_projection_relative_error()) {
    m.set_trainer_projection_error(run.projection_relative_error());
  }
  // Projection errors only mean something for a run that used its whole planned budget.
  const bool full_budget = m.state() == "succeeded" && p.planned_steps() > 0 &&
                           p.step() >= p.planned_steps() && p.energy_joules() > 0;
  if (full_budget && m.has_projection_at_10()) {
    m.set_projection_error_10(m.projection_at_10() / p.energy_joules() - 1.0);
  }
  if (full_budget && m.has_projection_at_25()) {
    m.set_projection_error_25(m.projection_at_25() / p.energy_joules() - 1.0);
  }

  // Energy from the collector.
  {
    auto stub = v1::EnergyService::NewStub(*energy_channel);
    v1::GetRunEnergyRequest request;
    request.set_run_id(run_id);
    v1::GetRunEnergyResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
    const ::grpc::Status s = stub->GetRunEnergy(ctx.get(), request, &response);
    if (s.ok()) {
      double active = 0, idle = 0, carbon = 0;
      bool estimated = false;
      std::map<std::string, std::pair<double, double>> domains;
      std::map<std::string, std::string> sources;
      for (const v1::NodeRunEnergy& n : response.nodes()) {
        active += n.active_energy_joules();
        idle += n.idle_energy_joules();
        carbon += n.carbon_grams();
        if (!n.estimated_domains().empty()) estimated = true;
        m.set_carbon_factors_source(n.carbon_factors_source());
        for (const v1::DomainEnergy& d : n.domains()) {
          auto& acc = domains[DomainName(d.domain())];
          acc.first += d.active_energy_joules();
          acc.second += d.idle_energy_joules();
          sources[DomainName(d.domain())] =
              d.source() == v1::ENERGY_SOURCE_ESTIMATED ? "estimated" : "measured";
        }
      }
      m.set_collector_active_joules(active);
      m.set_idle_energy_joules(idle);
      m.set_carbon_grams(carbon);
      m.set_energy_source(estimated ? "estimated" : "measured");
      for (const auto& [name, j] : domains) {
        cli::DomainJoules* dj = m.add_domains();
        dj->set_domain(name);
        dj->set_source(sources[name]);
        dj->set_active_energy_joules(j.first);
        dj->set_idle_energy_joules(j.second);
      }
    } else {
      m.set_energy_source("unknown");
      if (m.error().empty()) {
        m.set_error(fmt::format("energy collector at {}: GetRunEnergy: {}", spec_.services.energy,
                                s.error_message()));
      }
    }
  }
  progress_ << fmt::format(
      "[{:<8}] {} ({}): best accuracy {:.4f}, {:.1f} J, {} steps, {}{}\n", mode_name, m.state(),
      m.finish_reason(), m.best_accuracy(), m.energy_joules(), m.steps(),
      Duration(m.duration_seconds()),
      m.crowd().raters() > 0 ? fmt::format(", {} ratings, {:.1f} rater-min modelled",
                                           m.crowd().submitted(), m.crowd().modelled_seconds() / 60)
                             : std::string());
  if (!m.error().empty() && m.state() != "succeeded") {
    progress_ << fmt::format("[{:<8}] {}\n", mode_name, m.error());
  }
  return m;
}

}  // namespace greenloop::experiment
