#include "tools/greenloop/experiment/mode_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "common/grpc/channel.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "tools/greenloop/experiment/run_figures.h"

namespace greenloop::experiment {
namespace {

std::string Duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "--:--";
  const auto s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

// Identifiers take [a-z0-9-]: a mode named hitl_features runs as ...-hitl-features.
std::string RunIdFor(const std::string& experiment_id, std::int64_t seed, std::int64_t seeds,
                     std::string mode_name) {
  std::replace(mode_name.begin(), mode_name.end(), '_', '-');
  return seeds > 1 ? fmt::format("{}-s{}-{}", experiment_id, seed, mode_name)
                   : fmt::format("{}-{}", experiment_id, mode_name);
}

ModeRun::ModeRun(const Spec& spec, const RunnerOptions& options, std::ostream& progress,
                 const std::string& experiment_id, const Oracle* oracle, v1::Mode mode,
                 double target, std::int64_t seed)
    : spec_(spec),
      options_(options),
      progress_(progress),
      experiment_id_(experiment_id),
      oracle_(oracle),
      mode_(mode),
      mode_name_(ModeName(mode)),
      target_(target),
      seed_(seed),
      run_id_(RunIdFor(experiment_id, seed, spec.seeds, mode_name_)) {}

cli::ModeResult ModeRun::Run() {
  m_.set_mode(mode_name_);
  m_.set_run_id(run_id_);
  m_.set_seed_index(static_cast<std::uint32_t>(seed_));
  m_.set_batch_size(static_cast<std::uint32_t>(spec_.batch_size * spec_.ranks));
  if (absl::Status s = Connect(); !s.ok()) return Failed(s);
  if (absl::Status s = StartCrowd(); !s.ok()) return Failed(s);
  RegisterInfra();
  if (absl::Status s = StartRanks(); !s.ok()) {
    StopCrowd();
    ReadInfra();
    return Failed(s);
  }
  Follow();
  StopCrowd();
  ReadInfra();
  if (absl::Status s = ReadRun(); !s.ok()) return Failed(s);
  ReadEnergy();
  PrintSummary();
  return m_;
}

cli::ModeResult ModeRun::Failed(const absl::Status& status) {
  m_.set_state("failed");
  m_.set_error(std::string(status.message()));
  progress_ << fmt::format("[{:<8}] failed: {}\n", mode_name_, m_.error());
  return m_;
}

absl::Status ModeRun::Connect() {
  for (const std::string& address : spec_.services.trainers) {
    absl::StatusOr<std::shared_ptr<::grpc::Channel>> ch = rpc::CreateChannel(address);
    if (!ch.ok()) return ch.status();
    trainers_.push_back(v1::TrainerService::NewStub(*ch));
  }
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> energy =
      rpc::CreateChannel(spec_.services.energy);
  if (!energy.ok()) return energy.status();
  energy_channel_ = *energy;
  if (!UsesHumans(mode_)) return absl::OkStatus();
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> feedback =
      rpc::CreateChannel(spec_.services.feedback);
  if (!feedback.ok()) return feedback.status();
  feedback_channel_ = *feedback;
  return absl::OkStatus();
}

// The run's campaigns in the order raters prefer them: MODE_HITL_COMBINED's few feature questions
// first, then its label questions; the run id alone otherwise.
std::vector<std::string> ModeRun::Campaigns() const {
  if (mode_ == v1::MODE_HITL_COMBINED) return {FeatureCampaignFor(run_id_), run_id_};
  return {run_id_};
}

// Human modes: a crowd working the run's campaign. Rank 0 creates the campaign from the run's
// config; the raters retry until it exists.
absl::Status ModeRun::StartCrowd() {
  if (!UsesHumans(mode_)) return absl::OkStatus();
  CrowdSpec crowd_spec = spec_.crowd;
  crowd_spec.seed += seed_;
  std::vector<RaterProfile> profiles = DrawProfiles(crowd_spec, fmt::format("sim-{}", run_id_));
  std::vector<std::string> tokens;
  if (!options_.admin_token.empty()) {
    absl::StatusOr<std::vector<std::string>> t = CreateRaterTokens(
        feedback_channel_, spec_.services.feedback, options_.admin_token, profiles);
    if (!t.ok()) return t.status();
    tokens = std::move(*t);
  }
  crowd_ = std::make_unique<SimulatedCrowd>(crowd_spec, feedback_channel_, Campaigns(), oracle_,
                                            profiles, tokens);
  cli::CrowdSummary* cs = m_.mutable_crowd();
  cs->set_raters(static_cast<std::uint32_t>(profiles.size()));
  double sum = 0;
  for (const RaterProfile& p : profiles) {
    if (p.spammer) cs->set_spammers(cs->spammers() + 1);
    sum += p.accuracy;
  }
  cs->set_mean_accuracy(profiles.empty() ? 0 : sum / static_cast<double>(profiles.size()));
  cs->set_time_compression(spec_.crowd.time_compression);
  crowd_->Start();
  return absl::OkStatus();
}

void ModeRun::StopCrowd() {
  if (!crowd_) return;
  crowd_->Stop();
  const CrowdStats st = crowd_->Stats();
  cli::CrowdSummary* cs = m_.mutable_crowd();
  cs->set_leased(st.total.leased);
  cs->set_submitted(st.total.submitted);
  cs->set_skipped(st.total.skipped);
  cs->set_right(st.total.right);
  cs->set_unknown(st.total.unknown);
  cs->set_rpc_errors(st.total.rpc_errors);
  cs->set_modelled_seconds(st.total.modelled_seconds);
  cs->set_wall_seconds(st.wall_seconds);
  cs->set_last_error(st.last_error);
  auto stub = v1::FeedbackService::NewStub(feedback_channel_);
  for (const std::string& campaign : Campaigns()) {
    v1::CloseCampaignRequest request;
    request.set_campaign_id(campaign);
    v1::CloseCampaignResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(5), options_.token);
    stub->CloseCampaign(ctx.get(), request, &response);  // one never created: nothing to do
  }
  crowd_.reset();
}

// Every mode carries the infrastructure (the baseline's trainer writes to PostgreSQL too, and
// the feedback service idles): both sides of a comparison count it. A process that cannot be
// registered is recorded with its reason; the run goes on without it.
void ModeRun::RegisterInfra() {
  auto stub = v1::EnergyService::NewStub(energy_channel_);
  for (const InfraProcess& p : options_.infra) {
    cli::InfraEnergy* out = m_.add_infra();
    out->set_name(p.name);
    absl::StatusOr<int> pid = ReadPidFile(p.pid_file);
    absl::StatusOr<std::string> id = InfraRunId(run_id_, p.name);
    if (!pid.ok() || !id.ok()) {
      out->set_error(std::string((!pid.ok() ? pid.status() : id.status()).message()));
      continue;
    }
    out->set_pid(*pid);
    v1::RegisterRequest request;
    request.set_run_id(*id);
    request.add_pids(*pid);
    v1::RegisterResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
    const ::grpc::Status s = stub->Register(ctx.get(), request, &response);
    if (!s.ok()) {
      out->set_error(fmt::format("energy collector at {}: Register: {}", spec_.services.energy,
                                 s.error_message()));
      continue;
    }
    infra_.push_back({p, *pid, *id});
  }
}

void ModeRun::ReadInfra() {
  auto stub = v1::EnergyService::NewStub(energy_channel_);
  for (const Registered& r : infra_) {
    v1::UnregisterRequest request;
    request.set_run_id(r.run_id);
    v1::UnregisterResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
    const ::grpc::Status s = stub->Unregister(ctx.get(), request, &response);
    for (cli::InfraEnergy& out : *m_.mutable_infra()) {
      if (out.name() != r.process.name) continue;
      if (s.ok()) {
        out = InfraFrom(r.process.name, r.pid, response.energy());
      } else {
        out.set_error(fmt::format("energy collector at {}: Unregister: {}", spec_.services.energy,
                                  s.error_message()));
      }
    }
  }
  infra_.clear();
}

absl::Status ModeRun::StartRanks() {
  const v1::RunConfig config = RunConfigFor(spec_, mode_, experiment_id_, run_id_, target_, seed_);
  for (std::size_t r = 0; r < trainers_.size(); ++r) {
    v1::StartRunRequest request;
    request.set_run_id(run_id_);
    *request.mutable_config() = config;
    request.set_rank(static_cast<std::uint32_t>(r));
    request.set_world_size(static_cast<std::uint32_t>(trainers_.size()));
    if (trainers_.size() > 1) {
      request.set_rendezvous_host(spec_.services.rendezvous_host);
      request.set_rendezvous_port(static_cast<std::uint32_t>(spec_.services.rendezvous_port));
    }
    v1::StartRunResponse response;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(30), options_.token);
    const ::grpc::Status s = trainers_[r]->StartRun(ctx.get(), request, &response);
    if (!s.ok()) {
      return absl::UnavailableError(fmt::format("trainer (rank {}) at {}: StartRun: {}", r,
                                                spec_.services.trainers[r], s.error_message()));
    }
  }
  return absl::OkStatus();
}

// Follows rank 0's progress stream to its end. A watcher stops every rank on Ctrl-C; the stream
// then ends on its own.
void ModeRun::Follow() {
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (options_.interrupted()) {
        stopped_by_user_ = true;
        for (auto& t : trainers_) {
          v1::StopRunRequest request;
          request.set_run_id(run_id_);
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
  v1::StreamProgressRequest request;
  request.set_run_id(run_id_);
  request.set_min_interval_ms(500);
  ::grpc::ClientContext ctx;
  if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
  auto stream = trainers_[0]->StreamProgress(&ctx, request);
  v1::StreamProgressResponse event;
  while (stream->Read(&event)) {
    RecordProgress(event, m_);
    DrawProgress(event);
  }
  const ::grpc::Status s = stream->Finish();
  if (options_.progress_in_place) progress_ << "\n";
  if (!s.ok()) m_.set_error(fmt::format("progress stream: {}", s.error_message()));
  done = true;
  watcher.join();
}

void ModeRun::DrawProgress(const v1::StreamProgressResponse& event) {
  const v1::Progress& p = event.progress();
  const double frac = p.planned_steps() > 0
                          ? static_cast<double>(p.step()) / static_cast<double>(p.planned_steps())
                          : 0.0;
  const int filled = static_cast<int>(std::clamp(frac, 0.0, 1.0) * 20);
  const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                          std::string(static_cast<std::size_t>(20 - filled), '.');
  const std::string line = fmt::format(
      "[{:<8}] epoch {:>2}  step {:>5}/{:<5} [{}] {:>3.0f}%  acc {}  {:>9.1f} J  ETA {}",
      mode_name_, p.epoch(), p.step(), p.planned_steps(), bar, 100 * frac,
      p.has_eval_accuracy() ? fmt::format("{:.4f}", p.eval_accuracy()) : std::string("  -   "),
      p.energy_joules(), p.has_eta_seconds() ? Duration(p.eta_seconds()) : "--:--");
  if (options_.progress_in_place) {
    progress_ << "\r" << line << std::flush;
  } else if (event.kind() == v1::PROGRESS_EVENT_KIND_EVALUATION) {
    progress_ << line << "\n" << std::flush;
  }
}

// Rank 0's final Run, retried: right after the stream ends the worker may still be writing it.
absl::Status ModeRun::ReadRun() {
  v1::GetRunResponse got;
  ::grpc::Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    v1::GetRunRequest request;
    request.set_run_id(run_id_);
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
    s = trainers_[0]->GetRun(ctx.get(), request, &got);
    if (s.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!s.ok()) {
    return absl::UnavailableError(
        fmt::format("trainer (rank 0) at {}: GetRun: {} (the worker died?)",
                    spec_.services.trainers[0], s.error_message()));
  }
  FillFromRun(got.run(), stopped_by_user_, m_);
  return absl::OkStatus();
}

void ModeRun::ReadEnergy() {
  auto stub = v1::EnergyService::NewStub(energy_channel_);
  v1::GetRunEnergyRequest request;
  request.set_run_id(run_id_);
  v1::GetRunEnergyResponse response;
  auto ctx = rpc::NewClientContext(std::chrono::seconds(10), options_.token);
  const ::grpc::Status s = stub->GetRunEnergy(ctx.get(), request, &response);
  if (s.ok()) {
    FillEnergy(response, m_);
    return;
  }
  m_.set_energy_source("unknown");
  if (m_.error().empty()) {
    m_.set_error(fmt::format("energy collector at {}: GetRunEnergy: {}", spec_.services.energy,
                             s.error_message()));
  }
}

void ModeRun::PrintSummary() {
  double infra = 0;
  for (const cli::InfraEnergy& i : m_.infra()) infra += i.active_energy_joules();
  progress_ << fmt::format(
      "[{:<8}] {} ({}): best accuracy {:.4f}, {:.1f} J{}, {} steps, {}{}\n", mode_name_, m_.state(),
      m_.finish_reason(), m_.best_accuracy(), m_.energy_joules(),
      m_.infra().empty() ? std::string() : fmt::format(" (+ {:.1f} J infrastructure)", infra),
      m_.steps(), Duration(m_.duration_seconds()),
      m_.crowd().raters() > 0
          ? fmt::format(", {} ratings, {:.1f} rater-min modelled", m_.crowd().submitted(),
                        m_.crowd().modelled_seconds() / 60)
          : std::string());
  for (const cli::InfraEnergy& i : m_.infra()) {
    if (!i.error().empty()) {
      progress_ << fmt::format("[{:<8}] warning: {} not counted: {}\n", mode_name_, i.name(),
                               i.error());
    }
  }
  if (!m_.error().empty() && m_.state() != "succeeded") {
    progress_ << fmt::format("[{:<8}] {}\n", mode_name_, m_.error());
  }
}

}  // namespace greenloop::experiment
