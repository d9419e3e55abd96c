// Overhead of greenloop-energy as deployed: the real binary on this machine tracking N processes
// (registered over gRPC in 4 runs), sampled at 1 s, then the highest rate it sustains.
//
// Prints: CPU time of the collector as a share of one core, peak RSS (VmHWM), and for each tried
// rate, the intervals completed against those scheduled and the worst tick lag.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/grpc/channel.h"
#include "fmt/format.h"
#include "greenloop/v1/energy.grpc.pb.h"

namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// utime + stime of `pid`, in seconds.
double CpuSeconds(pid_t pid) {
  std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    in >> field;
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double PeakRssMiB(pid_t pid) {
  std::smatch m;
  std::string status = ReadFile(fmt::format("/proc/{}/status", pid));
  static const std::regex kHwm(R"(VmHWM:\s+(\d+) kB)");
  return std::regex_search(status, m, kHwm) ? std::stod(m[1]) / 1024 : -1;
}

struct Collector {
  pid_t pid = -1;
  std::unique_ptr<greenloop::v1::EnergyService::Stub> stub;
};

Collector Start(const std::string& interval, const std::string& log) {
  Collector c;
  std::remove(log.c_str());
  c.pid = ::fork();
  if (c.pid == 0) {
    std::FILE* out = std::freopen(log.c_str(), "w", stdout);
    (void)out;
    ::dup2(::fileno(stdout), STDERR_FILENO);
    std::string i = "--interval=" + interval;
    ::execl(GREENLOOP_ENERGY_BIN, GREENLOOP_ENERGY_BIN, "--config", GREENLOOP_ENERGY_YAML,
            "--grpc.address=127.0.0.1:0", "--metrics.address=127.0.0.1:0", i.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  static const std::regex kPort(R"(grpc server listening .* port=(\d+))");
  for (int i = 0; i < 200; ++i) {
    std::smatch m;
    std::string text = ReadFile(log);
    if (std::regex_search(text, m, kPort)) {
      c.stub = greenloop::v1::EnergyService::NewStub(
          *greenloop::rpc::CreateChannel(fmt::format("127.0.0.1:{}", m[1].str())));
      return c;
    }
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "greenloop-energy did not start:\n%s\n", ReadFile(log).c_str());
  std::exit(1);
}

void Stop(Collector& c) {
  ::kill(c.pid, SIGTERM);
  ::waitpid(c.pid, nullptr, 0);
}

void Register(Collector& c, const std::vector<pid_t>& pids) {
  for (std::size_t run = 0; run < 4; ++run) {
    greenloop::v1::RegisterRequest req;
    req.set_run_id(fmt::format("bench-{}", run));
    for (std::size_t i = run; i < pids.size(); i += 4) req.add_pids(pids[i]);
    greenloop::v1::RegisterResponse resp;
    auto ctx = greenloop::rpc::NewClientContext(5s);
    grpc::Status s = c.stub->Register(ctx.get(), req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "Register: %s\n", s.error_message().c_str());
      std::exit(1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 30;
  int processes = 200;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.starts_with("--seconds=")) seconds = std::stod(a.substr(10));
    if (a.starts_with("--processes=")) processes = std::stoi(a.substr(12));
  }
  std::vector<pid_t> children;
  for (int i = 0; i < processes; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
      ::pause();
      ::_exit(0);
    }
    children.push_back(pid);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf(
      "greenloop-energy overhead: %d tracked processes in 4 runs, estimator source, "
      "memory-only storage, %d logical CPUs\n",
      processes, static_cast<int>(std::thread::hardware_concurrency()));

  Collector c = Start("1s", "/tmp/greenloop-energy-bench.log");
  Register(c, children);
  std::this_thread::sleep_for(2s);  // warm-up: first ticks, page faults
  const double cpu0 = CpuSeconds(c.pid);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(seconds * 1000)));
  const double cpu1 = CpuSeconds(c.pid);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "interval 1 s over %.0f s: CPU %.3f %% of one core, peak RSS %.1f MiB "
      "(targets: <= 0.5 %%, <= 30 MiB)\n",
      wall, 100 * (cpu1 - cpu0) / wall, PeakRssMiB(c.pid));
  Stop(c);

  for (const char* interval : {"100ms", "50ms"}) {
    Collector fast = Start(interval, "/tmp/greenloop-energy-bench.log");
    Register(fast, children);
    greenloop::v1::WatchNodeSamplesRequest req;
    grpc::ClientContext ctx;
    const double window = 10;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(12));
    auto reader = fast.stub->WatchNodeSamples(&ctx, req);
    greenloop::v1::WatchNodeSamplesResponse r;
    std::uint64_t first = 0, last = 0;
    int received = 0;
    double worst_ms = 0;
    const double cpu_a = CpuSeconds(fast.pid);
    const auto start = std::chrono::steady_clock::now();
    while (reader->Read(&r)) {
      if (received++ == 0) first = r.sequence();
      last = r.sequence();
      worst_ms = std::max(worst_ms, static_cast<double>(r.interval_ms()));
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
          window) {
        break;
      }
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu_b = CpuSeconds(fast.pid);
    ctx.TryCancel();
    const double hz = static_cast<double>(last - first) / elapsed;
    std::printf(
        "interval %s: %.1f intervals/s sustained over %.0f s (sequence %llu..%llu, %d "
        "streamed), longest interval %.0f ms, CPU %.2f %% of one core\n",
        interval, hz, elapsed, static_cast<unsigned long long>(first),
        static_cast<unsigned long long>(last), received, worst_ms, 100 * (cpu_b - cpu_a) / elapsed);
    Stop(fast);
  }
  for (pid_t pid : children) ::kill(pid, SIGKILL);
  for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
  return 0;
}
