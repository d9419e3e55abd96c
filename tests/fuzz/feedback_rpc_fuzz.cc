// libFuzzer target: every FeedbackService request, decoded from the fuzzer's bytes as the gRPC
// server decodes it, run through the queue's handler (role checks, validation, then the store) by
// a rater, a worker, an admin or the anonymous identity, against an in-memory store that holds a
// campaign of the kind the input picks. Untrusted raters reach exactly this code over gRPC.
//
// Input: [rpc selector][role selector][campaign kind selector][the request's wire bytes...]
#include <cstddef>
#include <cstdint>

#include "services/feedback/core/queue.h"
#include "services/feedback/testing/recording_store.h"

namespace {

using greenloop::feedback::Caller;
using greenloop::feedback::FeedbackQueue;
namespace v1 = greenloop::v1;

template <typename Req, typename Resp>
void Call(FeedbackQueue& queue, const Caller& caller,
          absl::StatusOr<Resp> (FeedbackQueue::*method)(const Caller&, const Req&),
          const std::uint8_t* data, std::size_t size) {
  Req request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  (void)(queue.*method)(caller, request);
}

Caller CallerFor(std::uint8_t selector) {
  switch (selector % 4) {
    case 0:
      return {"11", "rita", v1::ROLE_RATER};
    case 1:
      return {"12", "trainer", v1::ROLE_WORKER};
    case 2:
      return {"13", "ops", v1::ROLE_ADMIN};
    default:
      return Caller::Anonymous();
  }
}

v1::Campaign CampaignFor(std::uint8_t selector) {
  v1::Campaign c;
  c.set_campaign_id("c1");
  c.set_state(selector & 0x80 ? v1::CAMPAIGN_STATE_CLOSED : v1::CAMPAIGN_STATE_OPEN);
  v1::CampaignSpec* spec = c.mutable_spec();
  spec->set_question_kind(static_cast<v1::QuestionKind>(1 + selector % 5));
  spec->set_ratings_per_item(1 + selector % 5);
  for (const char* l : {"cat", "dog", "bird"}) spec->add_labels()->set_name(l);
  if (spec->question_kind() == v1::QUESTION_KIND_FEATURE_MASK ||
      spec->question_kind() == v1::QUESTION_KIND_FEATURE_RULE) {
    spec->mutable_feature_grid()->set_rows(7);
    spec->mutable_feature_grid()->set_cols(7);
  }
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  greenloop::feedback::testing::RecordingStore store;
  store.campaign = CampaignFor(data[2]);
  FeedbackQueue queue(&store, {.rater_requests_per_second = 0, .seed = 1, .head_size = 0});
  const Caller caller = CallerFor(data[1]);
  const std::uint8_t* body = data + 3;
  const std::size_t n = size - 3;
  switch (data[0] % 15) {
    case 0:
      return Call(queue, caller, &FeedbackQueue::CreateCampaign, body, n), 0;
    case 1:
      return Call(queue, caller, &FeedbackQueue::GetCampaign, body, n), 0;
    case 2:
      return Call(queue, caller, &FeedbackQueue::ListCampaigns, body, n), 0;
    case 3:
      return Call(queue, caller, &FeedbackQueue::CloseCampaign, body, n), 0;
    case 4:
      return Call(queue, caller, &FeedbackQueue::EnqueueItems, body, n), 0;
    case 5:
      return Call(queue, caller, &FeedbackQueue::Lease, body, n), 0;
    case 6:
      return Call(queue, caller, &FeedbackQueue::Submit, body, n), 0;
    case 7:
      return Call(queue, caller, &FeedbackQueue::Skip, body, n), 0;
    case 8:
      return Call(queue, caller, &FeedbackQueue::Release, body, n), 0;
    case 9:
      return Call(queue, caller, &FeedbackQueue::GetCampaignStats, body, n), 0;
    case 10:
      return Call(queue, caller, &FeedbackQueue::ListMyRatings, body, n), 0;
    case 11:
      return Call(queue, caller, &FeedbackQueue::CreateToken, body, n), 0;
    case 12:
      return Call(queue, caller, &FeedbackQueue::RevokeToken, body, n), 0;
    case 13:
      return Call(queue, caller, &FeedbackQueue::ListTokens, body, n), 0;
    default:
      return Call(queue, caller, &FeedbackQueue::WhoAmI, body, n), 0;
  }
}
