#include "services/trainer/core/run_config.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "common/status/status.h"
#include "services/trainer/core/verdicts.h"

namespace greenloop::trainer {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// The noise review, pruning and evaluation keys (defaults filled in place).
absl::Status ValidateReviewAndPruning(v1::RunConfig& c) {
  const v1::Pruning& pr = c.pruning();
  if (!(pr.ratio() >= 0 && pr.ratio() < 1)) {
    return Invalid(fmt::format("config.pruning.ratio must be in [0, 1), got {}", pr.ratio()));
  }
  if (!(pr.anneal_fraction() >= 0 && pr.anneal_fraction() < 1)) {
    return Invalid(fmt::format("config.pruning.anneal_fraction must be in [0, 1), got {}",
                               pr.anneal_fraction()));
  }
  if (c.mode() == v1::MODE_PRUNE && pr.ratio() == 0) {
    return Invalid("config.pruning.ratio must be > 0 in MODE_PRUNE");
  }
  const v1::NoiseReview& r = c.noise_review();
  if (!(r.auto_threshold() >= 0 && r.auto_threshold() < 1)) {
    return Invalid("config.noise_review.auto_threshold must be in (0, 1)");
  }
  const double auto_threshold = r.auto_threshold() > 0 ? r.auto_threshold() : 0.9;
  if (!(r.human_threshold() >= 0 && r.human_threshold() <= auto_threshold)) {
    return Invalid(
        fmt::format("config.noise_review.human_threshold must be in (0, {}]", auto_threshold));
  }
  if (!(r.relabel_probability() >= 0 && r.relabel_probability() <= 1)) {
    return Invalid("config.noise_review.relabel_probability must be in (0, 1]");
  }
  if (!std::isfinite(r.outstanding_seconds()) || r.outstanding_seconds() < 0) {
    return Invalid("config.noise_review.outstanding_seconds must be a non-negative number");
  }
  if (c.eval_smoothing() == 0) c.set_eval_smoothing(1);
  if (c.eval_smoothing() > 100) {
    return Invalid(fmt::format("config.eval_smoothing {} is above 100", c.eval_smoothing()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateIdentifier(std::string_view field, std::string_view value) {
  bool ok = !value.empty() && value.size() <= 63;
  for (std::size_t i = 0; ok && i < value.size(); ++i) {
    const char c = value[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    ok = alnum || (c == '-' && i > 0);
  }
  if (ok) return absl::OkStatus();
  return Invalid(fmt::format(
      "{} '{}' is malformed: use 1 to 63 characters of a-z, 0-9 and '-', starting with a letter "
      "or digit",
      field, value));
}

// The decoy: Fashion-MNIST's square (patch_pixels) or SpamAssassin's word (tokens_per_sample).
absl::Status ValidateDecoy(const v1::Decoy& d) {
  if (d.patch_pixels() > 4) {
    return Invalid(
        fmt::format("config.decoy.patch_pixels must be 1 to 4, got {}", d.patch_pixels()));
  }
  if (d.tokens_per_sample() > 50) {
    return Invalid(fmt::format("config.decoy.tokens_per_sample must be 1 to 50, got {}",
                               d.tokens_per_sample()));
  }
  return absl::OkStatus();
}

// One feature rule: cells of Fashion-MNIST's 7 × 7 grid, or (text) words; the vocabulary is
// checked when the run loads its dataset.
absl::Status ValidateRule(const v1::FeatureRule& r, int i, bool images) {
  constexpr std::uint32_t kCells = 49;
  const std::uint32_t classes = images ? 10 : 2;
  const std::string field = fmt::format("config.feature_feedback.rules[{}]", i);
  if (images && (r.irrelevant_cells().empty() || !r.irrelevant_tokens().empty())) {
    return Invalid(
        fmt::format("{}: an image rule names cells (irrelevant_cells), no words", field));
  }
  if (!images && (r.irrelevant_tokens().empty() || !r.irrelevant_cells().empty())) {
    return Invalid(fmt::format("{}: a text rule names words (irrelevant_tokens), no cells", field));
  }
  for (int j = 0; j < r.irrelevant_cells_size(); ++j) {
    if (r.irrelevant_cells(j) >= kCells) {
      return Invalid(fmt::format("{}.irrelevant_cells[{}] = {} is outside the {} cells", field, j,
                                 r.irrelevant_cells(j), kCells));
    }
  }
  for (int j = 0; j < r.irrelevant_tokens_size(); ++j) {
    if (r.irrelevant_tokens(j).empty()) {
      return Invalid(fmt::format("{}.irrelevant_tokens[{}] is empty", field, j));
    }
  }
  if (r.has_label() && r.label() >= classes) {
    return Invalid(
        fmt::format("{}.label {} is not one of the {} classes", field, r.label(), classes));
  }
  if (r.has_label() && r.has_sample()) {
    return Invalid(fmt::format("{}: a per-item mask (sample) covers one sample: no label", field));
  }
  return absl::OkStatus();
}

// The decoy and the feature feedback.
absl::Status ValidateInference(const v1::InferenceBenchmark& b) {
  if (b.batch_sizes_size() > 8) {
    return Invalid(
        fmt::format("config.inference.batch_sizes: at most 8, got {}", b.batch_sizes_size()));
  }
  for (std::uint32_t size : b.batch_sizes()) {
    if (size == 0 || size > 4096) {
      return Invalid(
          fmt::format("config.inference.batch_sizes must each be 1 to 4096, got {}", size));
    }
  }
  if (!std::isfinite(b.seconds_per_batch()) || b.seconds_per_batch() < 0 ||
      b.seconds_per_batch() > 60) {
    return Invalid(fmt::format("config.inference.seconds_per_batch must be in [0, 60], got {}",
                               b.seconds_per_batch()));
  }
  return absl::OkStatus();
}

absl::Status ValidateFeatures(const v1::RunConfig& c) {
  const bool images = c.dataset() == v1::DATASET_FASHION_MNIST;
  GREENLOOP_RETURN_IF_ERROR(ValidateDecoy(c.decoy()));
  const v1::FeatureFeedback& f = c.feature_feedback();
  if (f.method() != v1::FEATURE_METHOD_UNSPECIFIED && f.method() != v1::FEATURE_METHOD_RRR &&
      f.method() != v1::FEATURE_METHOD_COUNTEREXAMPLE && f.method() != v1::FEATURE_METHOD_REMOVE) {
    return Invalid(
        "config.feature_feedback.method must be FEATURE_METHOD_RRR, "
        "FEATURE_METHOD_COUNTEREXAMPLE or FEATURE_METHOD_REMOVE");
  }
  if (f.method() == v1::FEATURE_METHOD_REMOVE && images) {
    return Invalid(
        "config.feature_feedback.method: FEATURE_METHOD_REMOVE drops words: text datasets only");
  }
  if (!std::isfinite(f.penalty_weight()) || f.penalty_weight() < 0) {
    return Invalid(
        fmt::format("config.feature_feedback.penalty_weight must be a non-negative "
                    "number (0: calibrated), got {}",
                    f.penalty_weight()));
  }
  if (f.rules_size() > 100) return Invalid("config.feature_feedback.rules: at most 100 rules");
  if (f.item_questions() > kMaxItemQuestions) {
    return Invalid(fmt::format("config.feature_feedback.item_questions must be at most {}, got {}",
                               kMaxItemQuestions, f.item_questions()));
  }
  if (f.penalty_samples() > 4096) {
    return Invalid(
        fmt::format("config.feature_feedback.penalty_samples must be at most 4096, got {}",
                    f.penalty_samples()));
  }
  for (int i = 0; i < f.rules_size(); ++i) {
    GREENLOOP_RETURN_IF_ERROR(ValidateRule(f.rules(i), i, images));
  }
  if (!images && c.model_kind() != v1::MODEL_KIND_BAG_OF_WORDS &&
      (AsksForFeatures(c.mode()) || f.rules_size() > 0)) {
    return Invalid(fmt::format(
        "config.model_kind: feature feedback on text needs MODEL_KIND_BAG_OF_WORDS (its token "
        "contributions are exact), not {}",
        v1::ModelKind_Name(c.model_kind())));
  }
  return absl::OkStatus();
}

// The feedback service and campaigns of a mode that asks humans: an endpoint, a campaign, and in
// MODE_HITL_COMBINED a second campaign for the feature questions.
absl::Status ValidateFeedbackTarget(const v1::RunConfig& c) {
  if (!UsesHumans(c.mode())) return absl::OkStatus();
  const v1::FeedbackTarget& f = c.feedback();
  if (f.endpoint().empty()) {
    return Invalid(
        "config.feedback.endpoint is required in MODE_HITL, MODE_HYBRID, MODE_HITL_FEATURES and "
        "MODE_HITL_COMBINED");
  }
  if (f.campaign_id().empty()) {
    return Invalid(
        "config.feedback.campaign_id is required in MODE_HITL, MODE_HYBRID, MODE_HITL_FEATURES "
        "and MODE_HITL_COMBINED");
  }
  GREENLOOP_RETURN_IF_ERROR(ValidateIdentifier("config.feedback.campaign_id", f.campaign_id()));
  if (c.mode() != v1::MODE_HITL_COMBINED) return absl::OkStatus();
  if (f.feature_campaign_id().empty()) {
    return Invalid(
        "config.feedback.feature_campaign_id is required in MODE_HITL_COMBINED (the feature "
        "questions' campaign)");
  }
  GREENLOOP_RETURN_IF_ERROR(
      ValidateIdentifier("config.feedback.feature_campaign_id", f.feature_campaign_id()));
  if (f.feature_campaign_id() == f.campaign_id()) {
    return Invalid(
        "config.feedback.feature_campaign_id must differ from config.feedback.campaign_id: a "
        "campaign asks one kind of question");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RunConfig> ValidateRunConfig(const v1::RunConfig& in) {
  v1::RunConfig c = in;
  if (c.dataset() != v1::DATASET_FASHION_MNIST && c.dataset() != v1::DATASET_SPAM_ASSASSIN) {
    return Invalid(
        fmt::format("config.dataset: unknown or unset dataset {} (DATASET_FASHION_MNIST or "
                    "DATASET_SPAM_ASSASSIN)",
                    static_cast<int>(c.dataset())));
  }
  if (c.model_kind() == v1::MODEL_KIND_UNSPECIFIED) {
    c.set_model_kind(c.dataset() == v1::DATASET_SPAM_ASSASSIN ? v1::MODEL_KIND_BAG_OF_WORDS
                                                              : v1::MODEL_KIND_CNN);
  }
  GREENLOOP_RETURN_IF_ERROR(ValidateModelShape(c.model_kind(), c.model_shape()));
  if (IsImageModel(c.model_kind()) && c.dataset() != v1::DATASET_FASHION_MNIST) {
    return Invalid(
        fmt::format("config.model_kind: {} does not fit DATASET_SPAM_ASSASSIN (text); "
                    "use MODEL_KIND_BAG_OF_WORDS or MODEL_KIND_TRANSFORMER",
                    v1::ModelKind_Name(c.model_kind())));
  }
  if (!IsImageModel(c.model_kind()) && c.dataset() != v1::DATASET_SPAM_ASSASSIN) {
    return Invalid(
        fmt::format("config.model_kind: {} does not fit DATASET_FASHION_MNIST (images); use an "
                    "image model, e.g. MODEL_KIND_CNN",
                    v1::ModelKind_Name(c.model_kind())));
  }
  if (c.has_label_noise()) {
    const v1::LabelNoise& n = c.label_noise();
    if (!(n.rate() >= 0 && n.rate() < 1)) {
      return Invalid(fmt::format("config.label_noise.rate must be in [0, 1), got {}", n.rate()));
    }
    if (n.rate() > 0 && n.kind() != v1::LABEL_NOISE_KIND_SYMMETRIC &&
        n.kind() != v1::LABEL_NOISE_KIND_CLASS_DEPENDENT) {
      return Invalid("config.label_noise.kind is required when rate > 0");
    }
  }
  if (absl::Status s = ValidateFeatures(c); !s.ok()) return s;
  if (c.batch_size() == 0) c.set_batch_size(64);
  if (c.batch_size() > 65536) {
    return Invalid(fmt::format("config.batch_size {} is above 65536", c.batch_size()));
  }
  if (!std::isfinite(c.learning_rate()) || c.learning_rate() < 0) {
    return Invalid(
        fmt::format("config.learning_rate must be a positive number, got {}", c.learning_rate()));
  }
  if (c.learning_rate() == 0) c.set_learning_rate(0.001);
  if (c.threads() > 256) {
    return Invalid(fmt::format("config.threads must be at most 256, got {}", c.threads()));
  }
  GREENLOOP_RETURN_IF_ERROR(ValidateInference(c.inference()));
  const v1::Budget& b = c.budget();
  if (!std::isfinite(b.max_energy_joules()) || b.max_energy_joules() < 0) {
    return Invalid("config.budget.max_energy_joules must be a non-negative number");
  }
  if (!std::isfinite(b.max_energy_stale_seconds()) || b.max_energy_stale_seconds() < 0) {
    return Invalid("config.budget.max_energy_stale_seconds must be a non-negative number");
  }
  if (b.max_epochs() == 0 && b.max_steps() == 0 && b.max_energy_joules() == 0) {
    return Invalid("config.budget: set at least one of max_epochs, max_steps, max_energy_joules");
  }
  if (!std::isfinite(c.target_accuracy()) || c.target_accuracy() < 0 || c.target_accuracy() > 1) {
    return Invalid(
        fmt::format("config.target_accuracy must be in [0, 1], got {}", c.target_accuracy()));
  }
  if (c.mode() < v1::MODE_BASELINE || c.mode() > v1::MODE_HITL_COMBINED) {
    return Invalid(
        "config.mode is required: MODE_BASELINE, MODE_HITL, MODE_AUTO, MODE_HYBRID, MODE_CLEAN, "
        "MODE_PRUNE, MODE_HITL_FEATURES or MODE_HITL_COMBINED");
  }
  if (AsksForFeatures(c.mode()) && c.feature_feedback().ask_after_steps() == 0) {
    c.mutable_feature_feedback()->set_ask_after_steps(50);
  }
  if (JudgesSamples(c.mode()) && c.select_every_steps() == 0) {
    return Invalid(
        "config.select_every_steps must be > 0 in MODE_HITL, MODE_AUTO, MODE_HYBRID and "
        "MODE_HITL_COMBINED");
  }
  if (absl::Status s = ValidateReviewAndPruning(c); !s.ok()) return s;
  if (c.candidates_per_selection() == 0) c.set_candidates_per_selection(32);
  if (c.candidates_per_selection() > 500) {
    return Invalid("config.candidates_per_selection must be at most 500 (one EnqueueItems batch)");
  }
  if (c.selection_score() == v1::SELECTION_SCORE_UNSPECIFIED) {
    c.set_selection_score(v1::SELECTION_SCORE_LOSS);
  }
  if (c.selection_pool() == v1::SELECTION_POOL_UNSPECIFIED) {
    c.set_selection_pool(v1::SELECTION_POOL_TRAINING_BATCHES);
  }
  if (c.selection_pool() != v1::SELECTION_POOL_TRAINING_BATCHES &&
      c.selection_pool() != v1::SELECTION_POOL_RANDOM) {
    return Invalid(
        "config.selection_pool must be SELECTION_POOL_TRAINING_BATCHES or "
        "SELECTION_POOL_RANDOM");
  }
  *c.mutable_verdict_policy() = WithDefaults(c.verdict_policy());
  const v1::VerdictPolicy& p = c.verdict_policy();
  if (p.min_confidence() < 0 || p.min_confidence() > 1) {
    return Invalid("config.verdict_policy.min_confidence must be in [0, 1]");
  }
  if (p.reweight_factor() <= 0 || p.reweight_factor() >= 1) {
    return Invalid("config.verdict_policy.reweight_factor must be in (0, 1)");
  }
  if (p.relevant_weight() < 1 || p.relevant_weight() > 10) {
    return Invalid("config.verdict_policy.relevant_weight must be in [1, 10]");
  }
  v1::AutoReview* a = c.mutable_auto_review();
  if (a->flag_threshold() == 0) a->set_flag_threshold(0.9);
  if (a->human_band() == 0) a->set_human_band(0.1);
  if (a->flag_threshold() <= 0 || a->flag_threshold() >= 1) {
    return Invalid("config.auto_review.flag_threshold must be in (0, 1)");
  }
  if (a->human_band() < 0 || a->human_band() >= 0.5) {
    return Invalid("config.auto_review.human_band must be in [0, 0.5)");
  }
  GREENLOOP_RETURN_IF_ERROR(ValidateFeedbackTarget(c));
  if (c.energy_endpoint().empty()) c.set_energy_endpoint("127.0.0.1:7101");
  if (!c.experiment_id().empty()) {
    if (absl::Status s = ValidateIdentifier("config.experiment_id", c.experiment_id()); !s.ok()) {
      return s;
    }
  }
  if (c.projection_warmup_steps() == 0) c.set_projection_warmup_steps(50);
  return c;
}

absl::StatusOr<v1::StartRunRequest> ValidateStartRun(const v1::StartRunRequest& in) {
  v1::StartRunRequest r = in;
  if (absl::Status s = ValidateIdentifier("run_id", r.run_id()); !s.ok()) return s;
  if (r.world_size() == 0) r.set_world_size(1);
  if (r.world_size() > 1024) {
    return Invalid(fmt::format("world_size {} is above 1024", r.world_size()));
  }
  if (r.rank() >= r.world_size()) {
    return Invalid(fmt::format("rank {} is not below world_size {}", r.rank(), r.world_size()));
  }
  if (r.world_size() > 1 &&
      (r.rendezvous_host().empty() || r.rendezvous_port() == 0 || r.rendezvous_port() > 65535)) {
    return Invalid(
        "rendezvous_host and rendezvous_port (1-65535) are required when world_size > 1");
  }
  if (!r.has_config()) return Invalid("config is required");
  absl::StatusOr<v1::RunConfig> config = ValidateRunConfig(r.config());
  if (!config.ok()) return config.status();
  *r.mutable_config() = *std::move(config);
  return r;
}

v1::ModelKind ResolveModelKind(v1::ModelKind kind, v1::Dataset dataset) {
  if (kind != v1::MODEL_KIND_UNSPECIFIED) return kind;
  return dataset == v1::DATASET_SPAM_ASSASSIN ? v1::MODEL_KIND_BAG_OF_WORDS : v1::MODEL_KIND_CNN;
}

namespace {

struct ShapeRule {
  std::uint32_t width = 0;  // default; 0: the kind has a fixed shape
  std::uint32_t depth = 0;
  std::uint32_t max_depth = 0;
};

std::optional<ShapeRule> RuleOf(v1::ModelKind kind) {
  switch (kind) {
    case v1::MODEL_KIND_CNN:
      return ShapeRule{8, 2, 4};  // 28 → 14 → 7 → 3 → 1
    case v1::MODEL_KIND_MLP:
      return ShapeRule{256, 2, 8};
    case v1::MODEL_KIND_RESNET:
      return ShapeRule{16, 1, 8};
    case v1::MODEL_KIND_MOBILENET:
      return ShapeRule{32, 2, 8};
    case v1::MODEL_KIND_TRANSFORMER:
      return ShapeRule{64, 2, 8};
    case v1::MODEL_KIND_BAG_OF_WORDS:
      return ShapeRule{64, 0, 0};  // width only
    case v1::MODEL_KIND_LENET5:
      return ShapeRule{};
    default:
      return std::nullopt;
  }
}

constexpr std::uint32_t kMaxWidth = 512;

}  // namespace

v1::ModelShape ResolveModelShape(v1::ModelKind kind, const v1::ModelShape& shape) {
  v1::ModelShape out = shape;
  const ShapeRule rule = RuleOf(kind).value_or(ShapeRule{});
  if (out.width() == 0) out.set_width(rule.width);
  if (out.depth() == 0) out.set_depth(rule.depth);
  return out;
}

absl::Status ValidateModelShape(v1::ModelKind kind, const v1::ModelShape& shape) {
  const std::optional<ShapeRule> rule = RuleOf(kind);
  if (!rule) {
    return absl::InvalidArgumentError(
        fmt::format("config.model_kind: unknown model kind {}", static_cast<int>(kind)));
  }
  if (rule->width == 0 && (shape.width() != 0 || shape.depth() != 0)) {
    return absl::InvalidArgumentError(
        fmt::format("config.model_shape: {} has a fixed shape; leave width and depth unset",
                    v1::ModelKind_Name(kind)));
  }
  if (shape.width() > kMaxWidth) {
    return absl::InvalidArgumentError(fmt::format(
        "config.model_shape.width must be at most {}, got {}", kMaxWidth, shape.width()));
  }
  if (rule->depth == 0 && shape.depth() != 0) {
    return absl::InvalidArgumentError(fmt::format(
        "config.model_shape.depth: {} has no depth; leave it unset", v1::ModelKind_Name(kind)));
  }
  if (kind == v1::MODEL_KIND_TRANSFORMER && shape.width() % 4 != 0) {
    return absl::InvalidArgumentError(
        fmt::format("config.model_shape.width must be a multiple of 4 for MODEL_KIND_TRANSFORMER "
                    "(4 attention heads), got {}",
                    shape.width()));
  }
  if (shape.depth() > rule->max_depth) {
    return absl::InvalidArgumentError(
        fmt::format("config.model_shape.depth must be at most {} for {} (deeper leaves an empty "
                    "layer on 28 × 28 images), got {}",
                    rule->max_depth, v1::ModelKind_Name(kind), shape.depth()));
  }
  return absl::OkStatus();
}

std::string ArchitectureName(v1::ModelKind kind, const v1::ModelShape& shape) {
  const v1::ModelShape s = ResolveModelShape(kind, shape);
  if (s.width() == 0) return v1::ModelKind_Name(kind);
  if (s.depth() == 0) return fmt::format("{} width={}", v1::ModelKind_Name(kind), s.width());
  return fmt::format("{} width={} depth={}", v1::ModelKind_Name(kind), s.width(), s.depth());
}

}  // namespace greenloop::trainer
