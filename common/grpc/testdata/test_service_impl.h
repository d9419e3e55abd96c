// Test-only: TestService's implementation and a fixture-free way to run it on loopback.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/grpc/auth.h"
#include "common/grpc/status.h"
#include "common/grpc/testdata/test_service.grpc.pb.h"
#include "common/status/status.h"

namespace greenloop::rpc::testdata {

// Echo and AdminEcho authorize like production handlers do; Sleep and Flaky need no token.
class TestServiceImpl final : public TestService::Service {
 public:
  explicit TestServiceImpl(const Authenticator* authenticator) : authenticator_(authenticator) {}

  ::grpc::Status Echo(::grpc::ServerContext* context, const EchoRequest* request,
                      EchoReply* reply) override {
    absl::StatusOr<Principal> caller = Authorize(*context, *authenticator_, {});
    if (!caller.ok()) return ToGrpcStatus(caller.status());
    reply->set_text(request->text());
    reply->set_principal(caller->name);
    return ::grpc::Status::OK;
  }

  ::grpc::Status AdminEcho(::grpc::ServerContext* context, const EchoRequest* request,
                           EchoReply* reply) override {
    absl::StatusOr<Principal> caller = Authorize(*context, *authenticator_, {Role::kAdmin});
    if (!caller.ok()) return ToGrpcStatus(caller.status());
    reply->set_text(request->text());
    reply->set_principal(caller->name);
    return ::grpc::Status::OK;
  }

  ::grpc::Status Sleep(::grpc::ServerContext* context, const EchoRequest* request,
                       EchoReply* reply) override {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(request->sleep_ms());
    while (std::chrono::steady_clock::now() < until) {
      if (context->IsCancelled()) {
        return ::grpc::Status(::grpc::StatusCode::CANCELLED, "cancelled while sleeping");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    reply->set_text(request->text());
    return ::grpc::Status::OK;
  }

  ::grpc::Status Flaky(::grpc::ServerContext* /*context*/, const EchoRequest* request,
                       EchoReply* reply) override {
    int attempt = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt = ++attempts_[request->key()];
    }
    if (attempt <= request->fail_first()) {
      return ::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "flaky: try again");
    }
    reply->set_attempt(attempt);
    return ::grpc::Status::OK;
  }

 private:
  const Authenticator* authenticator_;
  std::mutex mu_;
  std::map<std::string, int> attempts_;
};

}  // namespace greenloop::rpc::testdata
