#include "services/trainer/core/distributed.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cstring>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace greenloop::trainer {
namespace {

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host.starts_with("127.") || host == "::1";
}

class GlooCollective final : public Collective {
 public:
  GlooCollective(c10::intrusive_ptr<c10d::Store> store,
                 c10::intrusive_ptr<c10d::ProcessGroupGloo> group, std::uint32_t rank,
                 std::uint32_t world, std::chrono::milliseconds timeout)
      : store_(std::move(store)),
        group_(std::move(group)),
        rank_(rank),
        world_(world),
        timeout_(timeout) {}

  std::uint32_t rank() const override { return rank_; }
  std::uint32_t world_size() const override { return world_; }

  absl::Status AllReduceSum(std::span<float> values) override {
    try {
      std::vector<at::Tensor> tensors = {torch::from_blob(
          values.data(), {static_cast<std::int64_t>(values.size())}, torch::kFloat32)};
      group_->allreduce(tensors)->wait(timeout_);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Lost("all-reduce", e);
    }
  }

  absl::Status Broadcast(std::string& bytes) override {
    try {
      std::vector<at::Tensor> size = {
          torch::tensor({static_cast<std::int64_t>(rank_ == 0 ? bytes.size() : 0)}, torch::kInt64)};
      group_->broadcast(size)->wait(timeout_);
      const std::int64_t n = size[0].item<std::int64_t>();
      if (rank_ != 0) bytes.assign(static_cast<std::size_t>(n), '\0');
      if (n == 0) return absl::OkStatus();
      std::vector<at::Tensor> data = {torch::from_blob(bytes.data(), {n}, torch::kUInt8)};
      group_->broadcast(data)->wait(timeout_);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Lost("broadcast", e);
    }
  }

  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    try {
      const std::uint64_t round = gathers_++;
      store_->set(fmt::format("gather/{}/{}", round, rank_),
                  std::vector<std::uint8_t>(mine.begin(), mine.end()));
      std::vector<std::string> out;
      for (std::uint32_t r = 0; r < world_; ++r) {
        std::vector<std::uint8_t> v = store_->get(fmt::format("gather/{}/{}", round, r));
        out.emplace_back(v.begin(), v.end());
      }
      return out;
    } catch (const std::exception& e) {
      return Lost("all-gather", e);
    }
  }

 private:
  absl::Status Lost(std::string_view what, const std::exception& e) const {
    return absl::UnavailableError(fmt::format(
        "rank {} of {}: {} failed (another rank died or is unreachable; collective timeout {} "
        "ms): {}",
        rank_, world_, what, timeout_.count(), FirstLine(e.what())));
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  const std::uint32_t rank_;
  const std::uint32_t world_;
  const std::chrono::milliseconds timeout_;
  std::uint64_t gathers_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> ConnectGloo(const GlooOptions& o) {
  if (o.world_size == 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        fmt::format("rank {} is not below world_size {}", o.rank, o.world_size));
  }
  const std::string where = fmt::format("{}:{}", o.rendezvous_host, o.rendezvous_port);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions opts;
    opts.port = o.rendezvous_port;
    opts.isServer = o.rank == 0;
    opts.waitWorkers = false;
    opts.timeout = o.rendezvous_timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(o.rendezvous_host, opts);
    store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("greenloop/{}", o.run_id), tcp);
  } catch (const std::exception& e) {
    return absl::UnavailableError(fmt::format("rendezvous at {} ({}): {}", where,
                                              o.rank == 0 ? "binding it" : "connecting to it",
                                              FirstLine(e.what())));
  }
  try {
    store->setTimeout(o.rendezvous_timeout);
    if (store->add(fmt::format("rank/{}", o.rank), 1) > 1) {
      return absl::InvalidArgumentError(fmt::format(
          "rendezvous at {}: rank {} joined twice (two workers were given the same rank)", where,
          o.rank));
    }
    const std::int64_t arrived = store->add("joined", 1);
    if (arrived > static_cast<std::int64_t>(o.world_size)) {
      return absl::InvalidArgumentError(fmt::format(
          "rendezvous at {}: more ranks than world_size {} showed up", where, o.world_size));
    }
    const auto deadline = std::chrono::steady_clock::now() + o.rendezvous_timeout;
    std::int64_t seen = arrived;
    while (seen < static_cast<std::int64_t>(o.world_size)) {
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(fmt::format(
            "rendezvous at {} timed out after {} ms: {} of {} ranks showed up (does world_size "
            "match the ranks started?)",
            where, o.rendezvous_timeout.count(), seen, o.world_size));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      seen = store->add("joined", 0);
    }
    if (seen > static_cast<std::int64_t>(o.world_size)) {
      return absl::InvalidArgumentError(fmt::format(
          "rendezvous at {}: {} ranks showed up for world_size {}", where, seen, o.world_size));
    }
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = o.collective_timeout;
    if (!o.interface.empty()) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(o.interface));
    } else if (IsLoopback(o.rendezvous_host)) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("pg", store), static_cast<int>(o.rank),
        static_cast<int>(o.world_size), options);
    return std::unique_ptr<Collective>(
        std::make_unique<GlooCollective>(store, group, o.rank, o.world_size, o.collective_timeout));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        fmt::format("rendezvous at {} failed: {}", where, FirstLine(e.what())));
  }
}

}  // namespace greenloop::trainer
