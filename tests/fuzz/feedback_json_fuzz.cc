// libFuzzer target: the JSON API's bodies. POST /api/v1/<Rpc> parses its body as the request in
// protobuf's JSON mapping with unknown fields refused, then runs the RPC; this target does the
// same for the RPCs a rater may call, against an in-memory store.
//
// Input: [rpc selector][the JSON body...]
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "services/feedback/core/queue.h"
#include "services/feedback/testing/recording_store.h"

namespace {

using greenloop::feedback::Caller;
using greenloop::feedback::FeedbackQueue;
namespace v1 = greenloop::v1;

template <typename Req, typename Resp>
void Call(FeedbackQueue& queue,
          absl::StatusOr<Resp> (FeedbackQueue::*method)(const Caller&, const Req&),
          const std::string& body) {
  Req request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (!google::protobuf::util::JsonStringToMessage(body, &request, options).ok()) return;
  const Caller rater{"11", "rita", v1::ROLE_RATER};
  absl::StatusOr<Resp> response = (queue.*method)(rater, request);
  if (response.ok()) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(*response, &json);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  greenloop::feedback::testing::RecordingStore store;
  v1::Campaign c;
  c.set_campaign_id("c1");
  c.set_state(v1::CAMPAIGN_STATE_OPEN);
  c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  c.mutable_spec()->set_ratings_per_item(3);
  for (const char* l : {"cat", "dog", "bird"}) c.mutable_spec()->add_labels()->set_name(l);
  store.campaign = c;
  FeedbackQueue queue(&store, {.rater_requests_per_second = 0, .seed = 1, .head_size = 0});
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0:
      return Call(queue, &FeedbackQueue::Lease, body), 0;
    case 1:
      return Call(queue, &FeedbackQueue::Submit, body), 0;
    case 2:
      return Call(queue, &FeedbackQueue::Skip, body), 0;
    case 3:
      return Call(queue, &FeedbackQueue::Release, body), 0;
    case 4:
      return Call(queue, &FeedbackQueue::ListMyRatings, body), 0;
    case 5:
      return Call(queue, &FeedbackQueue::GetCampaign, body), 0;
    default:
      return Call(queue, &FeedbackQueue::WhoAmI, body), 0;
  }
}
