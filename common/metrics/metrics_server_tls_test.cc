// The trap of issue 15, reproduced without OpenBLAS: a process whose static TLS leaves civetweb's
// fixed 100 KiB thread stacks no room cannot start the metrics server, and Start() says why
// instead of CivetServer's "null context".
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstddef>

#include "absl/status/status.h"
#include "common/metrics/metrics_server.h"

namespace greenloop::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 128 KiB of thread-local storage in the executable itself, which is always static TLS. Every
// thread's stack must hold all of it: more than civetweb's 100 KiB stacks can. (In
// greenloop-trainer, LibTorch's 54 KiB plus libopenblas0-pthread's 60 KiB did the same.)
thread_local std::array<std::byte, 128 * 1024> big_tls{};

TEST(MetricsServerTlsTest, StartNamesTheStaticTlsTrap) {
  // Uses the array where the compiler cannot see, so that the linker keeps the segment.
  asm volatile("" : : "r"(big_tls.data()) : "memory");
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0");
  ASSERT_FALSE(server.ok()) << "civetweb started threads with 128 KiB of static TLS; "
                               "the stack bound this test relies on changed";
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(server.status().message(), HasSubstr("Cannot create threads"));
  EXPECT_THAT(server.status().message(), HasSubstr("static TLS"));
  EXPECT_THAT(server.status().message(), Not(HasSubstr("null context")));
}

}  // namespace
}  // namespace greenloop::metrics
