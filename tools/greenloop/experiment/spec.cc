#include "tools/greenloop/experiment/spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include "common/config/config.h"
#include "services/trainer/core/run_config.h"

namespace greenloop::experiment {
namespace {

// The string-valued enums of a spec, with their proto values.
const std::map<std::string, v1::Dataset>& Datasets() {
  static const auto* m = new std::map<std::string, v1::Dataset>{
      {"fashion_mnist", v1::DATASET_FASHION_MNIST}, {"spam_assassin", v1::DATASET_SPAM_ASSASSIN}};
  return *m;
}
const std::map<std::string, v1::ModelKind>& Models() {
  static const auto* m =
      new std::map<std::string, v1::ModelKind>{{"default", v1::MODEL_KIND_UNSPECIFIED},
                                               {"cnn", v1::MODEL_KIND_CNN},
                                               {"bag_of_words", v1::MODEL_KIND_BAG_OF_WORDS},
                                               {"mlp", v1::MODEL_KIND_MLP},
                                               {"lenet5", v1::MODEL_KIND_LENET5},
                                               {"resnet", v1::MODEL_KIND_RESNET},
                                               {"mobilenet", v1::MODEL_KIND_MOBILENET},
                                               {"transformer", v1::MODEL_KIND_TRANSFORMER}};
  return *m;
}
const std::map<std::string, v1::Mode>& Modes() {
  static const auto* m =
      new std::map<std::string, v1::Mode>{{"baseline", v1::MODE_BASELINE},
                                          {"hitl", v1::MODE_HITL},
                                          {"auto", v1::MODE_AUTO},
                                          {"hybrid", v1::MODE_HYBRID},
                                          {"clean", v1::MODE_CLEAN},
                                          {"prune", v1::MODE_PRUNE},
                                          {"hitl_features", v1::MODE_HITL_FEATURES},
                                          {"hitl_combined", v1::MODE_HITL_COMBINED}};
  return *m;
}

template <typename E>
std::vector<std::string> Names(const std::map<std::string, E>& m) {
  std::vector<std::string> names;
  for (const auto& [name, value] : m) names.push_back(name);
  return names;
}

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > 40) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return id.front() != '-';
}

// Raw values of the keys whose spec type differs from their YAML form.
struct Raw {
  std::string dataset;
  std::string model = "default";
  std::string noise_kind = "symmetric";
  std::string target = "baseline_best";
  std::vector<std::string> modes = {"baseline", "hitl", "auto", "hybrid"};
  std::string score = "loss";
  std::string pool = "training_batches";
  std::string on_wrong_label = "relabel";
  std::string auto_on_wrong_label = "same";
  std::string feature_method = "rrr";
  std::vector<std::string> inference_batches;
};

// inference.batch_sizes as numbers: 1 to 4096 each, at most 8.
absl::Status ParseInferenceBatches(const std::vector<std::string>& raw, Spec& spec) {
  if (raw.size() > 8) return absl::InvalidArgumentError("inference.batch_sizes: at most 8");
  for (const std::string& text : raw) {
    std::int64_t b = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), b);
    if (ec != std::errc() || end != text.data() + text.size() || b < 1 || b > 4096) {
      return absl::InvalidArgumentError(
          fmt::format("inference.batch_sizes: '{}' is not a batch size of 1 to 4096", text));
    }
    spec.inference_batches.push_back(b);
  }
  return absl::OkStatus();
}

// Training samples each dataset ships, out of which the validation split is held
// (Fashion-MNIST's training files; SpamAssassin's 6,046 mails less the 20 % test split).
std::int64_t TrainingPool(v1::Dataset dataset) {
  return dataset == v1::DATASET_SPAM_ASSASSIN ? 4836 : 60000;
}

void Bind(config::Schema& s, Spec& spec, Raw& raw) {
  CrowdSpec& c = spec.crowd;
  ServicesSpec& sv = spec.services;
  s.Add("name", &spec.name, "experiment name, [a-z0-9-], at most 40 characters; required")
      .Add("description", &spec.description, "free text shown in the report")
      .Add("dataset", &raw.dataset, "dataset; required", {.one_of = Names(Datasets())})
      .Add("model", &raw.model, "model; default picks the dataset's", {.one_of = Names(Models())})
      .Add("model_shape.width", &spec.model_width,
           "channels or units of the model's first layer; 0 = the model's default",
           {.min = 0, .max = 512})
      .Add("model_shape.depth", &spec.model_depth, "blocks or hidden layers; 0 = the default",
           {.min = 0})
      .Add("max_train_samples", &spec.max_train_samples, "training samples used; 0 = all",
           {.min = 0})
      .Add("noise.rate", &spec.noise_rate, "share of training labels corrupted, [0, 1)",
           {.min = 0.0, .max = 0.95})
      .Add("noise.kind", &raw.noise_kind, "how a corrupted label is chosen",
           {.one_of = {"symmetric", "class_dependent"}})
      .Add("noise.seed", &spec.noise_seed, "seed of the corruption", {.min = 0})
      .Add("seed", &spec.seed, "seed of every run (the same in every mode)", {.min = 0})
      .Add("batch_size", &spec.batch_size, "samples per step and rank", {.min = 1, .max = 65536})
      .Add("learning_rate", &spec.learning_rate, "Adam learning rate", {.min = 1e-7, .max = 1.0})
      .Add("threads", &spec.threads, "LibTorch threads of each run; 0 = the trainer's setting",
           {.min = 0, .max = 256})
      .Add("inference.batch_sizes", &raw.inference_batches,
           "after each run, measure the final model's inference energy at these batch sizes "
           "(e.g. [1, 8, 64, 256]; at most 8)")
      .Add("inference.seconds_per_batch", &spec.inference_seconds,
           "seconds of forward passes per inference batch size; 0 = 3", {.min = 0.0, .max = 60.0})
      .Add("eval_every_steps", &spec.eval_every_steps, "evaluate every N steps; 0 = each epoch",
           {.min = 0})
      .Add("budget.max_epochs", &spec.max_epochs, "most epochs per run; 0 = no limit", {.min = 0})
      .Add("budget.max_steps", &spec.max_steps, "most steps per run; 0 = no limit", {.min = 0})
      .Add("budget.max_energy_joules", &spec.max_energy_joules,
           "most active joules per run; 0 = no limit", {.min = 0.0})
      .Add("target_accuracy", &raw.target,
           "test accuracy to reach: a number in (0, 1], or baseline_best")
      .Add("stop_at_target", &spec.stop_at_target,
           "non-baseline modes stop when they reach the target")
      .Add("modes", &raw.modes, "modes to compare, run one after another")
      .Add("ranks", &spec.ranks, "ranks per run (one trainer address each)", {.min = 1, .max = 64})
      .Add("selection.every_steps", &spec.select_every_steps, "select candidates every N steps",
           {.min = 1})
      .Add("selection.candidates", &spec.candidates_per_selection, "candidates per selection",
           {.min = 1, .max = 500})
      .Add("selection.score", &raw.score, "how candidates are ranked",
           {.one_of = {"loss", "margin", "entropy"}})
      .Add("selection.pool", &raw.pool,
           "which samples are scored: training_batches (those trained on since the last "
           "selection, scored by their own forward pass: no extra compute) or random (a fresh "
           "pool of max(8 x candidates, 256) samples, an extra forward pass)",
           {.one_of = {"training_batches", "random"}})
      .Add("verdicts.min_confidence", &spec.min_confidence, "verdicts below are not applied",
           {.min = 0.0, .max = 1.0})
      .Add("verdicts.on_wrong_label", &raw.on_wrong_label, "what a rejected label does",
           {.one_of = {"relabel", "drop", "reweight"}})
      .Add("auto_review.flag_threshold", &spec.flag_threshold,
           "auto flags a label when another class has this probability", {.min = 0.5, .max = 0.999})
      .Add("auto_review.human_band", &spec.human_band,
           "hybrid: band around the threshold for humans", {.min = 0.0, .max = 0.5})
      .Add("verdicts.auto_on_wrong_label", &raw.auto_on_wrong_label,
           "what an automatic rejection does (same: as on_wrong_label)",
           {.one_of = {"same", "relabel", "drop", "reweight"}})
      .Add("seeds", &spec.seeds,
           "paired seeds: seed i runs every mode with seed+i, noise.seed+i, crowd.seed+i",
           {.min = 1, .max = 50})
      .Add("validation_samples", &spec.validation_samples,
           "clean validation split held out of the training data (decides targets and "
           "stopping; test reported only); 0 = evaluate on the test split",
           {.min = 0})
      .Add("eval_smoothing", &spec.eval_smoothing,
           "evaluations averaged before the target is compared (the plateau is the best such "
           "average)",
           {.min = 1, .max = 100})
      .Add("pruning.ratio", &spec.pruning_ratio,
           "InfoBatch: share of well-learnt samples left out of each epoch, [0, 1); 0 = off",
           {.min = 0.0, .max = 0.95})
      .Add("pruning.anneal_fraction", &spec.pruning_anneal_fraction,
           "share of epochs at the end without pruning; 0 = 0.125", {.min = 0.0, .max = 0.95})
      .Add("noise_review.enabled", &spec.noise_review,
           "find noisy labels from per-sample training losses (two-component mixture)")
      .Add("noise_review.warmup_epochs", &spec.review_warmup_epochs,
           "epochs of loss history before the first review", {.min = 1, .max = 100})
      .Add("noise_review.auto_threshold", &spec.review_auto_threshold,
           "posterior of the noisy component from which auto/hybrid fix a label",
           {.min = 0.5, .max = 0.9999})
      .Add("noise_review.human_threshold", &spec.review_human_threshold,
           "posterior from which humans are asked (hybrid: up to auto_threshold)",
           {.min = 0.01, .max = 0.9999})
      .Add("noise_review.min_outstanding_items", &spec.review_min_outstanding,
           "items that may await verdicts before a verdict rate is measured; 0 = 4 x candidates",
           {.min = 0, .max = 100000})
      .Add("noise_review.outstanding_seconds", &spec.review_outstanding_seconds,
           "items awaiting verdicts follow the measured verdict rate x these seconds",
           {.min = 0.1, .max = 3600.0})
      .Add("noise_review.relabel_probability", &spec.review_relabel_probability,
           "the model's probability of its class from which auto/hybrid relabel to it; below, "
           "auto drops and hybrid asks humans",
           {.min = 0.01, .max = 1.0})
      .Add("noise_review.every_steps", &spec.review_every_steps,
           "also review every N steps from step N on (the warm-up is then N steps); 0 = at "
           "epoch ends only",
           {.min = 0, .max = 1000000})
      .Add("projection.warmup_steps", &spec.projection_warmup_steps,
           "steps before the first energy projection; 0 = trainer default (50)", {.min = 0})
      .Add("crowd.raters", &c.raters, "simulated raters", {.min = 0, .max = 200})
      .Add("crowd.ratings_per_item", &c.ratings_per_item, "ratings per item (k)",
           {.min = 1, .max = 15})
      .Add("crowd.agreeing_ratings", &c.agreeing_ratings,
           "decide an item as soon as its first N ratings agree (0 = always k; else 2 to k - 1)",
           {.min = 0, .max = 14})
      .Add("crowd.accuracy_mean", &c.accuracy_mean, "mean rater accuracy", {.min = 0.0, .max = 1.0})
      .Add("crowd.accuracy_sd", &c.accuracy_sd, "spread of rater accuracy",
           {.min = 0.0, .max = 0.5})
      .Add("crowd.accuracy_min", &c.accuracy_min, "lowest drawn accuracy", {.min = 0.0, .max = 1.0})
      .Add("crowd.spammer_share", &c.spammer_share, "share of raters answering at random",
           {.min = 0.0, .max = 1.0})
      .Add("crowd.skip_share", &c.skip_share, "share of items an honest rater skips",
           {.min = 0.0, .max = 0.9})
      .Add("crowd.seconds_median", &c.seconds_median, "median seconds per item (log-normal)",
           {.min = 0.01, .max = 3600.0})
      .Add("crowd.seconds_sigma", &c.seconds_sigma, "sigma of ln(seconds per item)",
           {.min = 0.0, .max = 3.0})
      .Add("crowd.time_compression", &c.time_compression, "modelled seconds per wall-clock second",
           {.min = 1.0, .max = 1e6})
      .Add("crowd.lease_batch", &c.lease_batch,
           "items a rater leases at once (the rater page prefetches the same way)",
           {.min = 1, .max = 20})
      .Add("crowd.seed", &c.seed, "seed of the crowd", {.min = 0})
      .Add("crowd.feature_recall", &c.feature_recall,
           "feature questions: share of the truly irrelevant cells an honest rater marks",
           {.min = 0.0, .max = 1.0})
      .Add("crowd.feature_precision", &c.feature_precision,
           "feature questions: share of an honest rater's marks that are truly irrelevant",
           {.min = 0.05, .max = 1.0})
      .Add("crowd.feature_seconds_median", &c.feature_seconds_median,
           "feature questions: median seconds per question", {.min = 0.01, .max = 3600.0})
      .Add("decoy.enabled", &spec.decoy,
           "plant the decoy shortcut, which tracks the class in training and is random at "
           "validation and test (the clean mode trains without it, on the same validation and "
           "test samples): Fashion-MNIST a 4x4 corner square shaded by class, SpamAssassin a "
           "word per class (qzxham, qzxspam) a few times per mail")
      .Add("decoy.patch_pixels", &spec.decoy_patch_pixels, "side of the square; 0 = 4",
           {.min = 0, .max = 4})
      .Add("decoy.tokens_per_sample", &spec.decoy_tokens_per_sample,
           "SpamAssassin: copies of the planted word per mail; 0 = 20", {.min = 0, .max = 50})
      .Add("decoy.seed", &spec.decoy_seed, "seed of the corners and test shades", {.min = 0})
      .Add("features.method", &raw.feature_method,
           "how feature rules act: rrr (input-gradient penalty, double backprop; text: the "
           "words' contribution penalised), counterexample (masked cells taken from another "
           "image of the batch; text: masked words replaced by the batch's) or remove (text: "
           "masked words dropped)",
           {.one_of = {"rrr", "counterexample", "remove"}})
      .Add("features.penalty_weight", &spec.feature_penalty_weight,
           "lambda of the RRR penalty; 0 = calibrated to the cross-entropy", {.min = 0.0})
      .Add("features.penalty_samples", &spec.features_penalty_samples,
           "rrr on images: at most N covered samples of a batch take the penalty (drawn at "
           "random, scaled to stay unbiased); 0 = all",
           {.min = 0, .max = 4096})
      .Add("features.ask_after_steps", &spec.features_ask_after_steps,
           "hitl_features, hitl_combined: steps before the rule questions go out; 0 = 50",
           {.min = 0})
      .Add("features.item_questions", &spec.features_item_questions,
           "hitl_features, hitl_combined: 0 asks one rule per class; N asks what to ignore in N "
           "training "
           "samples instead (per-item masks, each shown with the model's explanation of it)",
           {.min = 0, .max = 500})
      .Add("crowd.gold_share", &c.gold_share, "share of gold items served",
           {.min = 0.0, .max = 0.5})
      .Add("crowd.show_model_prediction", &c.show_model_prediction,
           "raters see the model's prediction")
      .Add("services.trainers", &sv.trainers, "trainer gRPC addresses, one per rank")
      .Add("services.energy", &sv.energy, "energy collector gRPC address")
      .Add("services.feedback", &sv.feedback, "feedback service gRPC address")
      .Add("services.rendezvous_host", &sv.rendezvous_host, "rank 0's rendezvous host")
      .Add("services.rendezvous_port", &sv.rendezvous_port, "rank 0's rendezvous port",
           {.min = 1, .max = 65535})
      .Add("output_dir", &spec.output_dir, "where reports are written");
}

}  // namespace

v1::ModelShape ModelShapeOf(const Spec& spec) {
  v1::ModelShape shape;
  shape.set_width(static_cast<std::uint32_t>(spec.model_width));
  shape.set_depth(static_cast<std::uint32_t>(std::min<std::int64_t>(spec.model_depth, 1 << 20)));
  return shape;
}

namespace {

absl::Status Invalid(const std::string& path, std::string message) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", path, message));
}

// The validation split, pruning and review keys that depend on each other or on the dataset.
absl::Status FinishProtocol(const Spec& spec) {
  const std::string& p = spec.path;
  const std::int64_t pool = TrainingPool(spec.dataset);
  const std::int64_t train = spec.max_train_samples > 0 ? spec.max_train_samples : 1;
  if (spec.validation_samples > 0 && spec.validation_samples + train > pool) {
    return Invalid(p, fmt::format("validation_samples: {} validation and {} training samples do "
                                  "not fit the {} training samples {} ships (lower "
                                  "max_train_samples or validation_samples)",
                                  spec.validation_samples, spec.max_train_samples, pool,
                                  DatasetName(spec.dataset)));
  }
  if (std::find(spec.modes.begin(), spec.modes.end(), v1::MODE_PRUNE) != spec.modes.end() &&
      spec.pruning_ratio == 0.0) {
    return Invalid(p, "pruning.ratio: mode prune needs a ratio in (0, 1)");
  }
  if (spec.review_human_threshold > spec.review_auto_threshold) {
    return Invalid(p, "noise_review.human_threshold is above noise_review.auto_threshold");
  }
  return absl::OkStatus();
}

// The decoy and feature keys; the crowd knows what the decoy is (the corners, or the words).
absl::Status FinishFeatures(Spec& spec, const Raw& raw) {
  const std::string& p = spec.path;
  const bool images = spec.dataset == v1::DATASET_FASHION_MNIST;
  spec.feature_method = raw.feature_method == "counterexample" ? v1::FEATURE_METHOD_COUNTEREXAMPLE
                        : raw.feature_method == "remove"       ? v1::FEATURE_METHOD_REMOVE
                                                               : v1::FEATURE_METHOD_RRR;
  if (spec.feature_method == v1::FEATURE_METHOD_REMOVE && images) {
    return Invalid(p, "features.method: remove drops words: dataset spam_assassin only");
  }
  if (spec.decoy && images) spec.crowd.irrelevant_cells = {0, 6, 42, 48};  // the grid's corners
  if (spec.decoy && !images) spec.crowd.irrelevant_words = {"qzxham", "qzxspam"};
  return FinishProtocol(spec);
}

absl::Status Finish(Spec& spec, const Raw& raw) {
  const std::string& p = spec.path;
  if (spec.name.empty()) return Invalid(p, "name is required (e.g. name: fmnist-noise30)");
  if (!ValidId(spec.name)) {
    return Invalid(p, fmt::format("name '{}' must be 1 to 40 characters of [a-z0-9-]", spec.name));
  }
  if (raw.dataset.empty()) return Invalid(p, "dataset is required (fashion_mnist, spam_assassin)");
  spec.dataset = Datasets().at(raw.dataset);
  spec.model = Models().at(raw.model);
  if (absl::Status s = ParseInferenceBatches(raw.inference_batches, spec); !s.ok()) {
    return Invalid(p, std::string(s.message()));
  }
  const v1::ModelKind kind = trainer::ResolveModelKind(spec.model, spec.dataset);
  if (trainer::IsImageModel(kind) != (spec.dataset == v1::DATASET_FASHION_MNIST)) {
    return Invalid(p, fmt::format("model {} does not fit dataset {}", raw.model, raw.dataset));
  }
  if (absl::Status s = trainer::ValidateModelShape(kind, ModelShapeOf(spec)); !s.ok()) {
    std::string message(s.message());
    if (message.starts_with("config.")) message.erase(0, 7);  // the spec's own key
    return Invalid(p, message);
  }
  spec.noise_kind = raw.noise_kind == "symmetric" ? v1::LABEL_NOISE_KIND_SYMMETRIC
                                                  : v1::LABEL_NOISE_KIND_CLASS_DEPENDENT;
  if (spec.max_epochs == 0 && spec.max_steps == 0 && spec.max_energy_joules == 0.0) {
    return Invalid(p, "budget: set at least one of max_epochs, max_steps, max_energy_joules");
  }
  if (raw.target == "baseline_best") {
    spec.target_is_baseline_best = true;
  } else {
    double t = 0;
    const char* end = raw.target.data() + raw.target.size();
    auto [ptr, ec] = std::from_chars(raw.target.data(), end, t);
    if (ec != std::errc() || ptr != end || !(t > 0.0 && t <= 1.0)) {
      return Invalid(p, fmt::format("target_accuracy '{}' must be a number in (0, 1] or "
                                    "baseline_best",
                                    raw.target));
    }
    spec.target_accuracy = t;
  }
  if (raw.modes.empty())
    return Invalid(p,
                   "modes: name at least one of baseline, hitl, auto, hybrid, clean, prune, "
                   "hitl_features, hitl_combined");
  std::set<v1::Mode> seen;
  for (const std::string& m : raw.modes) {
    auto it = Modes().find(m);
    if (it == Modes().end()) {
      return Invalid(p, fmt::format("modes: unknown mode '{}' (baseline, hitl, auto, hybrid, "
                                    "clean, prune, hitl_features, hitl_combined)",
                                    m));
    }
    if (!seen.insert(it->second).second) return Invalid(p, fmt::format("modes: '{}' twice", m));
    spec.modes.push_back(it->second);
  }
  if (spec.target_is_baseline_best) {
    if (!seen.contains(v1::MODE_BASELINE)) {
      return Invalid(p, "target_accuracy: baseline_best needs the baseline in modes");
    }
    // The baseline sets the target, so it runs first.
    std::stable_partition(spec.modes.begin(), spec.modes.end(),
                          [](v1::Mode m) { return m == v1::MODE_BASELINE; });
  }
  const bool humans = std::any_of(spec.modes.begin(), spec.modes.end(), UsesHumans);
  if (humans && spec.crowd.raters == 0) {
    return Invalid(p,
                   "crowd.raters is 0 but hitl/hybrid need raters (simulated or people on the "
                   "web page: set crowd.raters >= 1)");
  }
  if (const std::int64_t a = spec.crowd.agreeing_ratings;
      a != 0 && (a < 2 || a >= spec.crowd.ratings_per_item)) {
    return Invalid(p, fmt::format("crowd.agreeing_ratings ({}) must be 0 or from 2 to "
                                  "crowd.ratings_per_item - 1 ({})",
                                  a, spec.crowd.ratings_per_item - 1));
  }
  if (humans && spec.crowd.raters < spec.crowd.ratings_per_item) {
    return Invalid(p, fmt::format("crowd.raters ({}) is below crowd.ratings_per_item ({}): no item "
                                  "could get its k ratings",
                                  spec.crowd.raters, spec.crowd.ratings_per_item));
  }
  if (spec.crowd.accuracy_min > spec.crowd.accuracy_mean) {
    return Invalid(p, "crowd.accuracy_min is above crowd.accuracy_mean");
  }
  if (static_cast<std::int64_t>(spec.services.trainers.size()) != spec.ranks) {
    return Invalid(p, fmt::format("services.trainers has {} addresses but ranks is {}",
                                  spec.services.trainers.size(), spec.ranks));
  }
  if (spec.services.energy.empty()) return Invalid(p, "services.energy is empty");
  if (humans && spec.services.feedback.empty()) return Invalid(p, "services.feedback is empty");
  spec.selection_score = raw.score == "loss"     ? v1::SELECTION_SCORE_LOSS
                         : raw.score == "margin" ? v1::SELECTION_SCORE_MARGIN
                                                 : v1::SELECTION_SCORE_ENTROPY;
  spec.selection_pool =
      raw.pool == "random" ? v1::SELECTION_POOL_RANDOM : v1::SELECTION_POOL_TRAINING_BATCHES;
  spec.on_wrong_label = raw.on_wrong_label == "relabel" ? v1::WRONG_LABEL_ACTION_RELABEL
                        : raw.on_wrong_label == "drop"  ? v1::WRONG_LABEL_ACTION_DROP
                                                        : v1::WRONG_LABEL_ACTION_REWEIGHT;
  spec.auto_on_wrong_label = raw.auto_on_wrong_label == "same" ? v1::WRONG_LABEL_ACTION_UNSPECIFIED
                             : raw.auto_on_wrong_label == "relabel" ? v1::WRONG_LABEL_ACTION_RELABEL
                             : raw.auto_on_wrong_label == "drop"    ? v1::WRONG_LABEL_ACTION_DROP
                                                                 : v1::WRONG_LABEL_ACTION_REWEIGHT;
  if (spec.output_dir.empty()) return Invalid(p, "output_dir is empty");
  return FinishFeatures(spec, raw);
}

}  // namespace

absl::StatusOr<Spec> LoadSpec(const std::string& path) {
  Spec spec;
  spec.path = path;
  Raw raw;
  config::Schema schema("experiment spec");
  Bind(schema, spec, raw);
  if (absl::Status s = schema.LoadFile(path, {}); !s.ok()) {
    if (absl::IsNotFound(s))
      return absl::NotFoundError(fmt::format("spec '{}' does not exist", path));
    return s;
  }
  if (absl::Status s = Finish(spec, raw); !s.ok()) return s;
  return spec;
}

std::string SpecUsage() {
  Spec spec;
  Raw raw;
  config::Schema schema("experiment spec");
  Bind(schema, spec, raw);
  return schema.Usage();
}

v1::RunConfig RunConfigFor(const Spec& spec, v1::Mode mode, const std::string& experiment_id,
                           const std::string& campaign_id, double target_accuracy,
                           std::int64_t seed_index) {
  v1::RunConfig c;
  c.set_dataset(spec.dataset);
  c.set_max_train_samples(static_cast<std::uint64_t>(spec.max_train_samples));
  if (spec.noise_rate > 0) {
    c.mutable_label_noise()->set_rate(spec.noise_rate);
    c.mutable_label_noise()->set_kind(spec.noise_kind);
    c.mutable_label_noise()->set_seed(static_cast<std::uint64_t>(spec.noise_seed + seed_index));
  }
  c.set_model_kind(spec.model);
  if (spec.model_width > 0 || spec.model_depth > 0) *c.mutable_model_shape() = ModelShapeOf(spec);
  c.set_batch_size(static_cast<std::uint32_t>(spec.batch_size));
  c.set_threads(static_cast<std::uint32_t>(spec.threads));
  for (std::int64_t b : spec.inference_batches) {
    c.mutable_inference()->add_batch_sizes(static_cast<std::uint32_t>(b));
  }
  c.mutable_inference()->set_seconds_per_batch(spec.inference_seconds);
  c.set_learning_rate(spec.learning_rate);
  c.set_seed(static_cast<std::uint64_t>(spec.seed + seed_index));
  c.set_validation_samples(static_cast<std::uint64_t>(spec.validation_samples));
  c.set_eval_smoothing(static_cast<std::uint32_t>(spec.eval_smoothing));
  if (mode != v1::MODE_BASELINE && mode != v1::MODE_CLEAN && spec.pruning_ratio > 0) {
    c.mutable_pruning()->set_ratio(spec.pruning_ratio);
    c.mutable_pruning()->set_anneal_fraction(spec.pruning_anneal_fraction);
  }
  c.set_eval_every_steps(static_cast<std::uint32_t>(spec.eval_every_steps));
  c.mutable_budget()->set_max_epochs(static_cast<std::uint32_t>(spec.max_epochs));
  c.mutable_budget()->set_max_steps(static_cast<std::uint64_t>(spec.max_steps));
  c.mutable_budget()->set_max_energy_joules(spec.max_energy_joules);
  c.set_target_accuracy(target_accuracy);
  c.set_mode(mode);
  if (mode == v1::MODE_HITL || mode == v1::MODE_AUTO || mode == v1::MODE_HYBRID ||
      mode == v1::MODE_HITL_COMBINED) {
    if (spec.noise_review) {
      v1::NoiseReview* r = c.mutable_noise_review();
      r->set_enabled(true);
      r->set_warmup_epochs(static_cast<std::uint32_t>(spec.review_warmup_epochs));
      r->set_auto_threshold(spec.review_auto_threshold);
      r->set_human_threshold(spec.review_human_threshold);
      r->set_min_outstanding_items(static_cast<std::uint32_t>(spec.review_min_outstanding));
      r->set_outstanding_seconds(spec.review_outstanding_seconds);
      r->set_relabel_probability(spec.review_relabel_probability);
      r->set_review_every_steps(static_cast<std::uint32_t>(spec.review_every_steps));
    }
    c.mutable_verdict_policy()->set_auto_on_wrong_label(spec.auto_on_wrong_label);
    c.set_select_every_steps(static_cast<std::uint32_t>(spec.select_every_steps));
    c.set_candidates_per_selection(static_cast<std::uint32_t>(spec.candidates_per_selection));
    c.set_selection_score(spec.selection_score);
    c.set_selection_pool(spec.selection_pool);
    c.mutable_verdict_policy()->set_min_confidence(spec.min_confidence);
    c.mutable_verdict_policy()->set_on_wrong_label(spec.on_wrong_label);
    c.mutable_auto_review()->set_flag_threshold(spec.flag_threshold);
    c.mutable_auto_review()->set_human_band(spec.human_band);
  }
  if (UsesHumans(mode)) {
    c.mutable_feedback()->set_endpoint(spec.services.feedback);
    c.mutable_feedback()->set_campaign_id(campaign_id);
    c.mutable_feedback()->set_ratings_per_item(
        static_cast<std::uint32_t>(spec.crowd.ratings_per_item));
    c.mutable_feedback()->set_gold_share(spec.crowd.gold_share);
    c.mutable_feedback()->set_agreeing_ratings(
        static_cast<std::uint32_t>(spec.crowd.agreeing_ratings));
    c.mutable_feedback()->set_show_model_prediction(spec.crowd.show_model_prediction);
    if (mode == v1::MODE_HITL_COMBINED) {
      c.mutable_feedback()->set_feature_campaign_id(FeatureCampaignFor(campaign_id));
    }
  }
  if (spec.decoy) {
    c.mutable_decoy()->set_enabled(true);
    c.mutable_decoy()->set_patch_pixels(static_cast<std::uint32_t>(spec.decoy_patch_pixels));
    c.mutable_decoy()->set_tokens_per_sample(
        static_cast<std::uint32_t>(spec.decoy_tokens_per_sample));
    c.mutable_decoy()->set_seed(static_cast<std::uint64_t>(spec.decoy_seed + seed_index));
  }
  if (mode == v1::MODE_HITL_FEATURES || mode == v1::MODE_HITL_COMBINED) {
    v1::FeatureFeedback* f = c.mutable_feature_feedback();
    f->set_method(spec.feature_method);
    f->set_penalty_weight(spec.feature_penalty_weight);
    f->set_ask_after_steps(static_cast<std::uint32_t>(spec.features_ask_after_steps));
    f->set_item_questions(static_cast<std::uint32_t>(spec.features_item_questions));
    f->set_penalty_samples(static_cast<std::uint32_t>(spec.features_penalty_samples));
  }
  c.set_energy_endpoint(spec.services.energy);
  c.set_experiment_id(experiment_id);
  c.set_projection_warmup_steps(static_cast<std::uint32_t>(spec.projection_warmup_steps));
  return c;
}

std::string ModeName(v1::Mode mode) {
  for (const auto& [name, m] : Modes()) {
    if (m == mode) return name;
  }
  return "unspecified";
}

std::string ModelName(v1::ModelKind kind) {
  for (const auto& [name, k] : Models()) {
    if (k == kind) return name;
  }
  return v1::ModelKind_Name(kind);
}

std::optional<v1::ModelKind> ModelKindByName(const std::string& name) {
  const auto it = Models().find(name);
  if (it == Models().end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ModelNames() {
  std::vector<std::string> names = {"default"};
  for (const auto& [name, kind] : Models()) {
    if (name != "default") names.push_back(name);
  }
  return names;
}

std::string DatasetName(v1::Dataset dataset) {
  for (const auto& [name, d] : Datasets()) {
    if (d == dataset) return name;
  }
  return "unspecified";
}

bool UsesHumans(v1::Mode mode) {
  return mode == v1::MODE_HITL || mode == v1::MODE_HYBRID || mode == v1::MODE_HITL_FEATURES ||
         mode == v1::MODE_HITL_COMBINED;
}

std::string FeatureCampaignFor(const std::string& campaign_id) { return campaign_id + "-f"; }

}  // namespace greenloop::experiment
