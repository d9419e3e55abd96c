// Lease+submit throughput and latency of greenloop-feedback over gRPC, against a bare-SQL ceiling
// measured in the same run on the same server.
//
//   build/tests/bench/feedback/feedback_bench --pg.url=postgresql://... [--seconds=10]
//       [--raters=16,200] [--k=3] [--open_loop.raters=2000] [--open_loop.think_seconds=4.2]
//       [--open_loop.rates=0.5,1,2] [--label=ephemeral]
//
// Starts the real binary on a scratch database of that server, creates one rater token per
// simulated rater and one campaign per run, and drives it:
//   - closed loop: each rater thread loops Lease(1) → Submit for `seconds`;
//   - open loop: `open_loop.raters` raters answer after exponential think times of mean
//     `open_loop.think_seconds` (Poisson arrivals), at each factor of `open_loop.rates` times
//     that offered rate; latency runs from the intended send time to the next item shown.
// The ceiling is pgbench running the same two transactions as bare SQL with 16 clients. CPU per
// cycle is read from procfs for the service and for the PostgreSQL server (when it runs on this
// machine). The last line is the contract other checks read:
//
//   queue: raters=200 cycles_per_s=N ceiling=N ratio=N.NN lease_p99_ms=N submit_p99_ms=N
//   open_loop_p99_ms=N
//
// Not part of ctest: figures depend on the machine.
#include <iostream>
#include <pqxx/pqxx>
#include <thread>

#include "common/config/config.h"
#include "common/pg/pool.h"
#include "fmt/format.h"
#include "tests/bench/feedback/ceiling.h"
#include "tests/bench/feedback/cpu_meter.h"
#include "tests/bench/feedback/load.h"
#include "tests/bench/feedback/service_under_test.h"
#include "tests/support/test_pg.h"

namespace greenloop::feedback::bench {
namespace {

struct Options {
  std::string pg_url;
  std::string label = "";
  std::int64_t seconds = 10, k = 3;
  std::vector<std::string> raters = {"16", "200"};
  std::int64_t open_raters = 2000;
  double think_seconds = 4.2;
  std::vector<std::string> open_rates = {"1"};
};

// The PostgreSQL server's meter, found through a backend's parent while that backend lives.
CpuMeter PostgresMeter(const std::string& db_url) {
  auto pool = pg::Pool::Create({.url = db_url, .max_size = 1});
  if (!pool.ok()) return CpuMeter(0);
  auto meter = (*pool)->Run([](pqxx::work& tx) {
    return CpuMeter::PostgresOf(tx.exec1("SELECT pg_backend_pid()")[0].as<int>());
  });
  return meter.ok() ? *meter : CpuMeter(0);
}

// CPU used by the service and by PostgreSQL during one run.
class CpuWindow {
 public:
  CpuWindow(const CpuMeter& service, const CpuMeter& pg)
      : service_(service), pg_(pg), s0_(service.Seconds()), p0_(pg.Seconds()) {}
  // Milliseconds per cycle: (service, PostgreSQL).
  std::pair<double, double> PerCycle(std::int64_t cycles) const {
    if (cycles <= 0) return {0, 0};
    const double n = static_cast<double>(cycles);
    return {1e3 * (service_.Seconds() - s0_) / n, 1e3 * (pg_.Seconds() - p0_) / n};
  }

 private:
  const CpuMeter& service_;
  const CpuMeter& pg_;
  double s0_, p0_;
};

std::string Row(const std::string& name, const LoadResult& r, double ceiling,
                std::pair<double, double> cpu) {
  return fmt::format(
      "{:<40} {:>9.0f} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>7.0f}% {:>7.2f} {:>7.2f}{}\n", name,
      r.cycles_per_s(), r.lease_p50_ms, r.lease_p99_ms, r.submit_p50_ms, r.submit_p99_ms,
      ceiling > 0 ? 100 * r.cycles_per_s() / ceiling : 0, cpu.first, cpu.second,
      r.errors > 0 ? fmt::format("  ({} errors; first: {})", r.errors, TakeFirstError()) : "");
}

int Items(double cycles_per_s, std::int64_t seconds, std::int64_t k) {
  return static_cast<int>(
      (cycles_per_s * static_cast<double>(seconds + 2) * 1.5) / static_cast<double>(k) + 2000);
}

int Run(const Options& o) {
  greenloop::testing::ScratchDatabase db(o.pg_url);
  ServiceUnderTest service(db.url());
  const CpuMeter service_cpu(service.pid(), /*with_live_children=*/false);
  const CpuMeter pg_cpu = PostgresMeter(db.url());
  const double ceiling =
      PgbenchCeiling(db.url(), 16, static_cast<int>(o.seconds), static_cast<int>(o.k));
  double load[1] = {0};
  ::getloadavg(load, 1);
  std::cout << fmt::format(
      "machine: {} cores, load average {:.1f} at start; PostgreSQL{} on the same machine; k = {}; "
      "{} s per run; clients on the same cores\n",
      std::thread::hardware_concurrency(), load[0], o.label.empty() ? "" : " (" + o.label + ")",
      o.k, o.seconds);
  std::cout << fmt::format("{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7}\n", "run",
                           "cycles/s", "lease p50", "lease p99", "subm p50", "subm p99", "ceiling",
                           "svc ms", "pg ms");
  std::cout << fmt::format("{:<40} {:>9.0f}   (ms columns: CPU per cycle)\n",
                           "pgbench bare SQL, 16 clients", ceiling);
  int run = 0;
  LoadResult headline;
  int headline_raters = 0;
  for (const std::string& n : o.raters) {
    const int count = std::stoi(n);
    const std::string campaign = fmt::format("bench-{}", run++);
    service.FillCampaign(campaign, Items(4000, o.seconds, o.k), static_cast<int>(o.k));
    Analyze(db.url());
    const std::vector<std::string> tokens = service.RaterTokens(count);
    CpuWindow cpu(service_cpu, pg_cpu);
    TakeFirstError();  // from setup or an earlier run
    const LoadResult r = ClosedLoop(service, campaign, tokens, static_cast<int>(o.seconds));
    std::cout << Row(fmt::format("closed loop, {} raters", count), r, ceiling,
                     cpu.PerCycle(r.cycles));
    service.CloseCampaign(campaign);
    if (headline_raters == 0 || count == 200) headline = r, headline_raters = count;
  }
  const std::vector<std::string> crowd = service.RaterTokens(static_cast<int>(o.open_raters));
  double open_p99 = 0;
  std::cout << fmt::format("{:<40} {:>9} {:>9} {:>9} {:>9}\n",
                           "open loop (intended send → next item)", "offered/s", "cycles/s",
                           "p50 ms", "p99 ms");
  for (const std::string& f : o.open_rates) {
    const double factor = std::stod(f);
    const std::string campaign = fmt::format("bench-{}", run++);
    const double offered = static_cast<double>(o.open_raters) / o.think_seconds * factor;
    service.FillCampaign(campaign, Items(offered, o.seconds, o.k) + static_cast<int>(o.open_raters),
                         static_cast<int>(o.k));
    Analyze(db.url());
    CpuWindow cpu(service_cpu, pg_cpu);
    TakeFirstError();
    const LoadResult r =
        OpenLoop(service, campaign, crowd, o.think_seconds / factor, static_cast<int>(o.seconds));
    const auto [svc_ms, pg_ms] = cpu.PerCycle(r.cycles);
    std::cout << fmt::format(
        "{:<40} {:>9.0f} {:>9.0f} {:>9.1f} {:>9.1f}   CPU/cycle svc {:.2f} ms, pg {:.2f} ms{}\n",
        fmt::format("{} raters, think {:.2f} s", o.open_raters, o.think_seconds / factor),
        r.offered_per_s, r.cycles_per_s(), r.cycle_p50_ms, r.cycle_p99_ms, svc_ms, pg_ms,
        r.errors > 0 ? fmt::format("  ({} errors; first: {})", r.errors, TakeFirstError()) : "");
    if (factor == 1.0 || open_p99 == 0) open_p99 = r.cycle_p99_ms;
    service.CloseCampaign(campaign);
  }
  std::cout << fmt::format(
      "queue: raters={} cycles_per_s={:.0f} ceiling={:.0f} ratio={:.2f} lease_p99_ms={:.0f} "
      "submit_p99_ms={:.0f} open_loop_p99_ms={:.0f}\n",
      headline_raters, headline.cycles_per_s(), ceiling,
      ceiling > 0 ? headline.cycles_per_s() / ceiling : 0, headline.lease_p99_ms,
      headline.submit_p99_ms, open_p99);
  return 0;
}

}  // namespace
}  // namespace greenloop::feedback::bench

int main(int argc, char** argv) {
  using greenloop::feedback::bench::Options;
  Options o;
  greenloop::config::Schema schema("feedback_bench");
  schema.Add("pg.url", &o.pg_url, "PostgreSQL server to use (a scratch database is made on it)")
      .Add("label", &o.label, "what to call that server in the output (e.g. durable)")
      .Add("seconds", &o.seconds, "measured seconds per run", {.min = 1, .max = 600})
      .Add("raters", &o.raters, "closed loop: concurrent raters per run")
      .Add("k", &o.k, "ratings per item", {.min = 1, .max = 15})
      .Add("open_loop.raters", &o.open_raters, "open loop: raters in the crowd",
           {.min = 1, .max = 20000})
      .Add("open_loop.think_seconds", &o.think_seconds, "open loop: mean seconds per item",
           {.min = 0.01})
      .Add("open_loop.rates", &o.open_rates,
           "open loop: factors of the crowd's offered rate, one run each (1 = as configured)");
  if (absl::Status s = schema.Load(argc, argv); !s.ok()) {
    std::cerr << "feedback_bench: " << s.message() << "\n";
    return 2;
  }
  if (schema.help_requested()) {
    std::cout << schema.Usage();
    return 0;
  }
  if (o.pg_url.empty()) o.pg_url = greenloop::testing::TestPgUrl();
  try {
    return greenloop::feedback::bench::Run(o);
  } catch (const std::exception& e) {
    std::cerr << "feedback_bench: " << e.what() << "\n";
    return 1;
  }
}
