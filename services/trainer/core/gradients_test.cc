#include "services/trainer/core/gradients.h"

#include <gtest/gtest.h>

#include <string>

namespace greenloop::trainer {
namespace {

// A world of `ranks` identical ranks except one, whose values are `other` times ours.
class ScaledWorld final : public Collective {
 public:
  ScaledWorld(std::uint32_t ranks, float other) : ranks_(ranks), other_(other) {}
  std::uint32_t rank() const override { return 0; }
  std::uint32_t world_size() const override { return ranks_; }
  absl::Status AllReduceSum(std::span<float> values) override {
    if (fail) return absl::UnavailableError("rank 1 is gone");
    for (float& v : values) v *= static_cast<float>(ranks_ - 1) + other_;
    return absl::OkStatus();
  }
  absl::Status Broadcast(std::string&) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    return std::vector<std::string>(ranks_, mine);
  }
  bool fail = false;

 private:
  std::uint32_t ranks_;
  float other_;
};

TEST(AllReduceGradients, LeavesTheMeanGradientAndTheSummedControls) {
  torch::Tensor w = torch::ones({2, 3}, torch::requires_grad());
  torch::Tensor b = torch::zeros({3}, torch::requires_grad());  // no gradient yet
  (w * 2).sum().backward();
  std::vector<torch::Tensor> params = {w, b};
  std::vector<float> control = {1, 0, 5};
  std::vector<float> buffer;
  ScaledWorld world(2, 3.0f);  // the other rank's gradient is three times ours
  ASSERT_TRUE(AllReduceGradients(world, params, control, buffer).ok());
  EXPECT_TRUE(torch::allclose(w.grad(), torch::full({2, 3}, 4.0f)));  // (2 + 6) / 2
  ASSERT_TRUE(b.grad().defined());
  EXPECT_TRUE(torch::allclose(b.grad(), torch::zeros({3})));
  EXPECT_EQ(control, (std::vector<float>{4, 0, 20}));
  world.fail = true;
  EXPECT_EQ(AllReduceGradients(world, params, control, buffer).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace greenloop::trainer
