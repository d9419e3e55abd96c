// The figures an experiment over paired seeds is judged by: each mode's energy to the target as a
// share of the same seed's baseline, in two kinds (the collector's joules, and a modelled figure
// from counted multiply-accumulates), summarised over seeds as a mean with a 95 % percentile
// bootstrap confidence interval, and printed as the `headline:` lines other checks read.
//
//   ApplyTargets(result);     // per seed: the baseline's plateau, each run's energy to it
//   ApplyModelled(result);    // per seed: J/MAC fitted on the baseline, modelled energy to target
//   *result.mutable_summaries() = Summarise(result);
//   out << HeadlineLines(result);
//
// The target of seed i is its baseline's plateau: the best moving average of eval_smoothing
// consecutive evaluations (validation accuracy when the spec has a validation split). A run that
// never reaches it saved nothing: its share is max(1, its whole energy / the baseline's energy to
// target), and ModeSummary.reached says how many did.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tools/greenloop/experiment/results.pb.h"

namespace greenloop::experiment {

// The feedback infrastructure's joules over the whole run (its processes' active energy).
double InfraJoules(const cli::ModeResult& mode);

// The succeeded baseline run of paired seed `seed`; null when there is none.
const cli::ModeResult* BaselineOf(const cli::ExperimentResult& result, std::uint32_t seed);

struct MeanInterval {
  double mean = 0;
  double low = 0;
  double high = 0;
};

// Mean of `values` and the 2.5 / 97.5 percentiles of `resamples` bootstrap means (resampling
// with replacement, seeded). One value gives a zero-width interval; none gives zeros.
MeanInterval BootstrapMean(std::span<const double> values, std::uint64_t seed = 12,
                           int resamples = 10000);

// Fills every curve point's smoothed_accuracy (moving average of `window` points, from the
// window-th point on).
void Smooth(cli::ModeResult& mode, std::uint32_t window);

// Sets `mode`'s target and fills energy, steps, seconds and MACs to it from the first curve point
// whose smoothed_accuracy (Smooth()) is at or above it; clears them when none is.
void ApplyTargetToSmoothed(cli::ModeResult& mode, double target);

// Per seed: sets every run's target to its seed's baseline plateau (or the fixed target when the
// spec has one, result.target_accuracy() > 0 and not baseline_best) and fills energy, steps,
// seconds and MACs to target from the first smoothed point at or above it.
void ApplyTargets(cli::ExperimentResult& result);

// Per seed: fits joules per MAC on the baseline (its collector joules / its MACs) and sets every
// run's modelled_energy_to_target_joules.
void ApplyModelled(cli::ExperimentResult& result);

// One summary per mode, in first-run order.
std::vector<cli::ModeSummary> Summarise(const cli::ExperimentResult& result);

// `headline: MODE share=0.NN [0.LO-0.HI] modelled=0.NN [0.LO-0.HI] seeds=N val=0.NNNN
// test=0.NNNN rater_min=N`, one line per summary.
std::string HeadlineLines(const cli::ExperimentResult& result);

// The summaries as a terminal table and as a Markdown section ("## Over N paired seeds").
std::string SeedsTable(const cli::ExperimentResult& result);
std::string SeedsMarkdown(const cli::ExperimentResult& result);

}  // namespace greenloop::experiment
