#include "tests/bench/feedback/service_under_test.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/grpc/channel.h"
#include "fmt/format.h"

namespace greenloop::feedback::bench {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

void Check(const grpc::Status& s, std::string_view what) {
  if (!s.ok()) throw std::runtime_error(fmt::format("{}: {}", what, s.error_message()));
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

ServiceUnderTest::ServiceUnderTest(const std::string& db_url, std::vector<std::string> extra) {
  log_ = fs::temp_directory_path() / fmt::format("feedback-bench-{}.log", ::getpid());
  std::vector<std::string> args = {GREENLOOP_FEEDBACK_BIN,
                                   "--config",
                                   GREENLOOP_FEEDBACK_YAML,
                                   "--pg.url=" + db_url,
                                   std::string("--auth.bootstrap_admin_token=") + kBenchAdminToken,
                                   "--grpc.address=127.0.0.1:0",
                                   "--http.address=127.0.0.1:0",
                                   "--metrics.address=127.0.0.1:0",
                                   "--rate_limit.requests_per_second=0"};
  args.insert(args.end(), extra.begin(), extra.end());
  pid_ = ::fork();
  if (pid_ == 0) {
    if (std::freopen(log_.c_str(), "w", stdout) == nullptr) ::_exit(127);
    ::dup2(::fileno(stdout), STDERR_FILENO);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  static const std::regex kPort(R"(grpc_port=(\d+))");
  for (int i = 0; i < 400 && stubs_.empty(); ++i) {
    std::smatch m;
    const std::string text = ReadAll(log_);
    if (!std::regex_search(text, m, kPort)) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    const std::string target = fmt::format("127.0.0.1:{}", m[1].str());
    for (int c = 0; c < 8; ++c) {
      grpc::ChannelArguments channel_args;
      channel_args.SetInt("grpc.channel_id", c);  // distinct connections
      stubs_.push_back(v1::FeedbackService::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), channel_args)));
    }
  }
  if (stubs_.empty()) {
    throw std::runtime_error("greenloop-feedback did not start; see " + log_.string());
  }
  worker_token_ = Token(v1::ROLE_WORKER, "bench-trainer");
}

ServiceUnderTest::~ServiceUnderTest() {
  stubs_.clear();
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ignored;
  fs::remove(log_, ignored);
}

std::string ServiceUnderTest::Token(int role, const std::string& name) {
  v1::CreateTokenRequest req;
  req.set_role(static_cast<v1::Role>(role));
  req.set_name(name);
  v1::CreateTokenResponse resp;
  auto ctx = rpc::NewClientContext(10s, kBenchAdminToken);
  Check(stubs_[0]->CreateToken(ctx.get(), req, &resp), "CreateToken");
  return resp.token();
}

std::vector<std::string> ServiceUnderTest::RaterTokens(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back(Token(v1::ROLE_RATER, fmt::format("bench-rater-{}", i)));
  return out;
}

void ServiceUnderTest::FillCampaign(const std::string& campaign_id, int items, int k) {
  v1::CreateCampaignRequest c;
  c.set_campaign_id(campaign_id);
  c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
  c.mutable_spec()->add_labels()->set_name("ham");
  c.mutable_spec()->add_labels()->set_name("spam");
  c.mutable_spec()->set_ratings_per_item(static_cast<std::uint32_t>(k));
  v1::CreateCampaignResponse cr;
  auto ctx = rpc::NewClientContext(10s, worker_token_);
  Check(stubs_[0]->CreateCampaign(ctx.get(), c, &cr), "CreateCampaign");
  for (int first = 0; first < items; first += 500) {
    v1::EnqueueItemsRequest e;
    e.set_campaign_id(campaign_id);
    for (int i = first; i < std::min(items, first + 500); ++i) {
      v1::ItemInput* item = e.add_items();
      item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
      item->mutable_sample()->set_index(static_cast<std::uint64_t>(i));
      item->mutable_payload()->set_text(fmt::format("Subject: offer {}\n\nBuy now!", i));
      item->set_given_label(1);
      item->set_priority(static_cast<double>(i % 997));
    }
    v1::EnqueueItemsResponse er;
    auto ec = rpc::NewClientContext(60s, worker_token_);
    Check(stubs_[0]->EnqueueItems(ec.get(), e, &er), "EnqueueItems");
  }
}

void ServiceUnderTest::CloseCampaign(const std::string& campaign_id) {
  v1::CloseCampaignRequest req;
  req.set_campaign_id(campaign_id);
  v1::CloseCampaignResponse resp;
  auto ctx = rpc::NewClientContext(10s, worker_token_);
  Check(stubs_[0]->CloseCampaign(ctx.get(), req, &resp), "CloseCampaign");
}

}  // namespace greenloop::feedback::bench
