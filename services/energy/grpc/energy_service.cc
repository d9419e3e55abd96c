#include "services/energy/grpc/energy_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "common/grpc/status.h"
#include "common/logging/logging.h"
#include "common/status/status.h"
#include "fmt/format.h"

namespace greenloop::energy {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp Ts(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

v1::MeterKind ToProto(MeterKind kind) {
  switch (kind) {
    case MeterKind::kRaplZone:
      return v1::METER_KIND_RAPL_ZONE;
    case MeterKind::kNvmlEnergyCounter:
      return v1::METER_KIND_NVML_ENERGY_COUNTER;
    case MeterKind::kNvmlPowerPoll:
      return v1::METER_KIND_NVML_POWER_POLL;
    case MeterKind::kHwmonEnergy:
      return v1::METER_KIND_HWMON_ENERGY;
    case MeterKind::kHwmonPower:
      return v1::METER_KIND_HWMON_POWER;
    case MeterKind::kEstimator:
      return v1::METER_KIND_ESTIMATOR;
  }
  return v1::METER_KIND_UNSPECIFIED;
}

void ToProto(const GpuDescription& g, v1::GpuDevice* out) {
  out->set_index(g.index);
  out->set_uuid(g.uuid);
  out->set_name(g.name);
  out->set_has_energy_counter(g.has_energy_counter);
}

// One WatchNodeSamples stream: writes the newest sample whenever the previous write is done, and
// drops the ones in between for a slow client (it sees the gap in `sequence`).
class SampleStream final : public ::grpc::ServerWriteReactor<v1::WatchNodeSamplesResponse> {
 public:
  SampleStream(SampleHub* hub, std::string node, std::set<Domain> domains, bool include_runs,
               std::function<void(SampleStream*)> on_done)
      : hub_(hub),
        node_(std::move(node)),
        domains_(std::move(domains)),
        include_runs_(include_runs),
        on_done_(std::move(on_done)) {
    id_ = hub_->Subscribe([this](const IntervalSample& s) { OnSample(s); });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(::grpc::Status::CANCELLED);
      return;
    }
    if (pending_.has_value()) WriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(::grpc::Status::CANCELLED);
  }

  void OnDone() override {
    hub_->Unsubscribe(id_);
    on_done_(this);
    delete this;
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    FinishLocked(::grpc::Status(::grpc::StatusCode::UNAVAILABLE,
                                "the energy collector is shutting down; reconnect"));
  }

 private:
  void OnSample(const IntervalSample& s) {
    if (s.interval <= absl::ZeroDuration()) return;  // the priming tick measures nothing
    v1::WatchNodeSamplesResponse r;
    r.set_node(node_);
    r.set_sequence(s.sequence);
    *r.mutable_sample_time() = Ts(s.time);
    r.set_interval_ms(static_cast<std::uint32_t>(absl::ToInt64Milliseconds(s.interval)));
    for (const ZoneSample& z : s.zones) {
      if (!domains_.empty() && !domains_.contains(z.domain)) continue;
      v1::DomainSample* d = r.add_domains();
      d->set_domain(ToProto(z.domain));
      d->set_zone(z.zone);
      d->set_source(ToProto(z.source));
      d->set_power_watts(z.power_watts);
      d->set_energy_joules(z.cumulative_joules);
      d->set_idle_power_watts(z.idle_power_watts);
      d->set_meter_id(z.meter_id);
    }
    if (include_runs_) {
      const double seconds = absl::ToDoubleSeconds(s.interval);
      for (const RunShare& run : s.runs) {
        v1::RunPowerSample* p = r.add_runs();
        p->set_run_id(run.run_id);
        p->set_active_power_watts(seconds > 0 ? run.active_joules / seconds : 0);
        p->set_cpu_share(run.cpu_share);
      }
    }
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    pending_ = std::move(r);
    if (!writing_) WriteLocked();
  }

  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    current_ = std::move(*pending_);
    pending_.reset();
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishLocked(const ::grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  SampleHub* const hub_;
  const std::string node_;
  const std::set<Domain> domains_;
  const bool include_runs_;
  const std::function<void(SampleStream*)> on_done_;
  int id_ = 0;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::WatchNodeSamplesResponse> pending_ ABSL_GUARDED_BY(mu_);
  v1::WatchNodeSamplesResponse current_;
};

std::optional<Domain> FromProto(v1::EnergyDomain d) {
  switch (d) {
    case v1::ENERGY_DOMAIN_PACKAGE:
      return Domain::kPackage;
    case v1::ENERGY_DOMAIN_CORE:
      return Domain::kCore;
    case v1::ENERGY_DOMAIN_UNCORE:
      return Domain::kUncore;
    case v1::ENERGY_DOMAIN_DRAM:
      return Domain::kDram;
    case v1::ENERGY_DOMAIN_PSYS:
      return Domain::kPsys;
    case v1::ENERGY_DOMAIN_GPU:
      return Domain::kGpu;
    case v1::ENERGY_DOMAIN_HWMON:
      return Domain::kHwmon;
    case v1::ENERGY_DOMAIN_NODE:
      return Domain::kNode;
    default:
      return std::nullopt;
  }
}

}  // namespace

// This service's open streams, so CloseStreams() ends them and no other instance's. Shared with
// each stream's OnDone, which gRPC may run after the service is gone.
struct EnergyGrpcService::OpenStreams {
  absl::Mutex mu;
  std::set<SampleStream*> open ABSL_GUARDED_BY(mu);
};

v1::EnergyDomain ToProto(Domain domain) {
  switch (domain) {
    case Domain::kPackage:
      return v1::ENERGY_DOMAIN_PACKAGE;
    case Domain::kCore:
      return v1::ENERGY_DOMAIN_CORE;
    case Domain::kUncore:
      return v1::ENERGY_DOMAIN_UNCORE;
    case Domain::kDram:
      return v1::ENERGY_DOMAIN_DRAM;
    case Domain::kPsys:
      return v1::ENERGY_DOMAIN_PSYS;
    case Domain::kGpu:
      return v1::ENERGY_DOMAIN_GPU;
    case Domain::kHwmon:
      return v1::ENERGY_DOMAIN_HWMON;
    case Domain::kNode:
      return v1::ENERGY_DOMAIN_NODE;
  }
  return v1::ENERGY_DOMAIN_UNSPECIFIED;
}

v1::EnergySource ToProto(Source source) {
  switch (source) {
    case Source::kRapl:
      return v1::ENERGY_SOURCE_RAPL;
    case Source::kNvml:
      return v1::ENERGY_SOURCE_NVML;
    case Source::kHwmon:
      return v1::ENERGY_SOURCE_HWMON;
    case Source::kEstimated:
      return v1::ENERGY_SOURCE_ESTIMATED;
  }
  return v1::ENERGY_SOURCE_UNSPECIFIED;
}

void ToProto(const RunEnergy& run, const std::string& node, const CarbonFactors& carbon,
             v1::NodeRunEnergy* out) {
  out->set_node(node);
  out->set_active(run.active);
  *out->mutable_start_time() = Ts(run.first_register_time);
  *out->mutable_end_time() = Ts(run.end_time);
  out->set_duration_seconds(run.duration_seconds);
  out->set_gap_seconds(run.gap_seconds);
  out->set_active_energy_joules(run.active_joules);
  out->set_idle_energy_joules(run.idle_joules);
  out->set_average_active_power_watts(
      run.duration_seconds > 0 ? run.active_joules / run.duration_seconds : 0);
  for (const auto& [key, totals] : run.domains) {
    v1::DomainEnergy* d = out->add_domains();
    d->set_domain(ToProto(key.domain));
    d->set_source(ToProto(key.source));
    for (const std::string& z : totals.zones) d->add_zones(z);
    d->set_active_energy_joules(totals.active_joules);
    d->set_idle_energy_joules(totals.idle_joules);
    d->set_duration_seconds(totals.seconds);
    d->set_average_active_power_watts(totals.seconds > 0 ? totals.active_joules / totals.seconds
                                                         : 0);
    d->set_carbon_grams(CarbonGrams(totals.active_joules, carbon));
  }
  for (Domain d : run.estimated_domains) out->add_estimated_domains(ToProto(d));
  out->set_carbon_grams(CarbonGrams(run.active_joules, carbon));
  out->set_ended_on_exit(run.ended_on_exit);
  out->set_idle_carbon_grams(CarbonGrams(run.idle_joules, carbon));
  out->set_pue(carbon.pue);
  out->set_grid_intensity_grams_per_kwh(carbon.grid_intensity_grams_per_kwh);
  out->set_carbon_factors_source(carbon.source);
}

EnergyGrpcService::EnergyGrpcService(Collector* collector, EnergyStore* store, SampleHub* hub,
                                     const rpc::Authenticator* authenticator, NodeDescription node,
                                     prometheus::Registry* registry)
    : collector_(collector),
      store_(store),
      hub_(hub),
      authenticator_(authenticator),
      node_(std::move(node)),
      guard_("energy", rpc::HandlerGuard::CountIn(registry, "greenloop_energy_errors_total")),
      open_streams_(std::make_shared<OpenStreams>()) {}

absl::StatusOr<Registrant> EnergyGrpcService::Allow(
    const ::grpc::ServerContextBase& context) const {
  if (authenticator_ == nullptr) return Registrant{};
  GREENLOOP_ASSIGN_OR_RETURN(
      rpc::Principal p,
      rpc::Authorize(context, *authenticator_, {rpc::Role::kWorker, rpc::Role::kAdmin}));
  return Registrant{.id = p.id, .admin = p.role == rpc::Role::kAdmin};
}

::grpc::Status EnergyGrpcService::Register(::grpc::ServerContext* context,
                                           const v1::RegisterRequest* request,
                                           v1::RegisterResponse* response) {
  return guard_.Run("Register", [&]() -> absl::Status {
    GREENLOOP_ASSIGN_OR_RETURN(Registrant who, Allow(*context));
    const std::string& node = collector_->options().node;
    if (!request->node().empty() && request->node() != node) {
      return absl::FailedPreconditionError(fmt::format(
          "this collector measures node '{}', not '{}': register with the collector on the "
          "node your processes run on",
          node, request->node()));
    }
    std::vector<GpuRequest> gpus;
    for (const v1::GpuSelector& g : request->gpus()) {
      GpuRequest r;
      if (g.has_uuid()) r.uuid = g.uuid();
      if (g.has_index()) r.index = g.index();
      gpus.push_back(r);
    }
    std::vector<int> pids(request->pids().begin(), request->pids().end());
    GREENLOOP_ASSIGN_OR_RETURN(
        RunEnergy run,
        collector_->Register(request->run_id(), pids, gpus, request->rank(), absl::Now(), who));
    response->set_node(node);
    *response->mutable_register_time() = Ts(run.register_time);
    for (int pid : run.live_pids) response->add_pids(pid);
    for (const GpuDescription& g : run.gpus) ToProto(g, response->add_gpus());
    for (Domain d : collector_->EstimatedDomains()) response->add_estimated_domains(ToProto(d));
    logging::Info("run registered", {{"run", run.run_id},
                                     {"pids", fmt::format("{}", fmt::join(run.live_pids, ","))},
                                     {"rank", std::to_string(request->rank())}});
    return absl::OkStatus();
  });
}

::grpc::Status EnergyGrpcService::Unregister(::grpc::ServerContext* context,
                                             const v1::UnregisterRequest* request,
                                             v1::UnregisterResponse* response) {
  return guard_.Run("Unregister", [&]() -> absl::Status {
    GREENLOOP_ASSIGN_OR_RETURN(Registrant who, Allow(*context));
    std::vector<int> pids(request->pids().begin(), request->pids().end());
    GREENLOOP_ASSIGN_OR_RETURN(RunEnergy run,
                               collector_->Unregister(request->run_id(), pids, absl::Now(), who));
    response->set_active(run.active);
    ToProto(run, collector_->options().node, collector_->options().carbon,
            response->mutable_energy());
    logging::Info("run unregistered",
                  {{"run", run.run_id},
                   {"active", run.active ? "true" : "false"},
                   {"active_joules", fmt::format("{:.3f}", run.active_joules)}});
    return absl::OkStatus();
  });
}

::grpc::Status EnergyGrpcService::GetRunEnergy(::grpc::ServerContext* context,
                                               const v1::GetRunEnergyRequest* request,
                                               v1::GetRunEnergyResponse* response) {
  return guard_.Run("GetRunEnergy", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context).status());
    absl::StatusOr<RunEnergy> run = collector_->GetRun(request->run_id());
    if (run.status().code() == absl::StatusCode::kNotFound && store_ != nullptr) {
      run = store_->LoadRun(request->run_id());  // ended and forgotten from memory
    }
    if (!run.ok()) return run.status();
    response->set_run_id(run->run_id);
    ToProto(*run, collector_->options().node, collector_->options().carbon, response->add_nodes());
    return absl::OkStatus();
  });
}

::grpc::ServerWriteReactor<v1::WatchNodeSamplesResponse>* EnergyGrpcService::WatchNodeSamples(
    ::grpc::CallbackServerContext* context, const v1::WatchNodeSamplesRequest* request) {
  auto fail = [](const absl::Status& status) {
    struct Failed final : ::grpc::ServerWriteReactor<v1::WatchNodeSamplesResponse> {
      explicit Failed(const ::grpc::Status& s) { Finish(s); }
      void OnDone() override { delete this; }
    };
    return new Failed(ToGrpcStatus(status));
  };
  if (absl::Status allowed = Allow(*context).status(); !allowed.ok()) return fail(allowed);
  std::set<Domain> domains;
  for (int d : request->domains()) {
    std::optional<Domain> domain = FromProto(static_cast<v1::EnergyDomain>(d));
    if (!domain.has_value()) {
      return fail(absl::InvalidArgumentError(
          fmt::format("domains holds {}, not a domain", v1::EnergyDomain_Name(d))));
    }
    domains.insert(*domain);
  }
  absl::MutexLock lock(&streams_mu_);
  if (closing_) {
    return fail(absl::UnavailableError("the energy collector is shutting down; reconnect"));
  }
  auto* stream =
      new SampleStream(hub_, collector_->options().node, std::move(domains),
                       request->include_runs(), [streams = open_streams_](SampleStream* s) {
                         absl::MutexLock l(&streams->mu);
                         streams->open.erase(s);
                       });
  absl::MutexLock l(&open_streams_->mu);
  open_streams_->open.insert(stream);
  return stream;
}

void EnergyGrpcService::CloseStreams() {
  {
    absl::MutexLock lock(&streams_mu_);
    closing_ = true;
  }
  absl::MutexLock l(&open_streams_->mu);
  for (SampleStream* s : open_streams_->open) s->Close();
}

::grpc::Status EnergyGrpcService::ListMeters(::grpc::ServerContext* context,
                                             const v1::ListMetersRequest*,
                                             v1::ListMetersResponse* response) {
  return guard_.Run("ListMeters", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context).status());
    response->set_node(collector_->options().node);
    for (const MeterHealth& h : collector_->Meters()) {
      v1::Meter* m = response->add_meters();
      m->set_meter_id(h.info.id);
      m->set_kind(ToProto(h.info.kind));
      m->set_domain(ToProto(h.info.domain));
      m->set_zone(h.info.zone);
      m->set_source(ToProto(h.info.source));
      m->set_path(h.info.path);
      m->set_healthy(h.healthy);
      m->set_last_error(h.last_error);
      m->set_remediation(h.remediation);
      if (h.last_read_time.has_value()) *m->mutable_last_read_time() = Ts(*h.last_read_time);
      m->set_read_errors(h.read_errors);
      m->set_max_energy_range_joules(h.info.max_energy_range_joules);
      m->set_tdp_watts(h.info.tdp_watts);
    }
    return absl::OkStatus();
  });
}

::grpc::Status EnergyGrpcService::GetNodeInfo(::grpc::ServerContext* context,
                                              const v1::GetNodeInfoRequest*,
                                              v1::GetNodeInfoResponse* response) {
  return guard_.Run("GetNodeInfo", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context).status());
    const CollectorOptions& o = collector_->options();
    response->set_node(o.node);
    response->set_hostname(node_.hostname);
    response->set_collector_version(node_.version);
    *response->mutable_start_time() = Ts(node_.start_time);
    response->set_interval_ms(
        static_cast<std::uint32_t>(absl::ToInt64Milliseconds(node_.interval)));
    response->set_pue(o.carbon.pue);
    response->set_grid_intensity_grams_per_kwh(o.carbon.grid_intensity_grams_per_kwh);
    response->set_carbon_factors_source(o.carbon.source);
    response->set_cpu_model(node_.cpu.model);
    response->set_sockets(static_cast<std::uint32_t>(node_.cpu.sockets));
    response->set_logical_cpus(static_cast<std::uint32_t>(node_.cpu.logical_cpus));
    for (const GpuDescription& g : collector_->gpus()) ToProto(g, response->add_gpus());
    for (const IdleBaselineInfo& b : collector_->IdleBaselines()) {
      v1::IdleBaseline* i = response->add_idle_baselines();
      i->set_domain(ToProto(b.domain));
      i->set_zone(b.zone);
      i->set_source(ToProto(b.source));
      i->set_idle_power_watts(b.idle_watts);
      i->set_measured(b.measured);
      if (b.measure_time.has_value()) *i->mutable_measure_time() = Ts(*b.measure_time);
    }
    for (const RunEnergy& r : collector_->ListRuns(false)) response->add_active_run_ids(r.run_id);
    return absl::OkStatus();
  });
}

::grpc::Status EnergyGrpcService::ListRegistrations(::grpc::ServerContext* context,
                                                    const v1::ListRegistrationsRequest* request,
                                                    v1::ListRegistrationsResponse* response) {
  return guard_.Run("ListRegistrations", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context).status());
    std::size_t offset = 0;
    const std::string& token = request->page().page_token();
    if (!token.empty()) {
      auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), offset);
      if (ec != std::errc() || end != token.data() + token.size()) {
        return absl::InvalidArgumentError(fmt::format("bad page_token '{}'", token));
      }
    }
    std::size_t size = request->page().page_size() == 0 ? 100 : request->page().page_size();
    size = std::min<std::size_t>(size, 1000);
    std::vector<RunEnergy> runs = collector_->ListRuns(request->include_ended());
    for (std::size_t i = offset; i < runs.size() && i < offset + size; ++i) {
      const RunEnergy& r = runs[i];
      v1::Registration* reg = response->add_registrations();
      reg->set_run_id(r.run_id);
      reg->set_active(r.active);
      for (int pid : r.pids) reg->add_pids(pid);
      for (unsigned rank : r.ranks) reg->add_ranks(rank);
      for (const GpuDescription& g : r.gpus) ToProto(g, reg->add_gpus());
      *reg->mutable_register_time() = Ts(r.first_register_time);
      if (r.unregister_time.has_value()) *reg->mutable_unregister_time() = Ts(*r.unregister_time);
    }
    if (offset + size < runs.size()) response->set_next_page_token(std::to_string(offset + size));
    return absl::OkStatus();
  });
}

}  // namespace greenloop::energy
