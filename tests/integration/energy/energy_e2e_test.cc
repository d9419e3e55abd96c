// greenloop-energy as a user runs it: the real binary on this machine (estimated source: no power
// meter here), a real child process that burns CPU, gRPC over loopback, a PostgreSQL of the test's
// own that is stopped and restarted mid-run, a SIGKILL and restart, and promtool on /metrics.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/grpc/channel.h"
#include "common/pg/pool.h"
#include "fmt/format.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/child_process.h"

namespace greenloop::energy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Shell(const std::string& command, int* exit_code = nullptr) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  int status = ::pclose(pipe);
  if (exit_code != nullptr) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

// A child that burns CPU until killed.
pid_t StartBurner() {
  pid_t pid = ::fork();
  if (pid == 0) {
    volatile unsigned long x = 0;
    for (;;) x = x + 1;
  }
  return pid;
}

class Collector {
 public:
  Collector(fs::path dir, std::string pg_url) : dir_(std::move(dir)), pg_url_(std::move(pg_url)) {}

  // Starts the binary with `extra` flags and waits until it logs its ports; the stub dials it
  // over TLS when `tls` is given.
  void Start(const std::vector<std::string>& extra = {},
             std::optional<rpc::ClientTlsOptions> tls = std::nullopt) {
    std::vector<std::string> argv = {GREENLOOP_ENERGY_BIN,
                                     "--config",
                                     GREENLOOP_ENERGY_YAML,
                                     "--pg.url=" + pg_url_,
                                     "--node=e2e-node",
                                     "--grpc.address=127.0.0.1:0",
                                     "--metrics.address=127.0.0.1:0",
                                     "--interval=200ms",
                                     "--storage.sample_resolution=1s",
                                     "--storage.flush_interval=200ms"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_.Start(argv, dir_ / fmt::format("energy-{}.log", starts_++));
    static const std::regex kPorts(R"(grpc_port=(\d+) metrics_port=(\d+))");
    std::optional<std::smatch> m = process_.WaitForLog(kPorts, 10s);
    ASSERT_TRUE(m.has_value()) << "greenloop-energy did not start:\n" << process_.log();
    grpc_port_ = std::stoi((*m)[1]);
    metrics_port_ = std::stoi((*m)[2]);
    stub_ = v1::EnergyService::NewStub(*rpc::CreateChannel(target(), {.tls = std::move(tls)}));
  }

  std::string target() const { return fmt::format("127.0.0.1:{}", grpc_port_); }

  int Kill(int signal) { return process_.Kill(signal); }
  v1::EnergyService::Stub& stub() { return *stub_; }
  int metrics_port() const { return metrics_port_; }
  std::string log() const { return process_.log(); }

 private:
  fs::path dir_;
  std::string pg_url_;
  int starts_ = 0;
  greenloop::testing::ChildProcess process_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<v1::EnergyService::Stub> stub_;
};

v1::NodeRunEnergy GetRun(v1::EnergyService::Stub& stub, const std::string& run) {
  v1::GetRunEnergyRequest req;
  req.set_run_id(run);
  v1::GetRunEnergyResponse resp;
  auto ctx = rpc::NewClientContext(5s);
  grpc::Status s = stub.GetRunEnergy(ctx.get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.nodes_size() > 0 ? resp.nodes(0) : v1::NodeRunEnergy();
}

class EnergyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_);
    int code = 0;
    std::string out = Shell(fmt::format("{} start --dir {} --fresh --ephemeral", GREENLOOP_PG_SH,
                                        (dir_ / "pg").string()),
                            &code);
    ASSERT_EQ(code, 0) << out;
    url_ = Shell(fmt::format("{} url --dir {}", GREENLOOP_PG_SH, (dir_ / "pg").string()));
    url_.erase(url_.find_last_not_of("\n") + 1);
  }
  void TearDown() override {
    if (burner_ > 0) {
      ::kill(burner_, SIGKILL);
      ::waitpid(burner_, nullptr, 0);
    }
    Shell(fmt::format("{} destroy --dir {}", GREENLOOP_PG_SH, (dir_ / "pg").string()));
  }

  fs::path dir_ = fs::path(GREENLOOP_E2E_DIR);
  std::string url_;
  pid_t burner_ = -1;
};

TEST_F(EnergyE2eTest, MeasuresAChildThroughOutagesAndRestarts) {
  Collector collector(dir_, url_);
  ASSERT_NO_FATAL_FAILURE(collector.Start());
  burner_ = StartBurner();

  // Register the burner; its energy grows, estimated, and stays within the node's.
  {
    v1::RegisterRequest req;
    req.set_run_id("e2e-run");
    req.add_pids(burner_);
    req.set_node("e2e-node");
    v1::RegisterResponse resp;
    auto ctx = rpc::NewClientContext(5s);
    grpc::Status s = collector.stub().Register(ctx.get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.node(), "e2e-node");
  }
  {
    v1::RegisterRequest req;
    req.set_run_id("e2e-run");
    req.add_pids(999'999'999);
    v1::RegisterResponse resp;
    auto ctx = rpc::NewClientContext(5s);
    EXPECT_EQ(collector.stub().Register(ctx.get(), req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  std::this_thread::sleep_for(1500ms);
  v1::NodeRunEnergy first = GetRun(collector.stub(), "e2e-run");
  EXPECT_GT(first.active_energy_joules(), 0);
  EXPECT_TRUE(first.active());
  ASSERT_GT(first.estimated_domains_size(), 0) << "no meter here: figures must say estimated";
  for (const v1::DomainEnergy& d : first.domains()) {
    EXPECT_EQ(d.source(), v1::ENERGY_SOURCE_ESTIMATED);
  }
  EXPECT_GT(first.carbon_grams(), 0);

  // The node's own counter (scraped) bounds what any run got.
  httplib::Client http("127.0.0.1", collector.metrics_port());
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics) << "no /metrics";
  std::smatch m;
  std::regex node_total(
      R"re(greenloop_node_energy_joules_total\{domain="node",node="e2e-node",source="estimated"\} ([0-9.e+]+))re");
  ASSERT_TRUE(std::regex_search(metrics->body, m, node_total)) << metrics->body;
  EXPECT_GE(std::stod(m[1]) + 1e-9, first.active_energy_joules());
  EXPECT_NE(
      metrics->body.find(
          R"(greenloop_run_energy_joules_total{domain="node",node="e2e-node",run="e2e-run"})"),
      std::string::npos);
  {
    std::ofstream out(dir_ / "metrics.txt");
    out << metrics->body;
  }
  int code = 0;
  std::string promtool =
      Shell(fmt::format("promtool check metrics < {}", (dir_ / "metrics.txt").string()), &code);
  EXPECT_EQ(code, 0) << promtool;

  // WatchNodeSamples: consecutive intervals with the run's power.
  {
    v1::WatchNodeSamplesRequest req;
    req.set_include_runs(true);
    auto ctx = rpc::NewClientContext(5s);
    auto reader = collector.stub().WatchNodeSamples(ctx.get(), req);
    v1::WatchNodeSamplesResponse a, b;
    ASSERT_TRUE(reader->Read(&a));
    ASSERT_TRUE(reader->Read(&b));
    EXPECT_GT(b.sequence(), a.sequence());
    ASSERT_EQ(b.runs_size(), 1);
    EXPECT_EQ(b.runs(0).run_id(), "e2e-run");
    ctx->TryCancel();
  }

  // PostgreSQL goes away for 2 s and comes back: the collector keeps measuring and backfills, so
  // the stored node samples cover the outage (1 s buckets, none missing).
  const std::string pg_dir = (dir_ / "pg").string();
  ASSERT_EQ(
      std::system(fmt::format("{} stop --dir {} >/dev/null", GREENLOOP_PG_SH, pg_dir).c_str()), 0);
  std::this_thread::sleep_for(2s);
  ASSERT_EQ(
      std::system(fmt::format("{} start --dir {} >/dev/null", GREENLOOP_PG_SH, pg_dir).c_str()), 0);
  std::this_thread::sleep_for(2500ms);
  auto pool = pg::Pool::Create({.url = url_});
  ASSERT_TRUE(pool.ok()) << pool.status();
  auto buckets = (*pool)->Run([](pqxx::work& tx) {
    pqxx::row r = tx.exec1(
        "SELECT count(*), extract(epoch FROM max(bucket_start) - min(bucket_start))::bigint "
        "FROM energy_samples WHERE zone = 'node'");
    return std::pair<std::int64_t, std::int64_t>(r[0].as<std::int64_t>(), r[1].as<std::int64_t>());
  });
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  EXPECT_GE(buckets->first, 5);
  EXPECT_EQ(buckets->first, buckets->second + 1) << "a 1 s bucket is missing: samples were lost";
  EXPECT_NE(collector.log().find("storage"), std::string::npos);

  // SIGKILL and restart: the run's energy continues from where it was, nothing lost or doubled.
  v1::NodeRunEnergy before_kill = GetRun(collector.stub(), "e2e-run");
  std::this_thread::sleep_for(300ms);  // one flush after the reading above
  ASSERT_EQ(collector.Kill(SIGKILL), -1);
  std::this_thread::sleep_for(500ms);
  ASSERT_NO_FATAL_FAILURE(collector.Start());
  v1::NodeRunEnergy restarted = GetRun(collector.stub(), "e2e-run");
  EXPECT_TRUE(restarted.active()) << "the registration survives the restart";
  EXPECT_GE(restarted.active_energy_joules(), before_kill.active_energy_joules());
  EXPECT_LT(restarted.gap_seconds(), 0.5) << "same boot: the downtime is measured, not a gap";
  std::this_thread::sleep_for(1s);
  v1::NodeRunEnergy later = GetRun(collector.stub(), "e2e-run");
  EXPECT_GT(later.active_energy_joules(), restarted.active_energy_joules());
  // Not doubled: active energy stays below the estimator's ceiling over the registered time.
  const double max_watts = 3.5 * std::thread::hardware_concurrency();
  EXPECT_LE(later.active_energy_joules(), max_watts * later.duration_seconds());

  // Unregister ends the run; a clean SIGTERM exits 0.
  {
    v1::UnregisterRequest req;
    req.set_run_id("e2e-run");
    v1::UnregisterResponse resp;
    auto ctx = rpc::NewClientContext(5s);
    ASSERT_TRUE(collector.stub().Unregister(ctx.get(), req, &resp).ok());
    EXPECT_FALSE(resp.active());
    EXPECT_GE(resp.energy().active_energy_joules(), later.active_energy_joules());
  }
  EXPECT_EQ(collector.Kill(SIGTERM), 0) << collector.log();
}

// Issue 17, hole 8: given tls.cert_path and tls.key_path the collector serves gRPC over TLS only:
// a client that trusts the certificate is served, a plaintext client is not.
TEST_F(EnergyE2eTest, ServesGrpcOverTlsOnlyWhenGivenACertificate) {
  const std::string certs = GREENLOOP_TLS_TESTDATA;
  Collector collector(dir_, url_);
  ASSERT_NO_FATAL_FAILURE(collector.Start(
      {"--tls.cert_path=" + certs + "/server.pem", "--tls.key_path=" + certs + "/server.key"},
      rpc::ClientTlsOptions{.root_ca_path = certs + "/server.pem"}));
  EXPECT_NE(collector.log().find("tls=true"), std::string::npos) << collector.log();

  v1::ListMetersResponse meters;
  auto ctx = rpc::NewClientContext(5s);
  grpc::Status over_tls = collector.stub().ListMeters(ctx.get(), v1::ListMetersRequest(), &meters);
  EXPECT_TRUE(over_tls.ok()) << over_tls.error_message();
  EXPECT_GT(meters.meters_size(), 0);

  auto plain = v1::EnergyService::NewStub(
      *rpc::CreateChannel(collector.target(), {.retry = {.max_attempts = 1}}));
  auto plain_ctx = rpc::NewClientContext(3s);
  grpc::Status cleartext = plain->ListMeters(plain_ctx.get(), v1::ListMetersRequest(), &meters);
  EXPECT_EQ(cleartext.error_code(), grpc::StatusCode::UNAVAILABLE) << cleartext.error_message();
}

// The token check's TLS settings are read at start: a CA that is not there stops the collector
// with a line naming it, before it serves anything.
TEST_F(EnergyE2eTest, AMissingFeedbackCaStopsTheStartNamingThePath) {
  int code = 0;
  const std::string out =
      Shell(fmt::format(
                "{} --config {} --pg.url= --grpc.address=127.0.0.1:0 --metrics.address=127.0.0.1:0 "
                "--auth.disabled=false --auth.feedback_address=127.0.0.1:1 "
                "--auth.feedback_ca_path=/nonexistent/feedback-ca.pem",
                GREENLOOP_ENERGY_BIN, GREENLOOP_ENERGY_YAML),
            &code);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("/nonexistent/feedback-ca.pem"), std::string::npos) << out;
}

}  // namespace
}  // namespace greenloop::energy
