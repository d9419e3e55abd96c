// The figures a feature-feedback experiment (a spec with a decoy) is judged by, one `features:`
// line per mode, over its paired seeds:
//
//   features: DATASET MODE test=0.NNNN decoy_saliency=0.NN energy_to_target=NNN.N J share=0.NN
//             rater_min=N seeds=N
//
//   test              mean test accuracy of the final models (the test split, its decoys shaded at
//                     random; the same images in every mode)
//   decoy_saliency    mean share of their input-gradient saliency on the decoy
//   (Run.decoy_saliency);
//                     "nan" when no run has one
//   energy_to_target  mean estimated joules (trainer and infrastructure) to the spec's target, over
//                     the seeds that reached it; "nan" when none did
//   share             mean of each reaching run's energy to target over its seed's baseline energy
//                     per step times the steps the run took: what a step of the mode costs
//                     against a baseline step (RRR's double backprop shows here); "nan" as above
//   rater_min         mean modelled rater-minutes
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tools/greenloop/experiment/results.pb.h"

namespace greenloop::experiment {

// Whether any run of `result` carries a decoy saliency (the spec planted a decoy).
bool HasDecoy(const cli::ExperimentResult& result);

// The `features:` lines, one per mode in first-run order; empty without a decoy.
std::string FeatureLines(const cli::ExperimentResult& result);

// The report's section on the decoy ("## Feature feedback"): the lines, what each field means,
// and what the first seed's final models look at (ExplanationPictures, the words of text runs);
// empty without a decoy.
std::string FeatureMarkdown(const cli::ExperimentResult& result);

// The pictures of what the final models look at: for the first seed of each mode whose run has
// one, the file name the report gives it ("explanation-MODE.png") and its PNG bytes.
std::vector<std::pair<std::string, std::string>> ExplanationPictures(
    const cli::ExperimentResult& result);

}  // namespace greenloop::experiment
