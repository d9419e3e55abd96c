// CPU time of the processes a benchmark drives, read from procfs (Linux only).
//
//   CpuMeter service(service_pid), pg = CpuMeter::PostgresOf(backend_pid);
//   const double before = service.Seconds();
//   ... load ...
//   const double used = service.Seconds() - before;
//
// A process's figure is its user + system time plus that of its reaped children. For PostgreSQL
// the meter covers the postmaster and every process it forked (backends, WAL writer, checkpointer,
// autovacuum): the live children's own time plus what the postmaster has reaped.
//
// Thread-safety: Seconds() is const and reads procfs only; safe from any thread.
#pragma once

#include <sys/types.h>

namespace greenloop::feedback::bench {

class CpuMeter final {
 public:
  /// The process `pid` (and its reaped children).
  explicit CpuMeter(pid_t pid, bool with_live_children = false)
      : pid_(pid), with_live_children_(with_live_children) {}
  /// The PostgreSQL server that runs the backend `backend_pid` (pg_backend_pid(), read while
  /// that connection is open); a meter that reads 0 when the server is not on this machine.
  static CpuMeter PostgresOf(pid_t backend_pid);

  /// CPU seconds used so far; 0 when the process is gone.
  double Seconds() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
  bool with_live_children_;
};

}  // namespace greenloop::feedback::bench
