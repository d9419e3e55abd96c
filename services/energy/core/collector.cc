#include "services/energy/core/collector.h"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "fmt/format.h"

namespace greenloop::energy {
namespace {

bool IsRaplTopLevel(const MeterInfo& info, Domain domain) {
  return info.kind == MeterKind::kRaplZone && info.domain == domain;
}

std::vector<int> Sorted(std::set<int> values) { return {values.begin(), values.end()}; }

}  // namespace

double CarbonGrams(double joules, const CarbonFactors& factors) {
  return joules / 3.6e6 * factors.pue * factors.grid_intensity_grams_per_kwh;
}

absl::Status ValidateRunId(std::string_view run_id) {
  if (run_id.empty() || run_id.size() > 63) {
    return absl::InvalidArgumentError(
        fmt::format("run_id must be 1 to 63 characters, got {}", run_id.size()));
  }
  for (std::size_t i = 0; i < run_id.size(); ++i) {
    char c = run_id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
    if (!ok) {
      return absl::InvalidArgumentError(
          fmt::format("run_id '{}' is not [a-z0-9-] starting with a letter or digit", run_id));
    }
  }
  return absl::OkStatus();
}

Collector::Collector(CollectorOptions options, MeterList meters, std::vector<GpuDescription> gpus,
                     const ProcFs* procfs)
    : options_(std::move(options)), gpus_(std::move(gpus)), procfs_(procfs) {
  int packages = 0, drams = 0;
  for (const auto& m : meters) {
    packages += IsRaplTopLevel(m->info(), Domain::kPackage) ? 1 : 0;
    drams += IsRaplTopLevel(m->info(), Domain::kDram) ? 1 : 0;
  }
  absl::MutexLock lock(&mu_);
  for (auto& m : meters) {
    MeterSlot slot;
    slot.health.info = m->info();
    slot.meter = std::move(m);
    slots_.push_back(std::move(slot));
  }
  const EstimatorConstants& est = options_.estimator;
  if (packages == 0) {
    // No RAPL here (a VM, a container, an ARM node): the whole node's CPUs are estimated.
    MeterSlot slot;
    slot.meter = std::make_unique<EstimatorMeter>(EstimatorOptions{.domain = Domain::kPackage,
                                                                   .zone = "cpu",
                                                                   .idle_watts = est.cpu_idle_watts,
                                                                   .tdp_watts = est.cpu_max_watts},
                                                  procfs_);
    slot.health.info = slot.meter->info();
    slots_.push_back(std::move(slot));
  }
  // Stand-ins for RAPL package and dram zones, read alongside them so a zone that starts failing
  // is estimated from the very interval it fails.
  const std::size_t primaries = slots_.size();
  for (std::size_t i = 0; i < primaries; ++i) {
    const MeterInfo& info = slots_[i].health.info;
    std::optional<EstimatorOptions> stand_in;
    if (IsRaplTopLevel(info, Domain::kPackage)) {
      stand_in = EstimatorOptions{.domain = Domain::kPackage,
                                  .zone = info.zone,
                                  .idle_watts = est.cpu_idle_watts / packages,
                                  .tdp_watts = est.cpu_max_watts / packages};
    } else if (IsRaplTopLevel(info, Domain::kDram) && est.dram_watts > 0) {
      stand_in = EstimatorOptions{.domain = Domain::kDram,
                                  .zone = info.zone,
                                  .idle_watts = est.dram_watts / drams,
                                  .tdp_watts = est.dram_watts / drams};
    }
    if (!stand_in.has_value()) continue;
    MeterSlot slot;
    slot.meter = std::make_unique<EstimatorMeter>(*stand_in, procfs_);
    slot.health.info = slot.meter->info();
    slot.is_fallback = true;
    slots_[i].fallback = static_cast<int>(slots_.size());
    slots_.push_back(std::move(slot));
  }
}

std::vector<IntervalSample> Collector::Tick(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<IntervalSample> out = std::move(extra_samples_);
  extra_samples_.clear();
  out.push_back(TickLocked(now));
  return out;
}

void Collector::SnapshotTree(const ProcessKey& root, const std::vector<ProcessStat>& all) {
  std::multimap<int, const ProcessStat*> children;
  const ProcessStat* root_stat = nullptr;
  for (const ProcessStat& p : all) {
    children.emplace(p.ppid, &p);
    if (p.pid == root.pid && p.start_ticks == root.start_ticks) root_stat = &p;
  }
  if (root_stat == nullptr) return;
  std::vector<const ProcessStat*> stack = {root_stat};
  while (!stack.empty()) {
    const ProcessStat* p = stack.back();
    stack.pop_back();
    process_ticks_.try_emplace({p->pid, p->start_ticks}, p->cpu_ticks);
    auto [b, e] = children.equal_range(p->pid);
    for (auto it = b; it != e; ++it) stack.push_back(it->second);
  }
}

IntervalSample Collector::TickLocked(absl::Time now) {
  IntervalSample sample;
  sample.time = now;
  sample.sequence = sequence_;

  // 1. Read every meter (stand-ins too: they must stay primed).
  std::vector<std::optional<std::uint64_t>> readings(slots_.size());
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    MeterSlot& slot = slots_[i];
    absl::StatusOr<std::uint64_t> r = slot.meter->Read(now);
    slot.health.counter_resets = slot.meter->counter_resets();
    if (r.ok()) {
      readings[i] = *r;
      slot.health.healthy = true;
      slot.health.last_error.clear();
      slot.health.remediation.clear();
      slot.health.last_read_time = now;
    } else {
      slot.health.healthy = false;
      slot.health.last_error = std::string(r.status().message());
      slot.health.remediation = slot.meter->remediation();
      ++slot.health.read_errors;
    }
  }

  absl::StatusOr<CpuTimes> cpu = procfs_->ReadCpuTimes();
  std::vector<ProcessStat> processes;
  if (rescan_ || ++ticks_since_scan_ >= options_.process_rescan_intervals) {
    processes = procfs_->ReadAllProcesses();
    ticks_since_scan_ = 0;
    rescan_ = false;
  } else {
    // Only the processes already known to belong to a run (the trees as of the last scan).
    std::set<ProcessKey> known;
    for (const auto& [key, ticks] : process_ticks_) known.insert(key);
    for (const auto& [id, run] : runs_) known.insert(run.live_roots.begin(), run.live_roots.end());
    for (const ProcessKey& key : known) {
      absl::StatusOr<ProcessStat> p = procfs_->ReadProcess(key.pid);
      if (p.ok() && p->start_ticks == key.start_ticks) processes.push_back(*p);
    }
  }

  if (!last_tick_.has_value()) {
    // Priming: meters have their first counter value; processes and /proc/stat their baseline.
    last_tick_ = now;
    if (cpu.ok()) cpu_times_ = *cpu;
    for (auto& [id, run] : runs_) {
      for (const ProcessKey& root : run.live_roots) SnapshotTree(root, processes);
    }
    ++sequence_;
    return sample;
  }
  const double seconds = std::max(absl::ToDoubleSeconds(now - *last_tick_), 0.0);
  sample.interval = std::max(now - *last_tick_, absl::ZeroDuration());
  last_tick_ = now;
  ++sequence_;

  // 2. Effective zones: a healthy primary, or its stand-in while it fails.
  struct Effective {
    std::size_t slot;
    ZoneSample zone;
    double idle_joules = 0;
    double active_joules = 0;
  };
  std::vector<Effective> zones;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    MeterSlot& slot = slots_[i];
    if (slot.is_fallback) continue;
    std::size_t used = i;
    if (!readings[i].has_value()) {
      if (slot.fallback < 0 || !readings[static_cast<std::size_t>(slot.fallback)].has_value()) {
        slot.health.fallback_active = false;
        continue;
      }
      used = static_cast<std::size_t>(slot.fallback);
      slot.health.fallback_active = true;
    } else {
      slot.health.fallback_active = false;
    }
    MeterSlot& source = slots_[used];
    const MeterInfo& info = source.meter->info();
    Effective e;
    e.slot = used;
    e.zone.meter_id = info.id;
    e.zone.domain = info.domain;
    e.zone.zone = info.zone;
    e.zone.source = info.source;
    e.zone.energy_joules = static_cast<double>(*readings[used]) / 1e6;
    zones.push_back(std::move(e));
  }

  // 3. Which zones compose the node total: psys where present (it contains packages and dram),
  // otherwise top-level packages and dram; GPUs always; never core/uncore (inside their package)
  // nor hwmon (coverage unknown).
  const bool has_psys = std::any_of(zones.begin(), zones.end(), [](const Effective& e) {
    return e.zone.domain == Domain::kPsys;
  });
  for (Effective& e : zones) {
    const MeterInfo& info = slots_[e.slot].meter->info();
    switch (e.zone.domain) {
      case Domain::kGpu:
        e.zone.in_node_total = true;
        break;
      case Domain::kPsys:
        e.zone.in_node_total = true;
        break;
      case Domain::kPackage:
      case Domain::kDram:
        e.zone.in_node_total = !has_psys && info.parent_zone.empty();
        break;
      default:
        e.zone.in_node_total = false;
    }
  }

  // 4. Idle and active energy per zone.
  for (Effective& e : zones) {
    MeterSlot& slot = slots_[e.slot];
    const MeterInfo& info = slot.meter->info();
    const double joules = e.zone.energy_joules;
    if (info.model_idle_watts < 0 && seconds > 0 && sample.interval >= options_.min_idle_interval) {
      const double watts = joules / seconds;
      if (!slot.idle_watts.has_value() || watts < *slot.idle_watts) {
        slot.idle_watts = watts;
        slot.idle_measure_time = now;
      }
    }
    const double idle_w =
        info.model_idle_watts >= 0 ? info.model_idle_watts : slot.idle_watts.value_or(0);
    e.zone.idle_power_watts = idle_w;
    e.zone.power_watts = seconds > 0 ? joules / seconds : 0;
    e.idle_joules = std::min(joules, idle_w * seconds);
    e.active_joules = joules - e.idle_joules;
    slot.cumulative_joules += joules;
    e.zone.cumulative_joules = slot.cumulative_joules;
  }

  // 5. CPU-time shares of the registered runs over the interval.
  std::multimap<int, const ProcessStat*> children;
  std::map<ProcessKey, const ProcessStat*> by_key;
  for (const ProcessStat& p : processes) {
    children.emplace(p.ppid, &p);
    by_key[{p.pid, p.start_ticks}] = &p;
  }
  std::map<ProcessKey, std::uint64_t> next_ticks;
  std::map<ProcessKey, std::vector<std::pair<ProcessKey, std::uint64_t>>> next_children;
  std::map<std::string, double> run_ticks;
  for (auto& [id, run] : runs_) {
    if (!run.energy.active) continue;
    double ticks = 0;
    for (auto it = run.live_roots.begin(); it != run.live_roots.end();) {
      auto found = by_key.find(*it);
      if (found == by_key.end()) {
        // The registered process exited: whatever its last interval held, its parent (outside
        // the run) reaps it, so that tail is lost; documented in docs/energy.md.
        it = run.live_roots.erase(it);
        continue;
      }
      std::vector<const ProcessStat*> stack = {found->second};
      while (!stack.empty()) {
        const ProcessStat* p = stack.back();
        stack.pop_back();
        ProcessKey key{p->pid, p->start_ticks};
        if (next_ticks.contains(key)) continue;  // shared by two runs: counted for the first
        auto prev = process_ticks_.find(key);
        // A process not seen before started since the last tick: all of its time is new.
        const std::uint64_t base = prev != process_ticks_.end() ? prev->second : 0;
        std::uint64_t delta = p->cpu_ticks >= base ? p->cpu_ticks - base : 0;
        // A child counted at the last tick and gone now was reaped into this process's cutime:
        // the time it had then was counted already, only its tail is new.
        if (auto last = counted_children_.find(key); last != counted_children_.end()) {
          std::uint64_t counted = 0;
          for (const auto& [child, child_ticks] : last->second) {
            if (!by_key.contains(child)) counted += child_ticks;
          }
          delta -= std::min(delta, counted);
        }
        ticks += static_cast<double>(delta);
        next_ticks[key] = p->cpu_ticks;
        auto [b, e] = children.equal_range(p->pid);
        std::vector<std::pair<ProcessKey, std::uint64_t>>& kids = next_children[key];
        for (auto c = b; c != e; ++c) {
          stack.push_back(c->second);
          kids.emplace_back(ProcessKey{c->second->pid, c->second->start_ticks},
                            c->second->cpu_ticks);
        }
      }
      ++it;
    }
    run_ticks[id] = ticks;
  }
  process_ticks_ = std::move(next_ticks);
  counted_children_ = std::move(next_children);
  double node_busy = 0;
  if (cpu.ok()) {
    if (cpu_times_.has_value() && cpu->busy_ticks >= cpu_times_->busy_ticks) {
      node_busy = static_cast<double>(cpu->busy_ticks - cpu_times_->busy_ticks);
    }
    cpu_times_ = *cpu;
  }
  std::map<std::string, double> shares;
  double share_sum = 0;
  for (const auto& [id, ticks] : run_ticks) {
    shares[id] = node_busy > 0 ? ticks / node_busy : 0;
    share_sum += shares[id];
  }
  if (share_sum > 1) {
    // Process and node tick counters are sampled a few microseconds apart; never hand out more
    // than the whole.
    for (auto& [id, share] : shares) share /= share_sum;
  }

  // 6. Attribute and accumulate.
  sample.node_covered = std::any_of(zones.begin(), zones.end(),
                                    [](const Effective& e) { return e.zone.in_node_total; });
  std::set<Domain> estimated_now;
  Source node_source = Source::kEstimated;
  bool node_any_estimated = false, node_has_cpu = false;
  ZoneSample node;
  node.meter_id = "node";
  node.domain = Domain::kNode;
  node.zone = "node";
  node.in_node_total = false;
  for (const Effective& e : zones) {
    if (e.zone.source == Source::kEstimated) estimated_now.insert(e.zone.domain);
    if (!e.zone.in_node_total) continue;
    node.energy_joules += e.zone.energy_joules;
    node.idle_power_watts += e.zone.idle_power_watts;
    node_any_estimated = node_any_estimated || e.zone.source == Source::kEstimated;
    if (e.zone.domain != Domain::kGpu) {
      node_has_cpu = true;
      node_source = e.zone.source;
    } else if (!node_has_cpu) {
      node_source = e.zone.source;
    }
  }
  if (node_any_estimated) {
    node_source = Source::kEstimated;
    estimated_now.insert(Domain::kNode);
  }
  node.source = node_source;
  node.power_watts = seconds > 0 ? node.energy_joules / seconds : 0;
  estimated_domains_ = estimated_now;

  for (auto& [id, run] : runs_) {
    if (!run.energy.active) continue;
    RunEnergy& r = run.energy;
    RunShare share;
    share.run_id = id;
    share.cpu_share = shares[id];
    r.duration_seconds += seconds;
    r.end_time = now;
    std::set<DomainKey> keys_seen;
    for (const Effective& e : zones) {
      double active = 0;
      if (e.zone.domain == Domain::kGpu) {
        if (!run.gpu_uuids.contains(e.zone.zone)) continue;
        const auto gpu_runs = static_cast<std::size_t>(
            std::count_if(runs_.begin(), runs_.end(), [&](const auto& other) {
              return other.second.energy.active && other.second.gpu_uuids.contains(e.zone.zone);
            }));
        active = e.active_joules / static_cast<double>(std::max<std::size_t>(gpu_runs, 1));
      } else {
        active = e.active_joules * share.cpu_share;
      }
      DomainKey key{e.zone.domain, e.zone.source};
      DomainTotals& totals = r.domains[key];
      totals.zones.insert(e.zone.zone);
      totals.active_joules += active;
      totals.idle_joules += e.idle_joules;
      if (keys_seen.insert(key).second) totals.seconds += seconds;
      share.active_joules_by_key[key] += active;
      if (e.zone.source == Source::kEstimated) r.estimated_domains.insert(e.zone.domain);
      if (e.zone.in_node_total) {
        share.active_joules += active;
        share.idle_joules += e.idle_joules;
      }
    }
    if (sample.node_covered) {
      DomainKey key{Domain::kNode, node_source};
      DomainTotals& totals = r.domains[key];
      totals.zones.insert("node");
      totals.active_joules += share.active_joules;
      totals.idle_joules += share.idle_joules;
      totals.seconds += seconds;
      share.active_joules_by_key[key] += share.active_joules;
      if (node_source == Source::kEstimated) r.estimated_domains.insert(Domain::kNode);
      r.active_joules += share.active_joules;
      r.idle_joules += share.idle_joules;
    } else {
      r.gap_seconds += seconds;
    }
    sample.runs.push_back(std::move(share));
  }

  // 7. A run whose registered processes have all exited ends here: nothing is left to attribute
  // to it, and a run nobody unregisters (its worker killed) would otherwise stay active forever.
  for (auto& [id, run] : runs_) {
    if (!run.energy.active || !run.live_roots.empty()) continue;
    run.energy.active = false;
    run.energy.unregister_time = now;
    run.energy.end_time = now;
    run.energy.ended_on_exit = true;
    run.gpu_uuids.clear();
  }

  for (Effective& e : zones) sample.zones.push_back(std::move(e.zone));
  if (sample.node_covered) {
    node_cumulative_joules_ += node.energy_joules;
    node.cumulative_joules = node_cumulative_joules_;
    sample.zones.push_back(std::move(node));
  }
  return sample;
}

namespace {

// PERMISSION_DENIED unless `who` registered `run` (or may act for anyone).
absl::Status CheckOwner(const RunEnergy& run, const Registrant& who, std::string_view node) {
  if (who.admin || run.owner == who.id) return absl::OkStatus();
  return absl::PermissionDeniedError(fmt::format(
      "run {} on node {} was registered by another caller: only it, or an admin, may change it",
      run.run_id, node));
}

}  // namespace

absl::StatusOr<RunEnergy> Collector::Register(std::string_view run_id, const std::vector<int>& pids,
                                              const std::vector<GpuRequest>& gpus, unsigned rank,
                                              absl::Time now, const Registrant& who) {
  if (absl::Status s = ValidateRunId(run_id); !s.ok()) return s;
  if (pids.empty()) return absl::InvalidArgumentError("at least one pid is required");
  std::vector<ProcessKey> roots;
  for (int pid : pids) {
    if (pid <= 0) return absl::InvalidArgumentError(fmt::format("pid {} is not positive", pid));
    absl::StatusOr<ProcessStat> stat = procfs_->ReadProcess(pid);
    if (!stat.ok()) {
      return absl::NotFoundError(
          fmt::format("pid {} is not a live process on node {}", pid, options_.node));
    }
    roots.push_back({stat->pid, stat->start_ticks});
  }
  std::set<std::string> gpu_uuids;
  std::vector<GpuDescription> resolved;
  for (const GpuRequest& g : gpus) {
    if (!g.uuid.has_value() && !g.index.has_value()) {
      return absl::InvalidArgumentError("a GPU selector names neither a uuid nor an index");
    }
    if (gpus_.empty()) {
      return absl::FailedPreconditionError(
          fmt::format("GPUs declared but node {} has no working GPU meter (NVML not available; see "
                      "ListMeters)",
                      options_.node));
    }
    auto it = std::find_if(gpus_.begin(), gpus_.end(), [&](const GpuDescription& d) {
      return g.uuid.has_value() ? d.uuid == *g.uuid : d.index == *g.index;
    });
    if (it == gpus_.end()) {
      return absl::NotFoundError(
          g.uuid.has_value()
              ? fmt::format("no GPU with uuid {} on node {}", *g.uuid, options_.node)
              : fmt::format("no GPU with NVML index {} on node {}", *g.index, options_.node));
    }
    if (gpu_uuids.insert(it->uuid).second) resolved.push_back(*it);
  }

  std::vector<ProcessStat> processes = procfs_->ReadAllProcesses();
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckRegistration(run_id, roots, who); !s.ok()) return s;
  rescan_ = true;
  RunState& run = runs_[std::string(run_id)];
  RunEnergy& r = run.energy;
  if (r.run_id.empty()) {
    r.run_id = std::string(run_id);
    r.first_register_time = now;
    r.owner = who.id;
  }
  if (!r.active) {
    r.active = true;
    r.register_time = now;
    r.end_time = now;
    r.unregister_time.reset();
    r.ended_on_exit = false;
  }
  std::set<int> all(r.pids.begin(), r.pids.end());
  for (const ProcessKey& root : roots) {
    all.insert(root.pid);
    if (run.live_roots.insert(root).second && last_tick_.has_value()) {
      SnapshotTree(root, processes);
    }
  }
  r.pids = Sorted(all);
  if (std::find(r.ranks.begin(), r.ranks.end(), rank) == r.ranks.end()) r.ranks.push_back(rank);
  for (const GpuDescription& g : resolved) {
    if (run.gpu_uuids.insert(g.uuid).second) r.gpus.push_back(g);
  }
  return Publish(run);
}

absl::Status Collector::CheckRegistration(std::string_view run_id,
                                          const std::vector<ProcessKey>& roots,
                                          const Registrant& who) const {
  if (auto it = runs_.find(std::string(run_id)); it != runs_.end()) {
    if (absl::Status s = CheckOwner(it->second.energy, who, options_.node); !s.ok()) return s;
  }
  for (const auto& [id, other] : runs_) {
    if (id == run_id || !other.energy.active) continue;
    for (const ProcessKey& root : roots) {
      if (other.live_roots.contains(root)) {
        return absl::FailedPreconditionError(fmt::format(
            "pid {} on node {} is registered to run {}: a process's energy goes to one run; "
            "unregister it there first",
            root.pid, options_.node, id));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RunEnergy> Collector::Unregister(std::string_view run_id,
                                                const std::vector<int>& pids, absl::Time now,
                                                const Registrant& who) {
  if (absl::Status s = ValidateRunId(run_id); !s.ok()) return s;
  for (int pid : pids) {
    if (pid <= 0) return absl::InvalidArgumentError(fmt::format("pid {} is not positive", pid));
  }
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(std::string(run_id));
  if (it == runs_.end()) {
    return absl::NotFoundError(
        fmt::format("run {} was never registered on node {}", run_id, options_.node));
  }
  RunState& run = it->second;
  if (absl::Status s = CheckOwner(run.energy, who, options_.node); !s.ok()) return s;
  if (!run.energy.active) return Publish(run);
  // One last reading first, so the tail since the previous tick is attributed.
  if (last_tick_.has_value()) extra_samples_.push_back(TickLocked(now));
  if (pids.empty()) {
    run.live_roots.clear();
  } else {
    std::set<int> drop(pids.begin(), pids.end());
    std::erase_if(run.live_roots, [&](const ProcessKey& k) { return drop.contains(k.pid); });
  }
  if (run.live_roots.empty()) {
    run.energy.active = false;
    run.energy.unregister_time = now;
    run.energy.end_time = now;
    run.gpu_uuids.clear();
  }
  return Publish(run);
}

RunEnergy Collector::Publish(const RunState& run) const {
  RunEnergy r = run.energy;
  std::set<int> live;
  for (const ProcessKey& k : run.live_roots) live.insert(k.pid);
  r.live_pids = Sorted(live);
  return r;
}

absl::StatusOr<RunEnergy> Collector::GetRun(std::string_view run_id) const {
  if (absl::Status s = ValidateRunId(run_id); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(std::string(run_id));
  if (it == runs_.end()) {
    return absl::NotFoundError(
        fmt::format("run {} was never registered on node {}", run_id, options_.node));
  }
  return Publish(it->second);
}

std::vector<RunEnergy> Collector::ListRuns(bool include_ended) const {
  absl::MutexLock lock(&mu_);
  std::vector<RunEnergy> out;
  for (const auto& [id, run] : runs_) {
    if (run.energy.active || include_ended) out.push_back(Publish(run));
  }
  std::sort(out.begin(), out.end(), [](const RunEnergy& a, const RunEnergy& b) {
    return std::tie(b.register_time, a.run_id) < std::tie(a.register_time, b.run_id);
  });
  return out;
}

std::vector<MeterHealth> Collector::Meters() const {
  absl::MutexLock lock(&mu_);
  std::vector<MeterHealth> out;
  for (const MeterSlot& slot : slots_) out.push_back(slot.health);
  return out;
}

std::vector<IdleBaselineInfo> Collector::IdleBaselines() const {
  absl::MutexLock lock(&mu_);
  std::vector<IdleBaselineInfo> out;
  for (const MeterSlot& slot : slots_) {
    const MeterInfo& info = slot.meter->info();
    IdleBaselineInfo b{.domain = info.domain, .zone = info.zone, .source = info.source};
    if (info.model_idle_watts >= 0) {
      b.idle_watts = info.model_idle_watts;
    } else if (slot.idle_watts.has_value()) {
      b.idle_watts = *slot.idle_watts;
      b.measured = true;
      b.measure_time = slot.idle_measure_time;
    } else {
      continue;  // nothing measured yet
    }
    out.push_back(b);
  }
  return out;
}

std::set<Domain> Collector::EstimatedDomains() const {
  absl::MutexLock lock(&mu_);
  return estimated_domains_;
}

SavedState Collector::Save(std::string boot_id) const {
  absl::MutexLock lock(&mu_);
  SavedState state;
  state.boot_id = std::move(boot_id);
  state.saved_at = last_tick_.value_or(absl::InfinitePast());
  for (const MeterSlot& slot : slots_) {
    std::string s = slot.meter->SaveState();
    if (!s.empty()) state.meters[slot.meter->info().id] = std::move(s);
    if (slot.idle_watts.has_value()) state.idle_watts[slot.meter->info().id] = *slot.idle_watts;
  }
  for (const auto& [key, ticks] : process_ticks_) {
    state.processes.push_back({key.pid, key.start_ticks, ticks});
  }
  // Registered roots whose tree was not read yet (registered since the last tick) are in
  // process_ticks_ too (SnapshotTree), so every live root has its baseline here.
  if (cpu_times_.has_value()) {
    state.has_cpu_times = true;
    state.busy_ticks = cpu_times_->busy_ticks;
    state.total_ticks = cpu_times_->total_ticks;
  }
  for (const auto& [id, run] : runs_) state.runs.push_back(Publish(run));
  return state;
}

void Collector::Restore(const SavedState& state, std::string_view boot_id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  const bool continuous = !state.boot_id.empty() && state.boot_id == boot_id &&
                          state.saved_at != absl::InfinitePast() &&
                          now - state.saved_at <= options_.max_restore_gap && now >= state.saved_at;
  std::map<int, std::uint64_t> start_of;
  for (const SavedState::Process& p : state.processes) start_of[p.pid] = p.start_ticks;
  std::vector<ProcessStat> processes = procfs_->ReadAllProcesses();
  std::map<int, std::uint64_t> live_start;
  for (const ProcessStat& p : processes) live_start[p.pid] = p.start_ticks;

  for (const RunEnergy& saved : state.runs) {
    RunState& run = runs_[saved.run_id];
    run.energy = saved;
    for (const GpuDescription& g : saved.gpus) run.gpu_uuids.insert(g.uuid);
    if (!saved.active) continue;
    for (int pid : saved.live_pids) {
      auto live = live_start.find(pid);
      if (live == live_start.end()) continue;  // exited while the collector was down
      auto known = start_of.find(pid);
      if (known != start_of.end() && known->second != live->second) continue;  // pid reused
      run.live_roots.insert({pid, live->second});
    }
    if (!continuous && state.saved_at != absl::InfinitePast() && now > state.saved_at) {
      const double down = absl::ToDoubleSeconds(now - state.saved_at);
      run.energy.gap_seconds += down;
      run.energy.duration_seconds += down;
    }
  }
  // Idle baselines are the machine's, whatever happened since: keep them.
  for (MeterSlot& slot : slots_) {
    auto it = state.idle_watts.find(slot.meter->info().id);
    if (it != state.idle_watts.end()) slot.idle_watts = it->second;
  }
  if (continuous) {
    for (MeterSlot& slot : slots_) {
      auto it = state.meters.find(slot.meter->info().id);
      if (it != state.meters.end()) slot.meter->RestoreState(it->second, state.saved_at);
    }
    for (const SavedState::Process& p : state.processes) {
      process_ticks_[{p.pid, p.start_ticks}] = p.cpu_ticks;
    }
    if (state.has_cpu_times) cpu_times_ = CpuTimes{state.busy_ticks, state.total_ticks};
    last_tick_ = state.saved_at;
  }
}

std::vector<std::string> Collector::ForgetEndedRuns(absl::Time now, absl::Duration retention) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> forgotten;
  for (auto it = runs_.begin(); it != runs_.end();) {
    const RunEnergy& r = it->second.energy;
    if (!r.active && r.unregister_time.has_value() && *r.unregister_time < now - retention) {
      forgotten.push_back(it->first);
      it = runs_.erase(it);
    } else {
      ++it;
    }
  }
  return forgotten;
}

std::string EncodeCounters(const SavedState& state) {
  std::ostringstream out;
  if (state.has_cpu_times) {
    out << "cpu " << state.busy_ticks << " " << state.total_ticks << "\n";
  }
  for (const auto& [id, value] : state.meters) out << "meter " << id << " " << value << "\n";
  for (const auto& [id, watts] : state.idle_watts) {
    out << "idle " << id << " " << fmt::format("{}", watts) << "\n";
  }
  for (const SavedState::Process& p : state.processes) {
    out << "proc " << p.pid << " " << p.start_ticks << " " << p.cpu_ticks << "\n";
  }
  return out.str();
}

absl::Status DecodeCounters(std::string_view text, SavedState& state) {
  std::istringstream in{std::string(text)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::istringstream fields(line);
    std::string kind;
    fields >> kind;
    if (kind == "cpu") {
      fields >> state.busy_ticks >> state.total_ticks;
      state.has_cpu_times = true;
    } else if (kind == "meter") {
      std::string id;
      fields >> id;
      std::string rest;
      std::getline(fields, rest);
      if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
      state.meters[id] = rest;
    } else if (kind == "idle") {
      std::string id;
      double watts = 0;
      fields >> id >> watts;
      state.idle_watts[id] = watts;
    } else if (kind == "proc") {
      SavedState::Process p;
      fields >> p.pid >> p.start_ticks >> p.cpu_ticks;
      state.processes.push_back(p);
    } else if (!kind.empty()) {
      return absl::DataLossError(
          fmt::format("saved collector state line {}: unknown '{}'", n, kind));
    }
    if (fields.fail() && !fields.eof()) {
      return absl::DataLossError(fmt::format("saved collector state line {} is malformed", n));
    }
  }
  return absl::OkStatus();
}

}  // namespace greenloop::energy
