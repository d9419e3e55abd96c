#include "common/logging/logging.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace greenloop::logging {
namespace {

class LoggingTest : public ::testing::Test {
 protected:
  void InitWith(Format format, Level level = Level::kInfo) {
    out_.str("");
    Init({.service = "energy",
          .format = format,
          .level = level,
          .sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)});
  }
  std::string Output() { return out_.str(); }

 private:
  std::ostringstream out_;
};

TEST_F(LoggingTest, JsonLineIsValidJsonWithTypedFields) {
  InitWith(Format::kJson);
  Warn("meter \"unreadable\"\nfalling back",
       {{"zone", "intel-rapl:0"}, {"watts", 12.5}, {"socket", 1}, {"estimated", true}});
  const std::string line = Output();
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one event, one line: " << line;

  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("level").string_value(), "warning");
  EXPECT_EQ(f.at("service").string_value(), "energy");
  EXPECT_EQ(f.at("msg").string_value(), "meter \"unreadable\"\nfalling back");
  EXPECT_EQ(f.at("zone").string_value(), "intel-rapl:0");
  EXPECT_DOUBLE_EQ(f.at("watts").number_value(), 12.5);
  EXPECT_DOUBLE_EQ(f.at("socket").number_value(), 1);
  EXPECT_TRUE(f.at("estimated").bool_value());
  EXPECT_FALSE(f.at("ts").string_value().empty());
}

TEST_F(LoggingTest, TextLineQuotesOnlyWhatNeedsIt) {
  InitWith(Format::kText);
  Info("run registered", {{"run", "r-7"}, {"pids", 3}, {"note", "two words"}});
  const std::string line = Output();
  EXPECT_NE(line.find("energy: run registered run=r-7 pids=3 note=\"two words\""),
            std::string::npos)
      << line;
}

TEST_F(LoggingTest, LevelFiltersLowerLevels) {
  InitWith(Format::kText, Level::kWarn);
  Info("hidden");
  Debug("hidden too");
  EXPECT_TRUE(Output().empty());
  Error("shown");
  EXPECT_NE(Output().find("shown"), std::string::npos);
}

TEST(ParseFormat, AcceptsKnownRejectsOthersWithAListOfChoices) {
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_EQ(*ParseFormat("text"), Format::kText);
  const auto bad = ParseFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("text, json"), std::string::npos);
}

TEST(ParseLevel, AcceptsKnownRejectsOthers) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  EXPECT_FALSE(ParseLevel("loud").ok());
}

}  // namespace
}  // namespace greenloop::logging
