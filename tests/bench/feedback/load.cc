#include "tests/bench/feedback/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <utility>

#include "common/grpc/channel.h"
#include "fmt/format.h"

namespace greenloop::feedback::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Leases one item for `token`; the lease id, or empty when none came.
// The first failure's text, for the report.
std::mutex first_error_mu;
std::string first_error;

void NoteError(std::string_view rpc, const grpc::Status& s) {
  std::lock_guard lock(first_error_mu);
  if (first_error.empty())
    first_error =
        fmt::format("{}: {} ({})", rpc, s.error_message(), static_cast<int>(s.error_code()));
}

std::string LeaseOne(v1::FeedbackService::Stub& stub, const std::string& campaign_id,
                     const std::string& token) {
  v1::LeaseRequest req;
  req.set_campaign_id(campaign_id);
  req.set_max_items(1);
  v1::LeaseResponse resp;
  auto ctx = rpc::NewClientContext(10s, token);
  if (grpc::Status s = stub.Lease(ctx.get(), req, &resp); !s.ok()) {
    NoteError("Lease", s);
    return "";
  }
  if (resp.items_size() == 0) {
    NoteError("Lease", grpc::Status(grpc::StatusCode::NOT_FOUND, "no item leased"));
    return "";
  }
  return resp.items(0).lease_id();
}

bool SubmitOne(v1::FeedbackService::Stub& stub, const std::string& lease_id,
               const std::string& token, bool answer) {
  v1::SubmitRequest req;
  req.set_lease_id(lease_id);
  req.mutable_answer()->set_label_correct(answer);
  req.set_seconds_spent(1);
  v1::SubmitResponse resp;
  auto ctx = rpc::NewClientContext(10s, token);
  grpc::Status s = stub.Submit(ctx.get(), req, &resp);
  if (!s.ok()) NoteError("Submit", s);
  return s.ok();
}

// Latencies gathered by many threads.
struct Samples {
  std::mutex mu;
  std::vector<double> lease, submit, cycle;
  void Add(const std::vector<double>& l, const std::vector<double>& s,
           const std::vector<double>& c) {
    std::lock_guard lock(mu);
    lease.insert(lease.end(), l.begin(), l.end());
    submit.insert(submit.end(), s.begin(), s.end());
    cycle.insert(cycle.end(), c.begin(), c.end());
  }
  void Fill(LoadResult& r) {
    r.lease_p50_ms = Percentile(lease, 0.5);
    r.lease_p99_ms = Percentile(lease, 0.99);
    r.submit_p50_ms = Percentile(submit, 0.5);
    r.submit_p99_ms = Percentile(submit, 0.99);
    r.cycle_p50_ms = Percentile(cycle, 0.5);
    r.cycle_p99_ms = Percentile(cycle, 0.99);
  }
};

}  // namespace

std::string TakeFirstError() {
  std::lock_guard lock(first_error_mu);
  return std::exchange(first_error, std::string());
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

LoadResult ClosedLoop(const ServiceUnderTest& service, const std::string& campaign_id,
                      const std::vector<std::string>& raters, int seconds) {
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<std::int64_t> cycles{0}, errors{0};
  Samples samples;
  std::vector<std::thread> threads;
  for (std::size_t r = 0; r < raters.size(); ++r) {
    threads.emplace_back([&, r] {
      v1::FeedbackService::Stub& stub = service.stub(r);
      std::vector<double> lease_ms, submit_ms;
      while (!stop) {
        const bool counted = measuring;
        const auto t0 = Clock::now();
        const std::string lease = LeaseOne(stub, campaign_id, raters[r]);
        const auto t1 = Clock::now();
        const bool ok = !lease.empty() && SubmitOne(stub, lease, raters[r], r % 4 != 0);
        const auto t2 = Clock::now();
        if (!ok) {
          if (counted) ++errors;
          std::this_thread::sleep_for(10ms);
          continue;
        }
        if (counted && measuring) {
          ++cycles;
          lease_ms.push_back(Ms(t1 - t0));
          submit_ms.push_back(Ms(t2 - t1));
        }
      }
      samples.Add(lease_ms, submit_ms, {});
    });
  }
  std::this_thread::sleep_for(1s);  // warm-up: connections, token cache, plans
  measuring = true;
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  measuring = false;
  LoadResult out;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& t : threads) t.join();
  out.cycles = cycles;
  out.errors = errors;
  samples.Fill(out);
  return out;
}

namespace {

// The open loop's schedule: when each rater is next due, earliest first.
struct Due {
  Clock::time_point at;
  std::size_t rater;
  bool operator>(const Due& o) const { return at > o.at; }
};

}  // namespace

LoadResult OpenLoop(const ServiceUnderTest& service, const std::string& campaign_id,
                    const std::vector<std::string>& raters, double think_seconds, int seconds,
                    int workers) {
  std::vector<std::string> leases(raters.size());
  for (std::size_t r = 0; r < raters.size(); ++r) {
    leases[r] = LeaseOne(service.stub(r), campaign_id, raters[r]);
  }
  std::mt19937_64 rng(42);
  std::exponential_distribution<double> think(1.0 / think_seconds);
  auto after = [&](Clock::time_point t) {
    return t +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(think(rng)));
  };
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::mutex mu;
  std::condition_variable cv;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due;
  std::int64_t scheduled = 0;
  for (std::size_t r = 0; r < raters.size(); ++r) due.push({after(start), r});
  std::atomic<std::int64_t> cycles{0}, errors{0};
  Samples samples;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      std::vector<double> cycle_ms;
      std::unique_lock lock(mu);
      while (true) {
        if (due.empty() || due.top().at >= end) break;
        if (const auto at = due.top().at; Clock::now() < at) {
          cv.wait_until(lock, at);
          continue;  // the head may have changed meanwhile
        }
        const Due d = due.top();
        due.pop();
        ++scheduled;
        lock.unlock();
        v1::FeedbackService::Stub& stub = service.stub(d.rater);
        bool ok = leases[d.rater].empty() ||
                  SubmitOne(stub, leases[d.rater], raters[d.rater], d.rater % 4 != 0);
        leases[d.rater] = LeaseOne(stub, campaign_id, raters[d.rater]);
        ok = ok && !leases[d.rater].empty();
        const auto done = Clock::now();
        if (ok) {
          ++cycles;
          cycle_ms.push_back(Ms(done - d.at));
        } else {
          ++errors;
        }
        lock.lock();
        due.push({after(d.at), d.rater});
        cv.notify_one();
      }
      lock.unlock();
      cv.notify_all();
      samples.Add({}, {}, cycle_ms);
    });
  }
  for (auto& t : threads) t.join();
  LoadResult out;
  out.seconds = seconds;
  out.cycles = cycles;
  out.errors = errors;
  out.offered_per_s = static_cast<double>(scheduled) / seconds;
  samples.Fill(out);
  return out;
}

}  // namespace greenloop::feedback::bench
