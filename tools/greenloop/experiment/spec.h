// An experiment spec: what `greenloop experiment run SPEC.yaml` compares, read from YAML.
//
// A spec names the dataset, model, label noise, seed, budget, target accuracy, the modes to
// compare, the ranks, the simulated crowd and the services to use. LoadSpec() reads it through
// common/config, so an unknown key or an impossible value is one line naming the key and the
// file:line it came from, before anything is started:
//
//   absl::StatusOr<Spec> spec = LoadSpec("examples/fashion-mnist-noise30.yaml");
//   if (!spec.ok()) { err << spec.status().message(); return 2; }
//   v1::RunConfig config = RunConfigFor(*spec, v1::MODE_HITL, "exp-1-hitl", 0.0);
//
// Every key, its default and its meaning are listed by `greenloop experiment run --help-spec`
// (SpecUsage()) and in docs/experiment.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"

namespace greenloop::experiment {

// The simulated crowd: N raters that use the real rater API. Defaults from CIFAR-10N (Wei et al.,
// ICLR 2022): a single crowd worker is wrong about 17–18 % of the time, majority-of-3 about 9 %;
// median annotation time about 4.2 s per image. See docs/experiment.md.
struct CrowdSpec {
  std::int64_t raters = 5;
  std::int64_t ratings_per_item = 3;  // k of the campaign
  // Early agreement: an item is decided as soon as its first this-many ratings agree (the
  // campaign's agreeing_ratings; 0 = every item waits for k).
  std::int64_t agreeing_ratings = 0;
  double accuracy_mean = 0.825;  // per-rater accuracy ~ Normal(mean, sd), clamped
  double accuracy_sd = 0.08;
  double accuracy_min = 0.3;
  double spammer_share = 0.0;   // raters answering uniformly at random
  double skip_share = 0.02;     // share of items an honest rater skips (unsure)
  double seconds_median = 4.2;  // log-normal seconds per item: median, and sigma of ln
  double seconds_sigma = 0.7;
  double time_compression = 60.0;  // modelled seconds per wall second
  // Items a rater leases at once, as the rater page prefetches them (one round trip per batch;
  // the next item is on screen as the last answer is sent).
  std::int64_t lease_batch = 4;
  std::int64_t seed = 11;
  double gold_share = 0.0;
  bool show_model_prediction = false;
  // Feature questions (mode hitl_features): the cells that truly do not matter (the decoy's
  // corners when the spec plants one), each honest rater's recall of them and the precision of
  // what it marks, and the seconds per question (median; sigma as seconds_sigma). 22 s: point
  // clicks per image in Bearman et al. (ECCV 2016), against 240 s for full masks.
  std::vector<std::uint32_t> irrelevant_cells;
  // Text: the words that truly do not matter (the planted ones); a rule question's cell i is the
  // i-th word of its payload.
  std::vector<std::string> irrelevant_words;
  double feature_recall = 0.9;
  double feature_precision = 0.9;
  double feature_seconds_median = 22.0;
};

// Where the services run.
struct ServicesSpec {
  std::vector<std::string> trainers = {"127.0.0.1:7103"};  // one address per rank
  std::string energy = "127.0.0.1:7101";
  std::string feedback = "127.0.0.1:7102";
  std::string rendezvous_host = "127.0.0.1";
  std::int64_t rendezvous_port = 29500;
};

// A parsed, validated spec.
struct Spec {
  std::string path;  // where it was read from
  std::string name;  // [a-z0-9-], the prefix of the experiment id
  std::string description;
  v1::Dataset dataset = v1::DATASET_UNSPECIFIED;
  v1::ModelKind model = v1::MODEL_KIND_UNSPECIFIED;
  std::int64_t model_width = 0;  // ModelShape; 0: the model's default
  std::int64_t model_depth = 0;
  std::int64_t max_train_samples = 0;
  double noise_rate = 0.0;
  v1::LabelNoiseKind noise_kind = v1::LABEL_NOISE_KIND_SYMMETRIC;
  std::int64_t noise_seed = 7;
  std::int64_t seed = 1;
  std::int64_t batch_size = 64;
  double learning_rate = 0.001;
  std::int64_t threads = 0;  // RunConfig.threads; 0: the trainer's setting
  // RunConfig.inference: batch sizes to measure after each run (empty: none), and seconds each.
  std::vector<std::int64_t> inference_batches;
  double inference_seconds = 0.0;
  std::int64_t eval_every_steps = 0;
  std::int64_t max_epochs = 0;
  std::int64_t max_steps = 0;
  double max_energy_joules = 0.0;
  // Target accuracy in (0, 1]; when target_is_baseline_best, the baseline's best accuracy,
  // known once the baseline ran (it then runs first).
  double target_accuracy = 0.0;
  bool target_is_baseline_best = false;
  bool stop_at_target = true;   // modes other than the baseline stop once they reach the target
  std::vector<v1::Mode> modes;  // in run order; the baseline first when it sets the target
  std::int64_t ranks = 1;
  std::int64_t select_every_steps = 20;
  std::int64_t candidates_per_selection = 32;
  v1::SelectionScore selection_score = v1::SELECTION_SCORE_LOSS;
  v1::SelectionPool selection_pool = v1::SELECTION_POOL_TRAINING_BATCHES;
  double min_confidence = 0.6;
  v1::WrongLabelAction on_wrong_label = v1::WRONG_LABEL_ACTION_RELABEL;
  double flag_threshold = 0.9;
  double human_band = 0.1;
  std::int64_t projection_warmup_steps = 0;
  // Paired seeds: seed i runs every mode with seed + i, noise.seed + i and crowd.seed + i.
  std::int64_t seeds = 1;
  // Clean validation split held out of the training data; 0: evaluate on the test split.
  std::int64_t validation_samples = 0;
  std::int64_t eval_smoothing = 1;
  double pruning_ratio = 0.0;
  double pruning_anneal_fraction = 0.0;
  bool noise_review = false;
  std::int64_t review_warmup_epochs = 1;
  double review_auto_threshold = 0.9;
  double review_human_threshold = 0.5;
  std::int64_t review_min_outstanding = 0;
  double review_outstanding_seconds = 10.0;
  double review_relabel_probability = 0.6;
  std::int64_t review_every_steps = 0;
  v1::WrongLabelAction auto_on_wrong_label = v1::WRONG_LABEL_ACTION_UNSPECIFIED;
  // The planted shortcut (RunConfig.decoy) and how feature rules act on training.
  bool decoy = false;
  std::int64_t decoy_patch_pixels = 0;
  std::int64_t decoy_tokens_per_sample = 0;  // SpamAssassin: copies of the planted word; 0 = 20
  std::int64_t decoy_seed = 5;
  v1::FeatureMethod feature_method = v1::FEATURE_METHOD_RRR;
  double feature_penalty_weight = 0.0;
  std::int64_t features_ask_after_steps = 0;
  std::int64_t features_item_questions = 0;   // 0: rule questions; N: N per-item masks
  std::int64_t features_penalty_samples = 0;  // rrr on images: covered samples penalised; 0: all
  CrowdSpec crowd;
  ServicesSpec services;
  std::string output_dir = ".local/experiments";
};

// Reads and validates the spec at `path`. NOT_FOUND for a missing file; INVALID_ARGUMENT, with
// one line naming the key and its file:line, for an unknown key, a malformed or impossible value
// or an inconsistent combination (e.g. hitl without a crowd, no budget).
absl::StatusOr<Spec> LoadSpec(const std::string& path);

// Every spec key with its type, default and help, for --help.
std::string SpecUsage();

// The spec's model_shape as the trainer takes it (0: the kind's default).
v1::ModelShape ModelShapeOf(const Spec& spec);

// The trainer config of one mode of `spec`. `target_accuracy` is what the trainer stops at
// (0: none); `campaign_id` is used in human modes.
// `seed_index` picks the paired seed (0: spec.seed and noise.seed as written).
v1::RunConfig RunConfigFor(const Spec& spec, v1::Mode mode, const std::string& experiment_id,
                           const std::string& campaign_id, double target_accuracy,
                           std::int64_t seed_index = 0);

// "baseline", "hitl", "auto", "hybrid", "clean", "prune", "hitl_features", "hitl_combined".
std::string ModeName(v1::Mode mode);
// "fashion_mnist", "spam_assassin".
std::string DatasetName(v1::Dataset dataset);

// The spec's name of a model kind ("resnet") and back; "default" is MODEL_KIND_UNSPECIFIED.
std::string ModelName(v1::ModelKind kind);
std::optional<v1::ModelKind> ModelKindByName(const std::string& name);
// Every model name a spec takes, "default" first.
std::vector<std::string> ModelNames();
// Whether raters are involved in `mode`.
bool UsesHumans(v1::Mode mode);

// MODE_HITL_COMBINED: the campaign of a run's feature questions, next to its label campaign
// `campaign_id`: campaign_id + "-f".
std::string FeatureCampaignFor(const std::string& campaign_id);

}  // namespace greenloop::experiment
