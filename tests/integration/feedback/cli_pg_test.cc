// `greenloop token …` and `greenloop rate` against an in-process feedback service.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "tests/integration/feedback/feedback_env.h"
#include "tools/greenloop/commands.h"
#include "tools/greenloop/feedback_commands.h"

namespace greenloop::feedback::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(FeedbackCli, TokenCreateListRevokeAndRateInTheTerminal) {
  FeedbackEnv env;
  v1::WhoAmIResponse me;
  auto probe = rpc::NewClientContext(5s, env.admin());
  ASSERT_TRUE(env.stub().WhoAmI(probe.get(), {}, &me).ok());
  const config::Environment cli_env = {{"GREENLOOP_SERVER", env.grpc_target()},
                                       {"GREENLOOP_TOKEN", env.admin()}};
  std::ostringstream out, err;
  ASSERT_EQ(cli::Main({"token", "create", "--role", "rater", "--name", "terminal-rater"}, cli_env,
                      out, err),
            cli::kExitOk)
      << err.str();
  const std::string token = out.str().substr(0, out.str().find('\n'));
  EXPECT_THAT(token, StartsWith("glt_"));
  EXPECT_THAT(err.str(), HasSubstr("shown only now"));

  out.str("");
  ASSERT_EQ(cli::Main({"token", "list"}, cli_env, out, err), cli::kExitOk) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("terminal-rater"));
  EXPECT_THAT(out.str(), HasSubstr(token.substr(0, 8)));
  EXPECT_THAT(out.str(), Not(HasSubstr(token)));

  // A worker may not create tokens: the RPC's PERMISSION_DENIED, one line, exit 1.
  std::ostringstream e2;
  EXPECT_EQ(
      cli::Main({"token", "create", "--role", "admin", "--name", "x", "--token=" + env.worker()},
                cli_env, out, e2),
      cli::kExitFailed);
  EXPECT_THAT(e2.str(), HasSubstr("needs role ROLE_ADMIN"));

  env.Campaign("cli", 1);
  env.Enqueue("cli", 0, 3);
  std::istringstream keys("2\nwhat\ns\nq\n");
  std::ostringstream rate_out, rate_err;
  const config::Environment rater_env = {{"GREENLOOP_SERVER", env.grpc_target()},
                                         {"GREENLOOP_TOKEN", token}};
  ASSERT_EQ(cli::Rate({"--campaign=cli"}, rater_env, keys, rate_out, rate_err), cli::kExitOk)
      << rate_err.str();
  EXPECT_THAT(rate_out.str(), HasSubstr("Which label is right?"));
  EXPECT_THAT(rate_out.str(), HasSubstr("2) dog"));
  EXPECT_THAT(rate_out.str(), HasSubstr("unknown key 'what'"));
  EXPECT_THAT(rate_out.str(), HasSubstr("rated 1 item(s)"));
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings WHERE answer = 1"), 1);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_leases WHERE state = 2"), 1);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_leases WHERE state = 3"), 1)
      << "q gave the item in hand back";

  // Revoked: the CLI's next call is refused.
  std::string id;
  out.str("");
  ASSERT_EQ(cli::Main({"token", "list"}, cli_env, out, err), cli::kExitOk);
  std::istringstream rows(out.str());
  for (std::string row; std::getline(rows, row);) {
    if (row.find("terminal-rater") != std::string::npos) {
      std::istringstream(row) >> id;
    }
  }
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(cli::Main({"token", "revoke", "--id", id}, cli_env, out, err), cli::kExitOk)
      << err.str();
  std::istringstream none("");
  std::ostringstream e3;
  EXPECT_EQ(cli::Rate({}, rater_env, none, rate_out, e3), cli::kExitFailed);
  EXPECT_THAT(e3.str(), HasSubstr("revoked"));
}

// A text rule question in the terminal: its words numbered as cells, typed numbers the answer.
TEST(FeedbackCli, RatesATextRuleQuestionByNumberedWords) {
  FeedbackEnv env;
  v1::CreateCampaignRequest req;
  req.set_campaign_id("words");
  v1::CampaignSpec* spec = req.mutable_spec();
  spec->set_question_kind(v1::QUESTION_KIND_FEATURE_RULE);
  for (const char* l : {"ham", "spam"}) spec->add_labels()->set_name(l);
  spec->set_ratings_per_item(1);
  spec->mutable_feature_grid()->set_rows(1);
  spec->mutable_feature_grid()->set_cols(12);
  v1::CreateCampaignResponse created;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().CreateCampaign(ctx.get(), req, &created).ok());
  v1::EnqueueItemsRequest items;
  items.set_campaign_id("words");
  v1::ItemInput* item = items.add_items();
  item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
  item->mutable_sample()->set_index(1);
  item->mutable_payload()->set_text("free\nqzxspam\nmoney\nclick\n");
  item->set_given_label(1);
  v1::EnqueueItemsResponse enqueued;
  auto ctx2 = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().EnqueueItems(ctx2.get(), items, &enqueued).ok());

  const std::string rater = env.Token(v1::ROLE_RATER, "terminal-words");
  const config::Environment rater_env = {{"GREENLOOP_SERVER", env.grpc_target()},
                                         {"GREENLOOP_TOKEN", rater}};
  std::istringstream keys("x y\n1 3\n");
  std::ostringstream out, err;
  ASSERT_EQ(cli::Rate({"--campaign=words", "--exit_when_empty"}, rater_env, keys, out, err),
            cli::kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("    1  qzxspam\n"));
  EXPECT_THAT(out.str(), HasSubstr("    3  click\n"));
  EXPECT_THAT(out.str(), HasSubstr("numbers of the words"));
  EXPECT_THAT(out.str(), HasSubstr("unknown key 'x y'"));
  EXPECT_THAT(out.str(), Not(HasSubstr("y) yes"))) << "a rule question has no yes/no";
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_rating_masks WHERE cells = '{1,3}'"), 1);
}

// A per-item mask question whose picture has the model's evidence on its right half: the table
// numbers the left picture's cells.
TEST(FeedbackCli, RatesAPerItemMaskOnTheLeftPanel) {
  FeedbackEnv env;
  v1::CreateCampaignRequest req;
  req.set_campaign_id("masks");
  v1::CampaignSpec* spec = req.mutable_spec();
  spec->set_question_kind(v1::QUESTION_KIND_FEATURE_MASK);
  spec->set_ratings_per_item(1);
  spec->mutable_feature_grid()->set_rows(7);
  spec->mutable_feature_grid()->set_cols(7);
  spec->mutable_feature_grid()->set_evidence_panel(true);
  v1::CreateCampaignResponse created;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().CreateCampaign(ctx.get(), req, &created).ok());
  v1::EnqueueItemsRequest items;
  items.set_campaign_id("masks");
  v1::ItemInput* item = items.add_items();
  item->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
  item->mutable_sample()->set_index(4);
  item->mutable_payload()->set_png(std::string("\x89PNG\r\n\x1a\n", 8) + "rest");
  v1::EnqueueItemsResponse enqueued;
  auto ctx2 = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().EnqueueItems(ctx2.get(), items, &enqueued).ok());

  const std::string rater = env.Token(v1::ROLE_RATER, "terminal-masks");
  const config::Environment rater_env = {{"GREENLOOP_SERVER", env.grpc_target()},
                                         {"GREENLOOP_TOKEN", rater}};
  std::istringstream keys("0 48\n");
  std::ostringstream out, err;
  ASSERT_EQ(
      cli::Rate({"--campaign=masks", "--exit_when_empty", "--image_dir=" + ::testing::TempDir()},
                rater_env, keys, out, err),
      cli::kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("cells of the left picture (the right one: where the model"));
  EXPECT_THAT(out.str(), HasSubstr("   42  43  44  45  46  47  48\n"));
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_rating_masks WHERE cells = '{0,48}'"), 1);
}

}  // namespace
}  // namespace greenloop::feedback::testing
