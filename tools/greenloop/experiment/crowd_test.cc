#include "tools/greenloop/experiment/crowd.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "tools/greenloop/experiment/testing/fake_feedback.h"

namespace greenloop::experiment {
namespace {

using testing::FakeFeedbackService;

void Put32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xFF);
}
void Chunk(std::string& out, const char* type, const std::string& data) {
  Put32(out, static_cast<std::uint32_t>(data.size()));
  std::string typed = std::string(type, 4) + data;
  out += typed;
  Put32(out, static_cast<std::uint32_t>(
                 crc32(0, reinterpret_cast<const Bytef*>(typed.data()), typed.size())));
}
// Greyscale PNG of `px` (n×n) scaled by `scale`; rows use `filter` 0 (none) or 1 (sub).
std::string Png(const std::vector<std::uint8_t>& px, int n, int scale, int filter) {
  const int w = n * scale;
  std::string raw;
  for (int y = 0; y < w; ++y) {
    raw += static_cast<char>(filter);
    int prev = 0;
    for (int x = 0; x < w; ++x) {
      const int v = px[static_cast<std::size_t>((y / scale) * n + x / scale)];
      raw += static_cast<char>(filter == 1 ? (v - prev) & 0xFF : v);
      prev = v;
    }
  }
  uLongf size = compressBound(raw.size());
  std::string packed(size, '\0');
  compress(reinterpret_cast<Bytef*>(packed.data()), &size,
           reinterpret_cast<const Bytef*>(raw.data()), raw.size());
  packed.resize(size);
  std::string out("\x89PNG\r\n\x1a\n", 8), hdr;
  Put32(hdr, static_cast<std::uint32_t>(w));
  Put32(hdr, static_cast<std::uint32_t>(w));
  hdr += std::string("\x08\x00\x00\x00\x00", 5);
  Chunk(out, "IHDR", hdr);
  Chunk(out, "IDAT", packed);
  Chunk(out, "IEND", "");
  return out;
}

// What a feature question's truth is: the planted words' positions among a text item's words,
// the spec's cells over an image's grid.
TEST(FeatureTruthTest, FindsThePlantedWordsAmongATextItemsWords) {
  v1::LeasedItem text;
  text.mutable_question()->set_kind(v1::QUESTION_KIND_FEATURE_RULE);
  text.mutable_question()->mutable_feature_grid()->set_rows(1);
  text.mutable_question()->mutable_feature_grid()->set_cols(12);
  text.mutable_payload()->set_text("free\nqzxspam\nmoney\nqzxham\n");
  const auto [truth, cells] = FeatureTruth(text, {0, 6}, {"qzxham", "qzxspam"});
  EXPECT_EQ(truth, (std::vector<std::uint32_t>{1, 3}));
  EXPECT_EQ(cells, 4u);
  v1::LeasedItem image = text;
  image.mutable_payload()->set_png("\x89PNG");
  const auto [image_truth, image_cells] = FeatureTruth(image, {0, 6}, {"qzxham"});
  EXPECT_EQ(image_truth, (std::vector<std::uint32_t>{0, 6}));
  EXPECT_EQ(image_cells, 12u);
}

// A planted decoy square in a corner does not hide the garment from the simulated rater.
TEST(ImageOracleTest, RecognisesAnImageWithASquareInACorner) {
  std::vector<std::uint8_t> a(28 * 28), b(28 * 28);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<std::uint8_t>(i * 7);
    b[i] = static_cast<std::uint8_t>(i * 11);
  }
  ImageOracle oracle(28, 28, {a, b}, {3, 8});
  std::vector<std::uint8_t> decoyed = a;
  for (int y = 24; y < 28; ++y) {
    for (int x = 0; x < 4; ++x) decoyed[static_cast<std::size_t>(y * 28 + x)] = 205;
  }
  v1::Payload p;
  p.set_png(Png(decoyed, 28, 2, 0));
  EXPECT_EQ(oracle.TrueLabel(p), 3u);
  decoyed[14 * 28 + 14] ^= 1;  // the garment itself changed: not this image any more
  p.set_png(Png(decoyed, 28, 2, 0));
  EXPECT_FALSE(oracle.TrueLabel(p).has_value());
}

class CrowdTest : public ::testing::Test {
 protected:
  static constexpr int kSide = 4;
  void SetUp() override {
    server_.Add(&fake_);
    ASSERT_TRUE(server_.Start().ok());
    address_ = "127.0.0.1:" + std::to_string(server_.port());
    channel_ = *rpc::CreateChannel(address_);
    std::mt19937 rng(1);
    for (int i = 0; i < kItems; ++i) {
      std::vector<std::uint8_t> px(kSide * kSide);
      for (auto& p : px) p = static_cast<std::uint8_t>(rng() & 0xFF);
      images_.push_back(px);
      labels_.push_back(static_cast<std::uint32_t>(rng() % 10));
    }
    oracle_ = std::make_unique<ImageOracle>(kSide, kSide, images_, labels_);
  }

  // Creates campaign `id` (label choice over 10 labels, k) and enqueues every image, plus
  // `unknown` images the oracle has never seen, as samples `first_index` onwards (the fake's item
  // ids are its samples': two campaigns take samples of their own).
  void Enqueue(const std::string& id, int k, int unknown = 0, int first_index = 0) {
    auto stub = v1::FeedbackService::NewStub(channel_);
    v1::CreateCampaignRequest cc;
    cc.set_campaign_id(id);
    cc.mutable_spec()->set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
    cc.mutable_spec()->set_ratings_per_item(static_cast<std::uint32_t>(k));
    for (int i = 0; i < 10; ++i) cc.mutable_spec()->add_labels()->set_name("l" + std::to_string(i));
    v1::CreateCampaignResponse ccr;
    ::grpc::ClientContext c1;
    ASSERT_TRUE(stub->CreateCampaign(&c1, cc, &ccr).ok());
    v1::EnqueueItemsRequest eq;
    eq.set_campaign_id(id);
    for (int i = 0; i < kItems + unknown; ++i) {
      v1::ItemInput* in = eq.add_items();
      in->mutable_sample()->set_index(static_cast<std::uint64_t>(first_index + i));
      std::vector<std::uint8_t> px =
          i < kItems ? images_[static_cast<std::size_t>(i)] : std::vector<std::uint8_t>(16, 7);
      if (i >= kItems) px[0] = static_cast<std::uint8_t>(i);
      in->mutable_payload()->set_png(Png(px, kSide, 4, i % 2));
      in->set_given_label(0);
    }
    v1::EnqueueItemsResponse eqr;
    ::grpc::ClientContext c2;
    ASSERT_TRUE(stub->EnqueueItems(&c2, eq, &eqr).ok());
  }

  // A crowd of `spec.raters` raters (named `prefix`-N) with tokens of their own, not started.
  std::unique_ptr<SimulatedCrowd> MakeCrowd(const CrowdSpec& spec,
                                            std::vector<std::string> campaigns,
                                            const std::string& prefix) {
    std::vector<RaterProfile> profiles = DrawProfiles(spec, prefix);
    absl::StatusOr<std::vector<std::string>> tokens =
        CreateRaterTokens(channel_, address_, "admin", profiles);
    EXPECT_TRUE(tokens.ok());
    return std::make_unique<SimulatedCrowd>(spec, channel_, std::move(campaigns), oracle_.get(),
                                            profiles,
                                            tokens.ok() ? *tokens : std::vector<std::string>());
  }

  CrowdStats RunCrowd(const CrowdSpec& spec, const std::string& campaign, std::size_t verdicts,
                      int skips = 0) {
    std::unique_ptr<SimulatedCrowd> owned = MakeCrowd(spec, {campaign}, "sim");
    SimulatedCrowd& crowd = *owned;
    crowd.Start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((fake_.verdicts() < verdicts || fake_.skips() < skips) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    crowd.Stop();
    return crowd.Stats();
  }

  static constexpr int kItems = 300;
  FakeFeedbackService fake_;
  rpc::Server server_{{.address = "127.0.0.1:0", .service_name = "crowd-test"}};
  std::string address_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::vector<std::vector<std::uint8_t>> images_;
  std::vector<std::uint32_t> labels_;
  std::unique_ptr<ImageOracle> oracle_;
};

TEST_F(CrowdTest, OracleRecognisesScaledPngsWithAnyFilter) {
  for (int filter : {0, 1}) {
    v1::Payload p;
    p.set_png(Png(images_[5], kSide, 4, filter));
    EXPECT_EQ(oracle_->TrueLabel(p), labels_[5]) << "filter " << filter;
  }
  v1::Payload unknown;
  unknown.set_png(Png(std::vector<std::uint8_t>(16, 1), kSide, 4, 0));
  EXPECT_FALSE(oracle_->TrueLabel(unknown).has_value());
  v1::Payload text;
  text.set_text("hello");
  EXPECT_FALSE(oracle_->TrueLabel(text).has_value());
}

TEST_F(CrowdTest, ProfilesAreDeterministicWithSpammersFirst) {
  CrowdSpec spec;
  spec.raters = 10;
  spec.spammer_share = 0.2;
  const auto a = DrawProfiles(spec, "r");
  const auto b = DrawProfiles(spec, "r");
  ASSERT_EQ(a.size(), 10u);
  EXPECT_TRUE(a[0].spammer && a[1].spammer && !a[2].spammer);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_DOUBLE_EQ(a[i].accuracy, b[i].accuracy);
    EXPECT_GE(a[i].accuracy, spec.accuracy_min);
    EXPECT_LE(a[i].accuracy, 1.0);
  }
}

TEST_F(CrowdTest, HonestCrowdThroughTheRaterApiMatchesItsAccuracyAndTimes) {
  Enqueue("honest", 3);
  CrowdSpec spec;
  spec.raters = 6;
  spec.accuracy_mean = 0.8;
  spec.accuracy_sd = 0.0;
  spec.skip_share = 0.0;
  spec.time_compression = 2e4;  // 4.2 s → 0.2 ms
  const CrowdStats stats = RunCrowd(spec, "honest", kItems);
  ASSERT_EQ(fake_.verdicts(), static_cast<std::size_t>(kItems)) << stats.last_error;
  EXPECT_EQ(stats.total.rpc_errors, 0u) << stats.last_error;

  int majority_right = 0;
  std::vector<double> seconds;
  std::uint64_t right = 0, total = 0;
  for (const FakeFeedbackService::Item& item : fake_.ItemsOf("honest")) {
    ASSERT_EQ(item.ratings.size(), 3u);
    std::set<std::string> raters;
    std::map<std::uint32_t, int> votes;
    const std::uint32_t truth = labels_[item.input.sample().index()];
    for (const auto& r : item.ratings) {
      raters.insert(r.rater);
      ++votes[r.label];
      seconds.push_back(r.seconds);
      right += r.label == truth ? 1 : 0;
      ++total;
    }
    EXPECT_EQ(raters.size(), 3u) << "an item went twice to one rater";
    auto best = std::max_element(votes.begin(), votes.end(),
                                 [](auto& a, auto& b) { return a.second < b.second; });
    majority_right += best->first == truth ? 1 : 0;
  }
  const double single = static_cast<double>(right) / static_cast<double>(total);
  const double majority = majority_right / static_cast<double>(kItems);
  EXPECT_NEAR(single, 0.8, 0.05);
  EXPECT_GT(majority, single + 0.05);  // majority-of-3 beats one rater (CIFAR-10N: 9 % vs 17 %)
  EXPECT_EQ(stats.total.submitted, total);
  EXPECT_EQ(stats.total.right, right);
  std::nth_element(seconds.begin(), seconds.begin() + static_cast<long>(seconds.size() / 2),
                   seconds.end());
  EXPECT_NEAR(seconds[seconds.size() / 2], 4.2, 0.6);  // log-normal median
  // Time compression: hours of modelled work in well under the wall time it models.
  EXPECT_GT(stats.total.modelled_seconds, 3000.0);
  EXPECT_LT(stats.wall_seconds, stats.total.modelled_seconds / 50);
  // Each rater used its own token.
  std::set<std::string> names;
  for (const auto& r : stats.raters) names.insert(r.name);
  EXPECT_EQ(names.size(), 6u);
}

TEST_F(CrowdTest, SpammersAnswerAtRandom) {
  Enqueue("spam", 1);
  CrowdSpec spec;
  spec.raters = 4;
  spec.ratings_per_item = 1;
  spec.spammer_share = 1.0;
  spec.time_compression = 2e4;
  const CrowdStats stats = RunCrowd(spec, "spam", kItems);
  ASSERT_EQ(stats.total.submitted, static_cast<std::uint64_t>(kItems));
  const double right =
      static_cast<double>(stats.total.right) / static_cast<double>(stats.total.submitted);
  EXPECT_NEAR(right, 0.1, 0.06);
}

TEST_F(CrowdTest, UnrecognisedItemsAreSkippedAndNeverOfferedAgain) {
  Enqueue("unknown", 2, /*unknown=*/5);
  CrowdSpec spec;
  spec.raters = 3;
  spec.ratings_per_item = 2;
  spec.skip_share = 0;
  spec.time_compression = 2e4;
  const CrowdStats stats = RunCrowd(spec, "unknown", kItems, /*skips=*/15);
  // Every rater skips each of the 5 unknown items exactly once, and is never offered it again.
  EXPECT_EQ(stats.total.unknown, 15u);
  EXPECT_EQ(fake_.skips(), 15);
  for (const auto& item : fake_.ItemsOf("unknown")) {
    if (item.input.sample().index() >= kItems) {
      EXPECT_EQ(item.skipped_by.size(), 3u);
    }
  }
}

TEST_F(CrowdTest, StopCutsLongWaitsShort) {
  Enqueue("slow", 3);
  CrowdSpec spec;
  spec.raters = 3;
  spec.time_compression = 1;  // 4.2 s per item in wall time
  std::unique_ptr<SimulatedCrowd> owned = MakeCrowd(spec, {"slow"}, "slow");
  SimulatedCrowd& crowd = *owned;
  crowd.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  crowd.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  // The held leases were released, not left to expire.
  for (const auto& item : fake_.ItemsOf("slow")) EXPECT_TRUE(item.leased_by.empty());
}

TEST_F(CrowdTest, RatersLeaseInBatchesAndReleaseThePrefetchedItemsOnStop) {
  Enqueue("batch", 1);
  CrowdSpec spec;
  spec.raters = 1;
  spec.lease_batch = 4;
  spec.time_compression = 1;  // 4.2 s per item in wall time: the rater holds its batch
  std::unique_ptr<SimulatedCrowd> owned = MakeCrowd(spec, {"batch"}, "batch");
  SimulatedCrowd& crowd = *owned;
  crowd.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (fake_.lease_batches().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  int held = 0;
  for (const auto& item : fake_.ItemsOf("batch")) held += static_cast<int>(item.leased_by.size());
  EXPECT_EQ(held, 4);  // one in hand, three prefetched
  crowd.Stop();
  EXPECT_EQ(fake_.lease_batches(), std::vector<int>{4});
  for (const auto& item : fake_.ItemsOf("batch")) EXPECT_TRUE(item.leased_by.empty());
}

TEST_F(CrowdTest, BatchedLeasesCutTheRoundTripsPerRating) {
  Enqueue("batched", 3);
  CrowdSpec spec;
  spec.raters = 3;
  spec.lease_batch = 5;
  spec.skip_share = 0;  // every item gets its 3 ratings
  spec.time_compression = 5000;
  const CrowdStats stats = RunCrowd(spec, "batched", kItems);
  ASSERT_EQ(fake_.verdicts(), static_cast<std::size_t>(kItems)) << stats.last_error;
  const std::vector<int> batches = fake_.lease_batches();
  ASSERT_FALSE(batches.empty());
  int leased = 0;
  for (int b : batches) {
    EXPECT_LE(b, 5);
    leased += b;
  }
  EXPECT_EQ(static_cast<std::uint64_t>(leased), stats.total.leased);
  // Most Leases came back full: the round trips are about a fifth of the ratings.
  EXPECT_LT(batches.size() * 5, stats.total.leased * 2);
}

// MODE_HITL_COMBINED's crowd: raters work the campaign listed first while it has items, take the
// next one's when it runs dry, wait for a campaign that does not exist yet, and stop on their own
// once every campaign is closed.
TEST_F(CrowdTest, RatersWorkSeveralCampaignsInTheirOrderAndStopWhenAllAreClosed) {
  Enqueue("second", 1);
  CrowdSpec spec;
  spec.raters = 2;
  spec.ratings_per_item = 1;
  spec.skip_share = 0;
  spec.time_compression = 2e4;
  std::unique_ptr<SimulatedCrowd> owned = MakeCrowd(spec, {"first", "second"}, "multi");
  SimulatedCrowd& crowd = *owned;
  crowd.Start();  // "first" does not exist yet: the raters rate "second" meanwhile
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (fake_.verdicts() < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Enqueue("first", 1, 0, /*first_index=*/kItems);
  while (fake_.verdicts() < static_cast<std::size_t>(2 * kItems) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(fake_.verdicts(), static_cast<std::size_t>(2 * kItems)) << crowd.Stats().last_error;
  // Once "first" existed it was served first: its last rating came before "second"'s last one.
  auto last_rated = [&](const std::string& id) {
    std::uint64_t last = 0;
    for (const auto& item : fake_.ItemsOf(id)) {
      for (const auto& r : item.ratings) last = std::max(last, r.order);
    }
    return last;
  };
  EXPECT_LT(last_rated("first"), last_rated("second"));
  auto stub = v1::FeedbackService::NewStub(channel_);
  for (const char* id : {"first", "second"}) {
    v1::CloseCampaignRequest close;
    close.set_campaign_id(id);
    v1::CloseCampaignResponse closed;
    ::grpc::ClientContext ctx;
    ASSERT_TRUE(stub->CloseCampaign(&ctx, close, &closed).ok());
  }
  const auto t0 = std::chrono::steady_clock::now();
  crowd.Stop();  // the raters left on their own: nothing to cut short
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  const CrowdStats stats = crowd.Stats();
  EXPECT_EQ(stats.total.submitted, static_cast<std::uint64_t>(2 * kItems));
  EXPECT_EQ(stats.total.rpc_errors, 0u) << stats.last_error;
}

}  // namespace
}  // namespace greenloop::experiment
