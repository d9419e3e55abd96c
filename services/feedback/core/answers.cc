#include "services/feedback/core/answers.h"

#include <cmath>
#include <set>

#include "absl/strings/escaping.h"
#include "fmt/format.h"
#include "services/feedback/core/feature_masks.h"

namespace greenloop::feedback {
namespace {

constexpr std::uint32_t kDefaultRatingsPerItem = 3;
constexpr std::uint32_t kMaxRatingsPerItem = 15;
constexpr std::uint32_t kDefaultLeaseTtlSeconds = 120;

// Questions that need the label set: the label questions, and rules (which name a class).
bool IsLabelQuestion(v1::QuestionKind kind) {
  return kind == v1::QUESTION_KIND_LABEL_CHECK || kind == v1::QUESTION_KIND_LABEL_CHOICE ||
         kind == v1::QUESTION_KIND_FEATURE_RULE;
}

absl::Status CheckLabel(const v1::CampaignSpec& spec, std::uint32_t label, std::string_view what) {
  if (label >= static_cast<std::uint32_t>(spec.labels_size())) {
    return absl::InvalidArgumentError(
        fmt::format("{} {} is outside the label set (0..{})", what, label, spec.labels_size() - 1));
  }
  return absl::OkStatus();
}

std::string Base64(const std::string& text) { return absl::WebSafeBase64Escape(text); }

std::optional<std::string> Unbase64(std::string_view text) {
  std::string out;
  if (!absl::WebSafeBase64Unescape(std::string(text), &out)) return std::nullopt;
  return out;
}

}  // namespace

absl::Status ValidateClientId(std::string_view id, std::string_view field) {
  bool ok = !id.empty() && id.size() <= 63 && id.front() != '-';
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(fmt::format(
        "{} '{}' must be 1 to 63 characters of [a-z0-9-], beginning with a letter or digit", field,
        id.substr(0, 80)));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CampaignSpec> NormalizeSpec(const v1::CampaignSpec& in) {
  v1::CampaignSpec spec = in;
  if (spec.question_kind() == v1::QUESTION_KIND_UNSPECIFIED ||
      !v1::QuestionKind_IsValid(spec.question_kind())) {
    return absl::InvalidArgumentError(
        "spec.question_kind is required: QUESTION_KIND_LABEL_CHECK, QUESTION_KIND_LABEL_CHOICE, "
        "QUESTION_KIND_RELEVANCE, QUESTION_KIND_FEATURE_MASK or QUESTION_KIND_FEATURE_RULE");
  }
  if (!spec.run_id().empty()) {
    if (absl::Status s = ValidateClientId(spec.run_id(), "spec.run_id"); !s.ok()) return s;
  }
  if (IsLabelQuestion(spec.question_kind()) &&
      (spec.labels_size() < 2 || spec.labels_size() > 100)) {
    return absl::InvalidArgumentError(
        fmt::format("spec.labels has {} labels; a label question or a rule needs 2 to 100",
                    spec.labels_size()));
  }
  if (spec.labels_size() > 100) {
    return absl::InvalidArgumentError("spec.labels has more than 100 labels");
  }
  std::set<std::string> names;
  for (int i = 0; i < spec.labels_size(); ++i) {
    v1::Label* label = spec.mutable_labels(i);
    if (label->name().empty()) {
      return absl::InvalidArgumentError(fmt::format("spec.labels[{}].name is empty", i));
    }
    if (!names.insert(label->name()).second) {
      return absl::InvalidArgumentError(
          fmt::format("spec.labels[{}].name '{}' appears twice", i, label->name()));
    }
    if (label->display_name().empty()) label->set_display_name(label->name());
    if (label->shortcut().empty() && i < 10) label->set_shortcut(std::to_string((i + 1) % 10));
  }
  if (absl::Status s = ValidateFeatureGrid(spec); !s.ok()) return s;
  if (spec.instructions().size() > 4096) {
    return absl::InvalidArgumentError("spec.instructions is longer than 4096 characters");
  }
  if (spec.ratings_per_item() == 0) spec.set_ratings_per_item(kDefaultRatingsPerItem);
  if (spec.ratings_per_item() > kMaxRatingsPerItem) {
    return absl::InvalidArgumentError(fmt::format("spec.ratings_per_item {} is above {}",
                                                  spec.ratings_per_item(), kMaxRatingsPerItem));
  }
  if (spec.agreeing_ratings() != 0 &&
      (spec.agreeing_ratings() < 2 || spec.agreeing_ratings() >= spec.ratings_per_item())) {
    return absl::InvalidArgumentError(
        fmt::format("spec.agreeing_ratings {} must be 0 or in [2, ratings_per_item {})",
                    spec.agreeing_ratings(), spec.ratings_per_item()));
  }
  if (spec.lease_ttl_seconds() == 0) spec.set_lease_ttl_seconds(kDefaultLeaseTtlSeconds);
  if (spec.lease_ttl_seconds() < 10 || spec.lease_ttl_seconds() > 3600) {
    return absl::InvalidArgumentError(
        fmt::format("spec.lease_ttl_seconds {} is outside [10, 3600]", spec.lease_ttl_seconds()));
  }
  if (!(spec.gold_share() >= 0 && spec.gold_share() <= 0.5)) {
    return absl::InvalidArgumentError(
        fmt::format("spec.gold_share {} is outside [0, 0.5]", spec.gold_share()));
  }
  return spec;
}

int Categories(const v1::CampaignSpec& spec) {
  if (IsFeatureQuestion(spec.question_kind())) return 0;
  return spec.question_kind() == v1::QUESTION_KIND_LABEL_CHOICE ? spec.labels_size() : 2;
}

absl::Status ValidateItem(const v1::CampaignSpec& spec, const v1::ItemInput& item, int position,
                          const Limits& limits) {
  auto fail = [position](std::string_view what) {
    return absl::InvalidArgumentError(fmt::format("items[{}]: {}", position, what));
  };
  if (!item.has_sample() || item.sample().dataset() == v1::DATASET_UNSPECIFIED ||
      !v1::Dataset_IsValid(item.sample().dataset())) {
    return fail("sample with a dataset is required");
  }
  if (!item.has_payload() || item.payload().content_case() == v1::Payload::CONTENT_NOT_SET) {
    return fail("payload is required (png or text)");
  }
  const std::size_t bytes = item.payload().ByteSizeLong();
  if (static_cast<std::int64_t>(bytes) > limits.max_payload_bytes) {
    return fail(
        fmt::format("payload is {} bytes; the limit is {}", bytes, limits.max_payload_bytes));
  }
  if (item.payload().has_png()) {
    const std::string& png = item.payload().png();
    if (png.size() < 8 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) {
      return fail("payload.png is not a PNG image (bad signature)");
    }
  }
  if (item.has_given_label()) {
    if (absl::Status s = CheckLabel(spec, item.given_label(), "given_label"); !s.ok()) {
      return fail(std::string(s.message()));
    }
  } else if (spec.question_kind() == v1::QUESTION_KIND_LABEL_CHECK ||
             spec.question_kind() == v1::QUESTION_KIND_FEATURE_RULE) {
    return fail(
        fmt::format("given_label is required for {}", v1::QuestionKind_Name(spec.question_kind())));
  }
  if (item.has_model_prediction()) {
    if (spec.labels_size() > 0) {
      if (absl::Status s = CheckLabel(spec, item.model_prediction().label(), "model_prediction");
          !s.ok()) {
        return fail(std::string(s.message()));
      }
    }
    const double conf = item.model_prediction().confidence();
    if (!(conf >= 0 && conf <= 1)) {
      return fail(fmt::format("model_prediction.confidence {} is outside [0, 1]", conf));
    }
  }
  if (!std::isfinite(item.priority())) return fail("priority is not a finite number");
  if (item.has_gold_answer()) {
    if (absl::StatusOr<int> c = AnswerCategory(spec, item.gold_answer()); !c.ok()) {
      return fail(fmt::format("gold_answer: {}", std::string(c.status().message())));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> AnswerCategory(const v1::CampaignSpec& spec, const v1::Answer& answer) {
  switch (spec.question_kind()) {
    case v1::QUESTION_KIND_LABEL_CHECK:
      if (answer.value_case() != v1::Answer::kLabelCorrect) break;
      return answer.label_correct() ? 1 : 0;
    case v1::QUESTION_KIND_RELEVANCE:
      if (answer.value_case() != v1::Answer::kRelevant) break;
      return answer.relevant() ? 1 : 0;
    case v1::QUESTION_KIND_LABEL_CHOICE:
      if (answer.value_case() != v1::Answer::kLabel) break;
      if (absl::Status s = CheckLabel(spec, answer.label(), "answer label"); !s.ok()) return s;
      return static_cast<int>(answer.label());
    case v1::QUESTION_KIND_FEATURE_MASK:
    case v1::QUESTION_KIND_FEATURE_RULE: {
      if (answer.value_case() != v1::Answer::kFeatureMask) break;
      absl::StatusOr<v1::FeatureMask> mask =
          CanonicalMask(spec, answer.feature_mask(), "answer.feature_mask");
      if (!mask.ok()) return mask.status();
      return MaskCategory(*mask);
    }
    default:
      break;
  }
  const char* wanted = spec.question_kind() == v1::QUESTION_KIND_LABEL_CHECK ? "label_correct"
                       : spec.question_kind() == v1::QUESTION_KIND_RELEVANCE ? "relevant"
                       : IsFeatureQuestion(spec.question_kind())             ? "feature_mask"
                                                                             : "label";
  return absl::InvalidArgumentError(fmt::format("answer must set {} for a {} question", wanted,
                                                v1::QuestionKind_Name(spec.question_kind())));
}

v1::Answer CategoryAnswer(const v1::CampaignSpec& spec, int category) {
  v1::Answer a;
  switch (spec.question_kind()) {
    case v1::QUESTION_KIND_LABEL_CHECK:
      a.set_label_correct(category == 1);
      break;
    case v1::QUESTION_KIND_RELEVANCE:
      a.set_relevant(category == 1);
      break;
    case v1::QUESTION_KIND_FEATURE_MASK:
    case v1::QUESTION_KIND_FEATURE_RULE:
      a.mutable_feature_mask();  // the cells are stored apart (feature_masks.h)
      break;
    default:
      a.set_label(static_cast<std::uint32_t>(category));
      break;
  }
  return a;
}

v1::Question MakeQuestion(const v1::CampaignSpec& spec, std::optional<std::uint32_t> given_label,
                          const v1::ModelPrediction* prediction) {
  v1::Question q;
  q.set_kind(spec.question_kind());
  q.set_instructions(spec.instructions());
  *q.mutable_labels() = spec.labels();
  if (given_label.has_value()) q.set_given_label(*given_label);
  if (spec.has_feature_grid()) *q.mutable_feature_grid() = spec.feature_grid();
  if (spec.show_model_prediction() && prediction != nullptr) {
    *q.mutable_model_prediction() = *prediction;
  }
  auto label_name = [&spec](std::uint32_t i) {
    return i < static_cast<std::uint32_t>(spec.labels_size()) ? spec.labels(i).display_name()
                                                              : std::to_string(i);
  };
  switch (spec.question_kind()) {
    case v1::QUESTION_KIND_LABEL_CHECK:
      q.set_prompt(given_label.has_value() ? fmt::format("Is this a {}?", label_name(*given_label))
                                           : "Is the label right?");
      break;
    case v1::QUESTION_KIND_LABEL_CHOICE:
      q.set_prompt("Which label is right?");
      break;
    case v1::QUESTION_KIND_FEATURE_MASK:
      q.set_prompt("Which parts of this image should the model ignore?");
      break;
    case v1::QUESTION_KIND_FEATURE_RULE:
      q.set_prompt(given_label.has_value()
                       ? fmt::format("Which parts should the model ignore in every {}?",
                                     label_name(*given_label))
                       : "Which parts should the model ignore in every item?");
      break;
    default:
      q.set_prompt("Is this sample worth learning from?");
      break;
  }
  return q;
}

void SetDecision(const v1::CampaignSpec& spec, std::optional<int> category, v1::Verdict* verdict) {
  verdict->set_question_kind(spec.question_kind());
  if (!category.has_value()) {
    verdict->set_undecidable(true);
    verdict->set_suggested_action(v1::VERDICT_ACTION_DROP);
    return;
  }
  switch (spec.question_kind()) {
    case v1::QUESTION_KIND_LABEL_CHECK:
      verdict->set_label_correct(*category == 1);
      verdict->set_suggested_action(*category == 1 ? v1::VERDICT_ACTION_KEEP
                                                   : v1::VERDICT_ACTION_DROP);
      break;
    case v1::QUESTION_KIND_RELEVANCE:
      verdict->set_relevant(*category == 1);
      verdict->set_suggested_action(*category == 1 ? v1::VERDICT_ACTION_KEEP
                                                   : v1::VERDICT_ACTION_DROP);
      break;
    case v1::QUESTION_KIND_FEATURE_MASK:
    case v1::QUESTION_KIND_FEATURE_RULE:
      verdict->mutable_feature_mask();  // the consensus cells come from DecideMask
      verdict->set_suggested_action(v1::VERDICT_ACTION_KEEP);
      break;
    default:
      verdict->set_consensus_label(static_cast<std::uint32_t>(*category));
      verdict->set_suggested_action(verdict->has_given_label() &&
                                            verdict->given_label() ==
                                                static_cast<std::uint32_t>(*category)
                                        ? v1::VERDICT_ACTION_KEEP
                                        : v1::VERDICT_ACTION_RELABEL);
      break;
  }
}

std::string EncodeCursor(std::string_view campaign_id, std::int64_t seq) {
  return "c1." + Base64(fmt::format("{}/{}", campaign_id, seq));
}

absl::StatusOr<std::int64_t> DecodeCursor(std::string_view campaign_id, std::string_view cursor) {
  if (cursor.empty()) return 0;
  const absl::Status bad = absl::InvalidArgumentError(
      fmt::format("cursor '{}' was not issued for campaign '{}'; resume with a cursor from this "
                  "campaign's stream, or send none to start from the first verdict",
                  cursor.substr(0, 80), campaign_id));
  if (!cursor.starts_with("c1.")) return bad;
  std::optional<std::string> text = Unbase64(cursor.substr(3));
  if (!text.has_value()) return bad;
  const std::size_t slash = text->rfind('/');
  if (slash == std::string::npos || std::string_view(*text).substr(0, slash) != campaign_id) {
    return bad;
  }
  std::optional<std::int64_t> seq = ParseId(std::string_view(*text).substr(slash + 1));
  if (!seq.has_value()) return bad;
  return *seq;
}

std::string EncodePageToken(std::string_view scope, std::int64_t after) {
  return Base64(fmt::format("p1|{}|{}", scope, after));
}

absl::StatusOr<std::optional<std::int64_t>> DecodePageToken(std::string_view scope,
                                                            std::string_view token) {
  if (token.empty()) return std::optional<std::int64_t>();
  const absl::Status bad = absl::InvalidArgumentError(
      "page_token is not one this RPC issued for these request fields; start again without it");
  std::optional<std::string> text = Unbase64(token);
  if (!text.has_value()) return bad;
  const std::string prefix = fmt::format("p1|{}|", scope);
  if (!std::string_view(*text).starts_with(prefix)) return bad;
  std::optional<std::int64_t> after = ParseId(std::string_view(*text).substr(prefix.size()));
  if (!after.has_value()) return bad;
  return std::optional<std::int64_t>(*after);
}

int PageSize(const v1::Page& page) {
  if (page.page_size() == 0) return 50;
  return static_cast<int>(std::min<std::uint32_t>(page.page_size(), 500));
}

std::optional<std::int64_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace greenloop::feedback
