#include "common/status/status.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace greenloop {
namespace {

TEST(StatusFromCurrentException, NamesWhereAndWhat) {
  absl::Status s;
  try {
    throw std::runtime_error("boom");
  } catch (...) {
    s = StatusFromCurrentException("Lease");
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "Lease: boom");
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  GREENLOOP_ASSIGN_OR_RETURN(int h, Half(x));
  GREENLOOP_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  GREENLOOP_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(Macros, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

}  // namespace
}  // namespace greenloop
