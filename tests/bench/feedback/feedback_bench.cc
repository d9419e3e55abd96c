// Lease+submit throughput of greenloop-feedback over gRPC, against a bare-SQL ceiling.
//
//   build/tests/bench/feedback/feedback_bench --pg.url=postgresql://... [--seconds=10]
//       [--raters=16,200] [--k=3]
//
// Starts the real binary on a scratch database of that server, creates one rater token per
// simulated rater, fills a campaign, then each rater thread loops Lease(1) → Submit over gRPC for
// `seconds`. The ceiling is pgbench (same server, same tables) running the same two transactions
// as bare SQL with 16 clients. Prints cycles/s, lease and submit latency p50/p99, and the share of
// the ceiling. Not part of ctest: figures depend on the machine.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/config/config.h"
#include "common/grpc/channel.h"
#include "common/pg/pool.h"
#include "fmt/format.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "tests/support/test_pg.h"

namespace greenloop::feedback {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kAdmin[] = "glt_benchAdminSecretNotForProduction000000";

std::string Shell(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (pipe != nullptr) ::pclose(pipe);
  return output;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

struct Result {
  double cycles_per_second = 0;
  double lease_p50_ms = 0, lease_p99_ms = 0, submit_p50_ms = 0, submit_p99_ms = 0;
  std::int64_t errors = 0;
};

class Bench {
 public:
  Bench(std::string pg_url, int seconds, int k) : db_(pg_url), seconds_(seconds), k_(k) {}
  ~Bench() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void StartService() {
    log_ = fs::temp_directory_path() / fmt::format("feedback-bench-{}.log", ::getpid());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::FILE* out = std::freopen(log_.c_str(), "w", stdout);
      (void)out;
      ::dup2(::fileno(stdout), STDERR_FILENO);
      const std::string pg = "--pg.url=" + db_.url();
      const std::string admin = std::string("--auth.bootstrap_admin_token=") + kAdmin;
      ::execl(GREENLOOP_FEEDBACK_BIN, GREENLOOP_FEEDBACK_BIN, "--config", GREENLOOP_FEEDBACK_YAML,
              pg.c_str(), admin.c_str(), "--grpc.address=127.0.0.1:0", "--http.address=127.0.0.1:0",
              "--metrics.address=127.0.0.1:0", "--rate_limit.requests_per_second=0",
              "--pg.pool_size=16", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    static const std::regex kPorts(R"(grpc_port=(\d+))");
    for (int i = 0; i < 200; ++i) {
      std::ifstream in(log_);
      std::stringstream s;
      s << in.rdbuf();
      std::smatch m;
      const std::string text = s.str();
      if (std::regex_search(text, m, kPorts)) {
        target_ = fmt::format("127.0.0.1:{}", m[1].str());
        for (int c = 0; c < 4; ++c) {
          grpc::ChannelArguments args;
          args.SetInt("grpc.channel_id", c);  // distinct connections
          stubs_.push_back(v1::FeedbackService::NewStub(
              grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args)));
        }
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("greenloop-feedback did not start; see " + log_.string());
  }

  std::vector<std::string> Tokens(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
      v1::CreateTokenRequest req;
      req.set_role(v1::ROLE_RATER);
      req.set_name(fmt::format("bench-rater-{}", i));
      v1::CreateTokenResponse resp;
      auto ctx = rpc::NewClientContext(10s, kAdmin);
      grpc::Status s = stubs_[0]->CreateToken(ctx.get(), req, &resp);
      if (!s.ok()) throw std::runtime_error(s.error_message());
      out.push_back(resp.token());
    }
    return out;
  }

  void Campaign(const std::string& id, int items) {
    const std::string worker = [&] {
      v1::CreateTokenRequest req;
      req.set_role(v1::ROLE_WORKER);
      req.set_name("bench-trainer");
      v1::CreateTokenResponse resp;
      auto ctx = rpc::NewClientContext(10s, kAdmin);
      stubs_[0]->CreateToken(ctx.get(), req, &resp);
      return resp.token();
    }();
    v1::CreateCampaignRequest c;
    c.set_campaign_id(id);
    c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
    c.mutable_spec()->add_labels()->set_name("ham");
    c.mutable_spec()->add_labels()->set_name("spam");
    c.mutable_spec()->set_ratings_per_item(static_cast<std::uint32_t>(k_));
    v1::CreateCampaignResponse cr;
    auto ctx = rpc::NewClientContext(10s, worker);
    if (grpc::Status s = stubs_[0]->CreateCampaign(ctx.get(), c, &cr); !s.ok()) {
      throw std::runtime_error(s.error_message());
    }
    for (int first = 0; first < items; first += 500) {
      v1::EnqueueItemsRequest e;
      e.set_campaign_id(id);
      for (int i = first; i < std::min(items, first + 500); ++i) {
        v1::ItemInput* item = e.add_items();
        item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
        item->mutable_sample()->set_index(static_cast<std::uint64_t>(i));
        item->mutable_payload()->set_text(fmt::format("Subject: offer {}\n\nBuy now!", i));
        item->set_given_label(1);
        item->set_priority(static_cast<double>(i % 997));
      }
      v1::EnqueueItemsResponse er;
      auto ec = rpc::NewClientContext(60s, worker);
      if (grpc::Status s = stubs_[0]->EnqueueItems(ec.get(), e, &er); !s.ok()) {
        throw std::runtime_error(s.error_message());
      }
    }
  }

  // Fresh bulk loads have no planner statistics yet (autovacuum would get there within a minute);
  // without them the queue query sorts the whole campaign instead of walking its index.
  void Analyze() {
    auto pool = *pg::Pool::Create({.url = db_.url(), .max_size = 1});
    (void)pool->Run([](pqxx::work& tx) { tx.exec0("ANALYZE"); });
  }

  Result Run(const std::string& campaign, const std::vector<std::string>& tokens) {
    std::atomic<bool> measuring{false}, stop{false};
    std::atomic<std::int64_t> cycles{0}, errors{0};
    std::mutex mu;
    std::vector<double> lease_ms, submit_ms;
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < tokens.size(); ++r) {
      threads.emplace_back([&, r] {
        v1::FeedbackService::Stub& stub = *stubs_[r % stubs_.size()];
        std::vector<double> my_lease, my_submit;
        while (!stop) {
          v1::LeaseRequest lr;
          lr.set_campaign_id(campaign);
          lr.set_max_items(1);
          v1::LeaseResponse leased;
          const auto t0 = Clock::now();
          auto ctx = rpc::NewClientContext(10s, tokens[r]);
          grpc::Status s = stub.Lease(ctx.get(), lr, &leased);
          const auto t1 = Clock::now();
          if (!s.ok() || leased.items_size() == 0) {
            ++errors;
            std::this_thread::sleep_for(10ms);
            continue;
          }
          v1::SubmitRequest sr;
          sr.set_lease_id(leased.items(0).lease_id());
          sr.mutable_answer()->set_label_correct(r % 4 != 0);
          sr.set_seconds_spent(1);
          v1::SubmitResponse resp;
          auto sc = rpc::NewClientContext(10s, tokens[r]);
          s = stub.Submit(sc.get(), sr, &resp);
          const auto t2 = Clock::now();
          if (!s.ok()) {
            ++errors;
            continue;
          }
          if (measuring) {
            ++cycles;
            my_lease.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            my_submit.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
          }
        }
        std::lock_guard lock(mu);
        lease_ms.insert(lease_ms.end(), my_lease.begin(), my_lease.end());
        submit_ms.insert(submit_ms.end(), my_submit.begin(), my_submit.end());
      });
    }
    std::this_thread::sleep_for(1s);  // warm-up: connections, caches
    errors = 0;
    measuring = true;
    const auto start = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(seconds_));
    measuring = false;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
    for (auto& t : threads) t.join();
    return {static_cast<double>(cycles) / elapsed,
            Percentile(lease_ms, 0.5),
            Percentile(lease_ms, 0.99),
            Percentile(submit_ms, 0.5),
            Percentile(submit_ms, 0.99),
            errors};
  }

  // pgbench running the same two transactions as bare SQL on the same tables.
  double PgbenchCeiling(int clients) {
    auto pool = *pg::Pool::Create({.url = db_.url(), .max_size = 1});
    (void)pool->Run([&](pqxx::work& tx) {
      tx.exec0(fmt::format(
          "INSERT INTO feedback_campaigns (campaign_id, spec, ratings_per_item, lease_ttl_seconds, "
          "gold_share) VALUES ('pgbench', '', {0}, 120, 0); "
          "INSERT INTO feedback_items (campaign_id, dataset, sample_index, payload, given_label, "
          "priority) SELECT 'pgbench', 2, g, convert_to('Subject: offer', 'UTF8'), 1, g % 997 "
          "FROM generate_series(1, 200000) g",
          k_));
    });
    Analyze();
    const fs::path script = fs::temp_directory_path() / "feedback_bench_pgbench.sql";
    std::ofstream(script)
        << R"(\set r random(1, 1000000)
BEGIN;
WITH cand AS (SELECT item_id FROM feedback_items WHERE campaign_id = 'pgbench' AND NOT decided AND gold_answer IS NULL AND ratings_count + holds < )"
        << k_
        << R"( ORDER BY priority DESC, item_id LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE feedback_items i SET holds = i.holds + 1 FROM cand WHERE i.item_id = cand.item_id RETURNING i.item_id AS item \gset
INSERT INTO feedback_leases (item_id, campaign_id, rater_id, expire_time) VALUES (:item, 'pgbench', :r, now() + interval '120 seconds') RETURNING lease_id AS lease \gset
COMMIT;
BEGIN;
SELECT state FROM feedback_leases WHERE lease_id = :lease FOR UPDATE;
INSERT INTO feedback_ratings (lease_id, item_id, campaign_id, rater_id, answer, seconds_spent, server_seconds) VALUES (:lease, :item, 'pgbench', :r, 1, 1, 1);
UPDATE feedback_leases SET state = 1, end_time = now() WHERE lease_id = :lease;
UPDATE feedback_items SET ratings_count = ratings_count + 1, holds = holds - 1 WHERE item_id = :item;
COMMIT;
)";
    const std::string output = Shell(fmt::format("pgbench -n -c {} -j 2 -T {} -f {} '{}'", clients,
                                                 seconds_, script.string(), db_.url()));
    std::smatch m;
    static const std::regex kTps(R"(tps = ([0-9.]+) \(without initial connection time\))");
    if (!std::regex_search(output, m, kTps)) {
      std::cerr << "pgbench failed:\n" << output;
      return 0;
    }
    return std::stod(m[1]);
  }

 private:
  greenloop::testing::ScratchDatabase db_;
  const int seconds_;
  const int k_;
  pid_t pid_ = -1;
  fs::path log_;
  std::string target_;
  std::vector<std::unique_ptr<v1::FeedbackService::Stub>> stubs_;
};

int Main(int argc, char** argv) {
  std::string pg_url;
  std::int64_t seconds = 10, k = 3;
  std::vector<std::string> raters = {"16", "200"};
  config::Schema schema("feedback_bench");
  schema.Add("pg.url", &pg_url, "PostgreSQL server to use (a scratch database is made on it)")
      .Add("seconds", &seconds, "measured seconds per run", {.min = 1})
      .Add("raters", &raters, "concurrent raters per run")
      .Add("k", &k, "ratings per item", {.min = 1, .max = 15});
  if (absl::Status s = schema.Load(argc, argv); !s.ok()) {
    std::cerr << "feedback_bench: " << s.message() << "\n";
    return 2;
  }
  if (schema.help_requested()) {
    std::cout << schema.Usage();
    return 0;
  }
  if (pg_url.empty()) pg_url = greenloop::testing::TestPgUrl();
  Bench bench(pg_url, static_cast<int>(seconds), static_cast<int>(k));
  bench.StartService();
  const double ceiling = bench.PgbenchCeiling(16);
  double load[1] = {0};
  ::getloadavg(load, 1);
  std::cout << fmt::format(
      "machine: {} cores, load average {:.1f} at start; PostgreSQL on the same machine; k = {}; "
      "{} s per run\n",
      std::thread::hardware_concurrency(), load[0], k, seconds);
  std::cout << fmt::format("{:<34} {:>10} {:>9} {:>9} {:>10} {:>10} {:>8}\n", "run", "cycles/s",
                           "lease p50", "lease p99", "submit p50", "submit p99", "ceiling");
  std::cout << fmt::format("{:<34} {:>10.0f}\n", "pgbench bare SQL, 16 clients", ceiling);
  int run = 0;
  for (const std::string& n : raters) {
    const int count = std::stoi(n);
    const std::string campaign = fmt::format("bench-{}", run++);
    const int items = static_cast<int>((4000 * seconds + 20000) / k + 1000);
    bench.Campaign(campaign, items);
    bench.Analyze();
    Result r = bench.Run(campaign, bench.Tokens(count));
    std::cout << fmt::format(
        "{:<34} {:>10.0f} {:>7.1f}ms {:>7.1f}ms {:>8.1f}ms {:>8.1f}ms {:>7.0f}%{}\n",
        fmt::format("greenloop-feedback gRPC, {} raters", count), r.cycles_per_second,
        r.lease_p50_ms, r.lease_p99_ms, r.submit_p50_ms, r.submit_p99_ms,
        ceiling > 0 ? 100 * r.cycles_per_second / ceiling : 0,
        r.errors > 0 ? fmt::format("  ({} errors)", r.errors) : "");
  }
  return 0;
}

}  // namespace
}  // namespace greenloop::feedback

int main(int argc, char** argv) { return greenloop::feedback::Main(argc, argv); }
