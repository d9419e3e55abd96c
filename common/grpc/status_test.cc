#include "common/grpc/status.h"

#include <gtest/gtest.h>

#include <string>

namespace greenloop {
namespace {

TEST(ToGrpcStatus, OkStaysOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(ToGrpcStatus, KeepsCodeAndMessageForClientFacingCodes) {
  const struct {
    absl::Status in;
    grpc::StatusCode want;
  } cases[] = {
      {absl::InvalidArgumentError("k must be >= 1"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::NotFoundError("run 7"), grpc::StatusCode::NOT_FOUND},
      {absl::AlreadyExistsError("campaign c"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::FailedPreconditionError("lease expired"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::AbortedError("serialization failure"), grpc::StatusCode::ABORTED},
      {absl::UnavailableError("postgres down"), grpc::StatusCode::UNAVAILABLE},
      {absl::DeadlineExceededError("late"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::UnauthenticatedError("no token"), grpc::StatusCode::UNAUTHENTICATED},
      {absl::PermissionDeniedError("rater may not enqueue"), grpc::StatusCode::PERMISSION_DENIED},
      {absl::ResourceExhaustedError("rate limit"), grpc::StatusCode::RESOURCE_EXHAUSTED},
  };
  for (const auto& c : cases) {
    const grpc::Status got = ToGrpcStatus(c.in);
    EXPECT_EQ(got.error_code(), c.want) << c.in;
    EXPECT_EQ(got.error_message(), c.in.message()) << c.in;
  }
}

TEST(ToGrpcStatus, HidesInternalDetails) {
  const grpc::Status got = ToGrpcStatus(absl::InternalError("pqxx: relation x does not exist"));
  EXPECT_EQ(got.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(got.error_message().find("pqxx"), std::string::npos);
}

TEST(FromGrpcStatus, RoundTripsCodeAndMessage) {
  const absl::Status back =
      FromGrpcStatus(ToGrpcStatus(absl::FailedPreconditionError("lease 3 expired")));
  EXPECT_EQ(back.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(back.message(), "lease 3 expired");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

}  // namespace
}  // namespace greenloop
