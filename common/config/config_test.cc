#include "common/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace greenloop::config {
namespace {

using ::testing::HasSubstr;

struct Config {
  std::int64_t grpc_port = 7101;
  std::string node = "node-a";
  std::string pg_url = "postgresql://localhost/greenloop";
  double pue = 1.2;
  bool tls = false;
  std::chrono::milliseconds interval{1000};
  std::vector<std::string> domains = {"package", "dram"};
  std::string log_format = "text";
  int workers = 4;
};

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() : schema_("greenloop-test") {
    schema_.Add("grpc.port", &cfg_.grpc_port, "gRPC port", {.min = 0, .max = 65535})
        .Add("node.name", &cfg_.node, "node name")
        .Add("pg.url", &cfg_.pg_url, "PostgreSQL url", {.secret = true})
        .Add("carbon.pue", &cfg_.pue, "power usage effectiveness", {.min = 1.0, .max = 3.0})
        .Add("grpc.tls", &cfg_.tls, "serve TLS")
        .Add("sample.interval", &cfg_.interval, "sampling interval", {.min = 10})
        .Add("rapl.domains", &cfg_.domains, "domains to read")
        .Add("log.format", &cfg_.log_format, "log format", {.one_of = {"text", "json"}})
        .Add("workers", &cfg_.workers, "worker threads", {.min = 1});
  }

  std::string WriteFile(const std::string& text) {
    const auto path =
        std::filesystem::path(::testing::TempDir()) /
        (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".yaml");
    std::ofstream(path) << text;
    return path.string();
  }

  absl::Status LoadArgs(std::vector<const char*> args, const Environment& env = {}) {
    args.insert(args.begin(), "greenloop-test");
    return schema_.Load(static_cast<int>(args.size()), args.data(), env);
  }

  Config cfg_;
  Schema schema_;
};

TEST_F(ConfigTest, DefaultsStayWhenNothingIsGiven) {
  ASSERT_TRUE(LoadArgs({}).ok());
  EXPECT_EQ(cfg_.grpc_port, 7101);
  EXPECT_EQ(cfg_.interval, std::chrono::seconds(1));
  EXPECT_EQ(schema_.SourceOf("grpc.port"), Source::kDefault);
}

TEST_F(ConfigTest, YamlNestedAndDottedKeysAreRead) {
  const std::string path = WriteFile(
      "grpc:\n  port: 7200\n  tls: yes\nnode.name: rack3-n7\ncarbon:\n  pue: 1.5\n"
      "sample:\n  interval: 250ms\nrapl:\n  domains: [package, core, psys]\n");
  ASSERT_TRUE(schema_.LoadFile(path).ok());
  EXPECT_EQ(cfg_.grpc_port, 7200);
  EXPECT_TRUE(cfg_.tls);
  EXPECT_EQ(cfg_.node, "rack3-n7");
  EXPECT_DOUBLE_EQ(cfg_.pue, 1.5);
  EXPECT_EQ(cfg_.interval, std::chrono::milliseconds(250));
  EXPECT_EQ(cfg_.domains, (std::vector<std::string>{"package", "core", "psys"}));
  EXPECT_EQ(schema_.SourceOf("grpc.port"), Source::kFile);
}

TEST_F(ConfigTest, EnvironmentOverridesFileAndFlagsOverrideEnvironment) {
  const std::string path = WriteFile("grpc:\n  port: 7200\nnode:\n  name: from-file\n");
  const Environment env = {{"GREENLOOP_CONFIG", path},
                           {"GREENLOOP_GRPC_PORT", "7300"},
                           {"GREENLOOP_NODE_NAME", "from-env"},
                           {"GREENLOOP_RAPL_DOMAINS", "package, dram"},
                           {"GREENLOOP_SOMETHING_ELSE", "ignored: other binaries' keys"}};
  ASSERT_TRUE(LoadArgs({"--node.name=from-flag"}, env).ok());
  EXPECT_EQ(cfg_.grpc_port, 7300);
  EXPECT_EQ(cfg_.node, "from-flag");
  EXPECT_EQ(cfg_.domains, (std::vector<std::string>{"package", "dram"}));
  EXPECT_EQ(schema_.SourceOf("grpc.port"), Source::kEnvironment);
  EXPECT_EQ(schema_.SourceOf("node.name"), Source::kFlag);
}

TEST_F(ConfigTest, FlagsTakeSeparateValuesAndBareBools) {
  ASSERT_TRUE(LoadArgs({"--grpc.port", "9000", "--grpc.tls", "--sample.interval=2m"}).ok());
  EXPECT_EQ(cfg_.grpc_port, 9000);
  EXPECT_TRUE(cfg_.tls);
  EXPECT_EQ(cfg_.interval, std::chrono::minutes(2));
}

TEST_F(ConfigTest, TypoedFileKeyIsRejectedWithLineAndSuggestion) {
  const std::string path = WriteFile("grpc:\n  prot: 7200\n");
  const absl::Status s = schema_.LoadFile(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(":2: unknown key 'grpc.prot' (did you mean 'grpc.port'?)"));
}

TEST_F(ConfigTest, MissingFileIsNotFoundNamingThePath) {
  const absl::Status s = schema_.LoadFile("/nonexistent/greenloop.yaml");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'/nonexistent/greenloop.yaml' does not exist"));
}

TEST_F(ConfigTest, MalformedYamlNamesLine) {
  const absl::Status s = schema_.LoadFile(WriteFile("grpc:\n  port: [1, 2\n"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not valid YAML"));
}

// Issue 17, hole 8: a secret comes from a file (a mounted Secret), not the process environment:
// GREENLOOP_<KEY>_FILE names it, one trailing newline is dropped, and a flag still wins.
TEST_F(ConfigTest, AVariableEndingInFileReadsTheValueFromThatFile) {
  const std::string url_file = WriteFile("postgresql://u:s3cret@db/greenloop\n");
  ASSERT_TRUE(LoadArgs({}, {{"GREENLOOP_PG_URL_FILE", url_file}}).ok());
  EXPECT_EQ(cfg_.pg_url, "postgresql://u:s3cret@db/greenloop");
  EXPECT_EQ(schema_.SourceOf("pg.url"), Source::kEnvironment);

  ASSERT_TRUE(
      LoadArgs({"--pg.url=postgresql://flag/db"}, {{"GREENLOOP_PG_URL_FILE", url_file}}).ok());
  EXPECT_EQ(cfg_.pg_url, "postgresql://flag/db");

  const absl::Status both =
      LoadArgs({}, {{"GREENLOOP_PG_URL_FILE", url_file}, {"GREENLOOP_PG_URL", "postgresql://x"}});
  EXPECT_EQ(both.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(both.message(), HasSubstr("both GREENLOOP_PG_URL and GREENLOOP_PG_URL_FILE"));

  const absl::Status missing = LoadArgs({}, {{"GREENLOOP_PG_URL_FILE", "/nonexistent/url"}});
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("cannot read '/nonexistent/url' for pg.url"));

  const absl::Status bad_port = LoadArgs({}, {{"GREENLOOP_GRPC_PORT_FILE", WriteFile("70000\n")}});
  EXPECT_THAT(bad_port.message(), HasSubstr("GREENLOOP_GRPC_PORT_FILE"));
  EXPECT_THAT(bad_port.message(), HasSubstr("out of range"));
}

// Found by tests/fuzz/yaml_fuzz: a complex key (`? {...}`) threw out of the loader and ended the
// process. It is bad input, and says so.
TEST_F(ConfigTest, AKeyThatIsNotAPlainNameIsRefusedNotThrown) {
  for (const char* text : {"\n?  level: x\n", "? [a, b]\n: 1\n", "grpc:\n  ? {x: 1}\n  : 2\n"}) {
    const absl::Status s = schema_.LoadFile(WriteFile(text));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), HasSubstr("keys must be plain names")) << text;
  }
}

TEST_F(ConfigTest, BadValuesNameKeyAndSource) {
  EXPECT_THAT(LoadArgs({"--grpc.port=abc"}).message(),
              HasSubstr("flag --grpc.port: grpc.port: 'abc' is not an integer"));
  EXPECT_THAT(LoadArgs({}, {{"GREENLOOP_GRPC_PORT", "70000"}}).message(),
              HasSubstr("environment GREENLOOP_GRPC_PORT: grpc.port: 70000 is out of range"));
  EXPECT_THAT(schema_.LoadFile(WriteFile("carbon:\n  pue: 0.5\n")).message(),
              HasSubstr("carbon.pue: 0.5 is out of range [1, 3]"));
  EXPECT_THAT(LoadArgs({"--grpc.tls=maybe"}).message(), HasSubstr("is not a boolean"));
  EXPECT_THAT(LoadArgs({"--sample.interval=5"}).message(), HasSubstr("is not a duration"));
  EXPECT_THAT(LoadArgs({"--sample.interval=1ms"}).message(), HasSubstr("out of range"));
  EXPECT_THAT(LoadArgs({"--log.format=xml"}).message(),
              HasSubstr("'xml' is not one of: text, json"));
  EXPECT_THAT(LoadArgs({"--workers=0"}).message(), HasSubstr("workers: 0 is out of range"));
  EXPECT_THAT(schema_.LoadFile(WriteFile("grpc:\n  port: [1, 2]\n")).message(),
              HasSubstr("grpc.port: expects a single int, not a list"));
}

TEST_F(ConfigTest, UnknownFlagAndPositionalAreRejected) {
  EXPECT_THAT(LoadArgs({"--node.nmae=x"}).message(),
              HasSubstr("unknown flag '--node.nmae' (did you mean 'node.name'?)"));
  EXPECT_THAT(LoadArgs({"stray"}).message(), HasSubstr("unexpected argument 'stray'"));
  EXPECT_THAT(LoadArgs({"--grpc.port"}).message(), HasSubstr("--grpc.port needs a value"));
}

TEST_F(ConfigTest, SecretsNeverPrinted) {
  ASSERT_TRUE(LoadArgs({"--pg.url=postgresql://u:hunter2@db/greenloop"}).ok());
  EXPECT_EQ(cfg_.pg_url, "postgresql://u:hunter2@db/greenloop");
  EXPECT_THAT(schema_.Dump(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(schema_.Dump(), HasSubstr("pg.url = <redacted>  # flag"));
  EXPECT_THAT(schema_.Usage(), Not(HasSubstr("localhost/greenloop")));
}

TEST_F(ConfigTest, HelpIsReportedAndUsageListsEveryKeyWithItsEnvironmentVariable) {
  ASSERT_TRUE(LoadArgs({"--help"}).ok());
  EXPECT_TRUE(schema_.help_requested());
  EXPECT_THAT(schema_.Usage(), HasSubstr("--grpc.port (int, default 7101)"));
  EXPECT_THAT(schema_.Usage(), HasSubstr("[env GREENLOOP_SAMPLE_INTERVAL]"));
}

TEST_F(ConfigTest, ChecksRunAfterAllSources) {
  schema_.Check([this]() -> absl::Status {
    if (cfg_.tls && cfg_.grpc_port == 0) {
      return absl::InvalidArgumentError("grpc.tls needs a fixed grpc.port");
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(LoadArgs({"--grpc.tls"}).ok());
  EXPECT_THAT(LoadArgs({"--grpc.tls", "--grpc.port=0"}).message(),
              HasSubstr("grpc.tls needs a fixed grpc.port"));
}

TEST(EnvName, UppercasesAndReplacesDots) {
  EXPECT_EQ(Schema::EnvName("grpc.port"), "GREENLOOP_GRPC_PORT");
  EXPECT_EQ(Schema::EnvName("carbon.grid_g_per_kwh"), "GREENLOOP_CARBON_GRID_G_PER_KWH");
}

}  // namespace
}  // namespace greenloop::config

namespace greenloop::config {
namespace {

TEST(DefaultNodeName, IsAValidLabelDerivedFromTheHostName) {
  const std::string node = DefaultNodeName();
  ASSERT_FALSE(node.empty());
  EXPECT_LE(node.size(), 63u);
  for (char c : node) {
    EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') << node;
  }
  EXPECT_NE(node.front(), '-');
  EXPECT_EQ(node, DefaultNodeName()) << "stable, so collector and trainers agree";
}

}  // namespace
}  // namespace greenloop::config
