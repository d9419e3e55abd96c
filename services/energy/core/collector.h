// The energy collector's core: each interval, read every meter, compose the node total without
// double counting, split idle from active energy, attribute active energy to the registered runs,
// and keep per-run totals. No gRPC, PostgreSQL or HTTP here: adapters and storage sit around it.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/energy/core/estimator.h"
#include "services/energy/core/meter.h"
#include "services/energy/core/nvml.h"
#include "services/energy/core/procfs.h"

namespace greenloop::energy {

/// Carbon factors of one node: gCO2e = kWh × pue × grid_intensity_grams_per_kwh.
struct CarbonFactors {
  double pue = 1.0;
  double grid_intensity_grams_per_kwh = 0;
  std::string source;  // where the two numbers come from, for reports
};

/// Returns the grams of CO2e of `joules` under `factors`.
double CarbonGrams(double joules, const CarbonFactors& factors);

/// How the estimator stands in where no meter is readable.
struct EstimatorConstants {
  double cpu_idle_watts = 0;  // the whole node's CPUs at idle
  double cpu_max_watts = 0;   // ... at 100 % utilisation
  double dram_watts = 0;      // memory, constant (used only when a RAPL dram zone fails)
};

struct CollectorOptions {
  std::string node;
  CarbonFactors carbon;
  EstimatorConstants estimator;
  // A measured zone's idle baseline is the lowest average power over any interval at least this
  // long seen since start (shorter intervals, such as the last reading Unregister takes, are too
  // noisy to set it).
  absl::Duration min_idle_interval = absl::Milliseconds(500);
  // Restart continuity: counters saved less than this long ago are continued across the downtime
  // (RAPL counters can wrap unseen over longer gaps); older state becomes a gap.
  absl::Duration max_restore_gap = absl::Minutes(10);
  // The whole of /proc is scanned for new descendants of registered processes every this many
  // intervals (and right after a Register); in between only known processes are read. A child
  // that starts between scans counts from the next scan, with its whole CPU time so far (it is
  // cumulative) weighed against that interval, so its share of the intervals before is only
  // approximated. 1 scans every interval: exact, and dearer on nodes with many processes.
  int process_rescan_intervals = 5;
};

/// (domain, source): the key of every breakdown.
struct DomainKey {
  Domain domain = Domain::kPackage;
  Source source = Source::kEstimated;
  auto operator<=>(const DomainKey&) const = default;
};

/// A run's energy in one (domain, source) on this node.
struct DomainTotals {
  std::set<std::string> zones;
  double active_joules = 0;
  double idle_joules = 0;
  double seconds = 0;  // registered seconds with readings for this key
};

/// Everything the collector knows about one run on this node.
struct RunEnergy {
  std::string run_id;
  bool active = false;
  absl::Time first_register_time = absl::InfinitePast();  // start of the first interval
  absl::Time register_time = absl::InfinitePast();        // start of the current interval
  absl::Time end_time = absl::InfinitePast();             // last sample (or unregistration)
  std::optional<absl::Time> unregister_time;              // set once inactive
  double duration_seconds = 0;
  double gap_seconds = 0;
  double active_joules = 0;  // node total, no double counting
  double idle_joules = 0;    // node idle over the registered time (not split between runs)
  std::map<DomainKey, DomainTotals> domains;  // including one kNode entry per source seen
  std::set<Domain> estimated_domains;
  std::vector<int> pids;        // every pid ever registered (sorted)
  std::vector<int> live_pids;   // still registered
  std::vector<unsigned> ranks;  // ranks that registered
  std::vector<GpuDescription> gpus;
  std::string owner;  // id of the principal that first registered it ("" without authentication)
  // Ended because every registered process exited, not through Unregister().
  bool ended_on_exit = false;
};

/// Who calls Register() or Unregister(): the authenticated principal's id ("" when authentication
/// is off) and whether it may act on runs that others registered (an admin).
struct Registrant {
  std::string id;
  bool admin = false;
};

/// One zone over one interval.
struct ZoneSample {
  std::string meter_id;
  Domain domain = Domain::kPackage;
  std::string zone;
  Source source = Source::kEstimated;
  bool in_node_total = false;
  double energy_joules = 0;      // this interval
  double cumulative_joules = 0;  // since the collector started (wrap-around removed)
  double power_watts = 0;
  double idle_power_watts = 0;
};

/// One run's share of one interval.
struct RunShare {
  std::string run_id;
  double cpu_share = 0;
  double active_joules = 0;  // node total
  double idle_joules = 0;
  std::map<DomainKey, double> active_joules_by_key;
};

/// What one Tick() measured.
struct IntervalSample {
  std::uint64_t sequence = 0;
  absl::Time time;
  absl::Duration interval;
  std::vector<ZoneSample> zones;  // every zone read this interval (the node total included, last)
  std::vector<RunShare> runs;
  bool node_covered = false;  // false: no meter composing the node total could be read
};

/// Health of one meter, for ListMeters and metrics.
struct MeterHealth {
  MeterInfo info;
  bool healthy = false;
  bool primed = false;
  std::string last_error;
  std::string remediation;
  std::optional<absl::Time> last_read_time;
  std::uint64_t read_errors = 0;
  std::uint64_t counter_resets = 0;
  bool fallback_active = false;  // a stand-in estimator covers this zone now
};

/// Idle baseline of one zone (GetNodeInfo).
struct IdleBaselineInfo {
  Domain domain = Domain::kPackage;
  std::string zone;
  Source source = Source::kEstimated;
  double idle_watts = 0;
  bool measured = false;
  std::optional<absl::Time> measure_time;
};

/// What a restarted collector needs to continue without losing or double counting energy.
struct SavedState {
  std::string boot_id;
  absl::Time saved_at;
  std::map<std::string, std::string> meters;  // meter id -> Meter::SaveState()
  std::map<std::string, double> idle_watts;   // meter id -> measured idle baseline
  struct Process {
    int pid = 0;
    std::uint64_t start_ticks = 0;
    std::uint64_t cpu_ticks = 0;
  };
  std::vector<Process> processes;
  bool has_cpu_times = false;
  std::uint64_t busy_ticks = 0;
  std::uint64_t total_ticks = 0;
  std::vector<RunEnergy> runs;  // with their pids; only runs still active matter for continuity
};

/// Encodes and decodes SavedState's meter/process part as text (storage keeps it in one column).
std::string EncodeCounters(const SavedState& state);
absl::Status DecodeCounters(std::string_view text, SavedState& state);

/// A GPU requested by Register(): by UUID or by NVML index.
struct GpuRequest {
  std::optional<std::string> uuid;
  std::optional<unsigned> index;
};

/// \brief Measures one node and attributes its energy to registered runs.
///
/// The sampling thread calls Tick() once per interval with the current time (tests pass their own
/// times); RPC threads call Register(), Unregister(), GetRun() and friends concurrently.
///
/// Energy of zones that fail to read is not invented: RAPL package and dram zones have a stand-in
/// estimator read alongside them, whose figure (labelled estimated) replaces the zone's while it
/// fails; other failures leave a gap that GetRun() reports as gap_seconds.
///
/// Thread-safety: every public method is safe to call from any thread.
class Collector final {
 public:
  /// Takes the meters discovered on this node (RAPL, NVML, hwmon; may be empty) and adds the
  /// estimators: a node-wide CPU estimator when no RAPL package zone exists, and a stand-in for
  /// each RAPL package and dram zone. `procfs` must outlive the collector.
  Collector(CollectorOptions options, MeterList meters, std::vector<GpuDescription> gpus,
            const ProcFs* procfs);

  /// Reads every meter and attributes the interval since the previous reading. The first Tick()
  /// only primes the meters (interval 0). Returns what was measured: the readings Unregister()
  /// took since the previous Tick() (in order), then this one.
  std::vector<IntervalSample> Tick(absl::Time now);

  /// Adds pids (and GPUs) to a run for `who`, opening a new registered interval when the run was
  /// inactive. A run belongs to the principal that first registered it: only it (or an admin) may
  /// add to it or unregister it. A process's energy goes to one run: a pid another active run
  /// holds is refused. INVALID_ARGUMENT for a malformed run id, no pids or a pid ≤ 0; NOT_FOUND
  /// for a pid that is not a live process or a GPU that does not exist; PERMISSION_DENIED for a run
  /// another principal registered; FAILED_PRECONDITION for a pid held by another active run and
  /// for GPUs without a working GPU meter. Returns the run as now registered.
  absl::StatusOr<RunEnergy> Register(std::string_view run_id, const std::vector<int>& pids,
                                     const std::vector<GpuRequest>& gpus, unsigned rank,
                                     absl::Time now, const Registrant& who = {});

  /// Removes pids (all of them when empty) after one last Tick(now). NOT_FOUND for a run never
  /// registered; PERMISSION_DENIED for a run another principal registered (unless `who` is an
  /// admin). Returns the run as of the call.
  absl::StatusOr<RunEnergy> Unregister(std::string_view run_id, const std::vector<int>& pids,
                                       absl::Time now, const Registrant& who = {});

  /// Returns a run's figures; NOT_FOUND when it was never registered here.
  absl::StatusOr<RunEnergy> GetRun(std::string_view run_id) const;

  /// Returns every run, newest registration first.
  std::vector<RunEnergy> ListRuns(bool include_ended) const;

  /// Returns the health of every meter, primary meters first in discovery order, then estimators.
  std::vector<MeterHealth> Meters() const;

  /// Returns the idle baseline of every zone read so far.
  std::vector<IdleBaselineInfo> IdleBaselines() const;

  /// Domains whose node figure is currently estimated.
  std::set<Domain> EstimatedDomains() const;

  /// Returns the state to persist so that a restarted collector continues where this one stopped.
  SavedState Save(std::string boot_id) const;

  /// Continues from a saved state: restores run totals; when `state.boot_id` matches `boot_id` and
  /// the state is younger than max_restore_gap, also meter counters and process CPU times, so the
  /// first Tick() covers the downtime; otherwise the downtime is added to active runs' gap_seconds.
  /// Call before the first Tick().
  void Restore(const SavedState& state, std::string_view boot_id, absl::Time now);

  /// Drops ended runs whose unregistration is older than `now - retention` from memory (they stay
  /// in storage). Returns their ids.
  std::vector<std::string> ForgetEndedRuns(absl::Time now, absl::Duration retention);

  const CollectorOptions& options() const { return options_; }
  const std::vector<GpuDescription>& gpus() const { return gpus_; }

 private:
  struct MeterSlot {
    std::unique_ptr<Meter> meter;
    MeterHealth health;
    // Stand-in for a RAPL package or dram zone while it fails (index into slots_), or -1.
    int fallback = -1;
    bool is_fallback = false;  // this slot only stands in for another one
    double cumulative_joules = 0;
    // Idle baseline: lowest interval power seen (measured meters).
    std::optional<double> idle_watts;
    std::optional<absl::Time> idle_measure_time;
  };
  struct ProcessKey {
    int pid;
    std::uint64_t start_ticks;
    auto operator<=>(const ProcessKey&) const = default;
  };
  struct RunState {
    RunEnergy energy;
    std::set<ProcessKey> live_roots;  // registered processes still attributed
    std::set<std::string> gpu_uuids;
  };

  IntervalSample TickLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `who` may register `roots` to `run_id`: it owns the run (or is an admin), and no
  // other active run holds one of them.
  absl::Status CheckRegistration(std::string_view run_id, const std::vector<ProcessKey>& roots,
                                 const Registrant& who) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the CPU time of `root`'s process tree as the baseline, so time before now is not
  // attributed.
  void SnapshotTree(const ProcessKey& root, const std::vector<ProcessStat>& all)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RunEnergy Publish(const RunState& run) const;

  const CollectorOptions options_;
  const std::vector<GpuDescription> gpus_;
  const ProcFs* const procfs_;

  mutable absl::Mutex mu_;
  std::vector<MeterSlot> slots_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, RunState> runs_ ABSL_GUARDED_BY(mu_);
  std::map<ProcessKey, std::uint64_t> process_ticks_ ABSL_GUARDED_BY(mu_);  // at the last tick
  // Children of each counted process at the last tick, with their ticks then: when one is gone,
  // its counted time is taken off its parent's cutime delta (no double counting).
  std::map<ProcessKey, std::vector<std::pair<ProcessKey, std::uint64_t>>> counted_children_
      ABSL_GUARDED_BY(mu_);
  std::optional<CpuTimes> cpu_times_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> last_tick_ ABSL_GUARDED_BY(mu_);
  std::uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int ticks_since_scan_ ABSL_GUARDED_BY(mu_) = 0;
  bool rescan_ ABSL_GUARDED_BY(mu_) = true;
  std::set<Domain> estimated_domains_ ABSL_GUARDED_BY(mu_);
  std::vector<IntervalSample> extra_samples_ ABSL_GUARDED_BY(mu_);  // taken by Unregister()
  double node_cumulative_joules_ ABSL_GUARDED_BY(mu_) = 0;
};

/// Returns OK when `run_id` is 1 to 63 characters of [a-z0-9-] starting with a letter or digit.
absl::Status ValidateRunId(std::string_view run_id);

}  // namespace greenloop::energy
