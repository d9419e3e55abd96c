#include "services/feedback/core/verdicts.h"

#include "common/status/status.h"
#include "google/protobuf/util/time_util.h"
#include "services/feedback/core/answers.h"
#include "services/feedback/core/feature_masks.h"

namespace greenloop::feedback {
namespace {

google::protobuf::Timestamp Timestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

v1::Verdict Base(const ItemRecord& item) {
  v1::Verdict v;
  v.set_item_id(std::to_string(item.item_id));
  v.mutable_sample()->set_dataset(item.dataset);
  v.mutable_sample()->set_index(item.sample_index);
  if (item.given_label.has_value()) v.set_given_label(*item.given_label);
  v.set_ratings_count(item.ratings_count);
  v.set_skips_count(item.skips_count);
  v.set_revision(1);
  *v.mutable_decide_time() = Timestamp(item.decide_time);
  return v;
}

// A feature question's verdict: the weighted consensus of the raters' masks.
BuiltVerdict MaskVerdict(const v1::CampaignSpec& spec, const ItemRecord& item,
                         const ItemRatings& ratings) {
  std::vector<WeightedMask> masks;
  for (const Observation& o : ratings.ratings) {
    WeightedMask m;
    if (auto c = ratings.masks.find(o.rater); c != ratings.masks.end()) m.cells = c->second;
    m.weight = kDefaultRaterAccuracy;
    if (auto g = ratings.gold.find(o.rater); g != ratings.gold.end()) {
      m.weight = SmoothedGoldAccuracy(g->second.first, g->second.second);
    }
    masks.push_back(std::move(m));
  }
  const MaskConsensus consensus = DecideMask(masks);
  BuiltVerdict out{MaskCategory(consensus.mask), Base(item)};
  SetDecision(spec, out.decision, &out.verdict);
  *out.verdict.mutable_feature_mask() = consensus.mask;
  out.verdict.set_confidence(consensus.confidence);
  return out;
}

}  // namespace

absl::StatusOr<BuiltVerdict> FirstVerdict(const v1::CampaignSpec& spec, const ItemRecord& item,
                                          const ItemRatings& ratings) {
  if (IsFeatureQuestion(spec.question_kind())) {
    if (ratings.ratings.empty()) return absl::InvalidArgumentError("no ratings to decide on");
    return MaskVerdict(spec, item, ratings);
  }
  const int k = Categories(spec);
  std::map<std::string, RaterModel> models;
  for (const Observation& o : ratings.ratings) {
    if (auto c = ratings.confusions.find(o.rater);
        c != ratings.confusions.end() && c->second.size() == static_cast<std::size_t>(k) * k) {
      models[o.rater] = RaterModel{k, c->second};
    } else if (auto g = ratings.gold.find(o.rater); g != ratings.gold.end()) {
      models[o.rater] =
          RaterModel::OneCoin(k, SmoothedGoldAccuracy(g->second.first, g->second.second));
    }
  }
  GREENLOOP_ASSIGN_OR_RETURN(Decision d, Decide(k, ratings.ratings, models));
  BuiltVerdict out{d.category, Base(item)};
  SetDecision(spec, d.category, &out.verdict);
  out.verdict.set_confidence(d.confidence);
  return out;
}

std::optional<BuiltVerdict> UndecidableVerdict(const v1::CampaignSpec& spec, const ItemRecord& item,
                                               bool decided, bool gold) {
  if (decided || gold || item.skips_count < spec.ratings_per_item()) return std::nullopt;
  BuiltVerdict out{-1, Base(item)};
  SetDecision(spec, std::nullopt, &out.verdict);
  out.verdict.set_confidence(1);
  return out;
}

std::optional<BuiltVerdict> RevisedVerdict(const v1::CampaignSpec& spec, const v1::Verdict& latest,
                                           int latest_decision, int category, double confidence,
                                           absl::Time decide_time) {
  if (latest_decision < 0 || category == latest_decision ||
      IsFeatureQuestion(spec.question_kind())) {
    return std::nullopt;
  }
  BuiltVerdict out{category, latest};
  out.verdict.clear_decision();
  SetDecision(spec, category, &out.verdict);
  out.verdict.set_confidence(confidence);
  out.verdict.set_revision(latest.revision() + 1);
  *out.verdict.mutable_decide_time() = Timestamp(decide_time);
  return out;
}

}  // namespace greenloop::feedback
