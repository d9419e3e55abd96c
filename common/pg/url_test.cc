#include "common/pg/url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"

namespace greenloop::pg {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(PgUrlRedactTest, MasksUriPassword) {
  EXPECT_EQ(RedactUrl("postgresql://greenloop:s3cret@127.0.0.1:5432/greenloop"),
            "postgresql://greenloop:***@127.0.0.1:5432/greenloop");
  EXPECT_EQ(RedactUrl("postgres://u:s3cret@h"), "postgres://u:***@h");
}

TEST(PgUrlRedactTest, MasksPasswordContainingAtAndColon) {
  EXPECT_EQ(RedactUrl("postgresql://u:p@ss:w@host:1/db?sslmode=disable"),
            "postgresql://u:***@host:1/db?sslmode=disable");
}

TEST(PgUrlRedactTest, MasksPasswordQueryParameter) {
  EXPECT_EQ(RedactUrl("postgresql://u@h/db?sslmode=disable&password=s3cret&application_name=x"),
            "postgresql://u@h/db?sslmode=disable&password=***&application_name=x");
}

TEST(PgUrlRedactTest, LeavesUrlWithoutPasswordAlone) {
  const std::string url = "postgresql://greenloop@127.0.0.1:5432/greenloop?connect_timeout=5";
  EXPECT_EQ(RedactUrl(url), url);
  EXPECT_EQ(RedactUrl("host=h port=1 dbname=d"), "host=h port=1 dbname=d");
}

TEST(PgUrlRedactTest, MasksKeywordPassword) {
  EXPECT_EQ(RedactUrl("host=h password=s3cret dbname=d"), "host=h password=*** dbname=d");
  EXPECT_EQ(RedactUrl("host=h password = 's3 c\\'ret' dbname=d"), "host=h password = *** dbname=d");
}

TEST(PgUrlRedactTest, MasksEverythingAfterPasswordInGarbage) {
  const std::string redacted = RedactUrl("host=h password='unterminated s3cret");
  EXPECT_THAT(redacted, Not(HasSubstr("s3cret")));
  EXPECT_THAT(redacted, HasSubstr("password=***"));
}

TEST(PgUrlDescribeTargetTest, HostPortDatabaseWithoutPassword) {
  EXPECT_EQ(*DescribeTarget("postgresql://greenloop:s3cret@127.0.0.1:5432/greenloop"),
            "127.0.0.1:5432/greenloop");
  EXPECT_EQ(*DescribeTarget("host=db.internal port=6543 dbname=feedback password=s3cret"),
            "db.internal:6543/feedback");
}

TEST(PgUrlDescribeTargetTest, FillsLibpqDefaults) {
  EXPECT_EQ(*DescribeTarget("postgresql:///energy"), "localhost:5432/energy");
  EXPECT_EQ(*DescribeTarget("postgresql://alice@10.0.0.1"), "10.0.0.1:5432/alice");
}

TEST(PgUrlDescribeTargetTest, RejectsMalformedUrlWithoutShowingPassword) {
  absl::StatusOr<std::string> target = DescribeTarget("postgresql://u:s3cret@h/db?bogus=1");
  ASSERT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(target.status().message(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(target.status().message(), HasSubstr("postgresql://u:***@h/db?bogus=1"));
}

TEST(PgUrlPasswordOfTest, FindsPasswordInEitherForm) {
  EXPECT_EQ(PasswordOf("postgresql://u:s%40cret@h/db"), "s@cret");
  EXPECT_EQ(PasswordOf("host=h password='a b'"), "a b");
  EXPECT_EQ(PasswordOf("postgresql://u@h/db"), "");
}

TEST(PgUrlWithDatabaseTest, ReplacesUriPath) {
  EXPECT_EQ(*WithDatabase("postgresql://u@127.0.0.1:5432/greenloop", "scratch_1"),
            "postgresql://u@127.0.0.1:5432/scratch_1");
  EXPECT_EQ(*WithDatabase("postgresql://u@h:1", "s"), "postgresql://u@h:1/s");
  EXPECT_EQ(*WithDatabase("postgresql://u@h:1/old?sslmode=disable", "s"),
            "postgresql://u@h:1/s?sslmode=disable");
  EXPECT_EQ(*WithDatabase("postgresql://u@h:1?sslmode=disable", "s"),
            "postgresql://u@h:1/s?sslmode=disable");
}

TEST(PgUrlWithDatabaseTest, LibpqSeesTheNewDatabase) {
  for (const std::string url : {"postgresql://u@h:1/old", "postgresql://u@h:1/old?dbname=older",
                                "host=h port=1 dbname=old", "host=h port=1"}) {
    absl::StatusOr<std::string> replaced = WithDatabase(url, "new db");
    ASSERT_TRUE(replaced.ok()) << url;
    EXPECT_EQ(*DescribeTarget(*replaced), "h:1/new db") << url << " -> " << *replaced;
  }
  EXPECT_EQ(WithDatabase("postgresql://h/db", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PgUrlWithDefaultParameterTest, AddsUnlessUrlSetsIt) {
  EXPECT_EQ(WithDefaultParameter("postgresql://h/db", "connect_timeout", "5"),
            "postgresql://h/db?connect_timeout=5");
  EXPECT_EQ(WithDefaultParameter("postgresql://h/db?sslmode=disable", "connect_timeout", "5"),
            "postgresql://h/db?sslmode=disable&connect_timeout=5");
  EXPECT_EQ(WithDefaultParameter("postgresql://h/db?connect_timeout=9", "connect_timeout", "5"),
            "postgresql://h/db?connect_timeout=9");
  EXPECT_EQ(WithDefaultParameter("host=h", "connect_timeout", "5"), "host=h connect_timeout='5'");
  EXPECT_EQ(WithDefaultParameter("host=h connect_timeout=9", "connect_timeout", "5"),
            "host=h connect_timeout=9");
}

}  // namespace
}  // namespace greenloop::pg
