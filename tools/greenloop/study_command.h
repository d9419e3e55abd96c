// `greenloop study SPEC.yaml`: the Green-ML study over the model zoo (experiment/study.h).
//
//   greenloop study examples/study-zoo.yaml --models=cnn,mlp,lenet5 --batch_sizes=32,128
//       [--widths=8,16] [--depths=1,2] [--learning_rates=0.001] [--threads=1,2]
//       [--inference_batches=1,8,64,256] [--study_id=ID] [--max_points=48 | --yes]
//       --pg.url URL
//
// Runs one baseline run per grid point on the real services, one at a time, each with the
// trainer's inference benchmark; stores every point in PostgreSQL (study_points, and each run as
// an experiment) as soon as it ends; writes DIR/<study id>/study.{md,html} and plots and prints
// the `study:` line. Ctrl-C ends the current point; a re-run with the same study id (the default
// is <spec name>-study) resumes the points that did not succeed.
//
// Exit codes as commands.h: kExitUsage for a bad spec or grid (one line naming the flag; nothing
// started), kExitUnavailable for a service or PostgreSQL down, kExitFailed when interrupted or a
// point failed (the others ran and are reported).
#pragma once

#include <ostream>
#include <string_view>
#include <vector>

#include "common/config/config.h"

namespace greenloop::cli {

int Study(const std::vector<std::string_view>& args, const config::Environment& env,
          std::ostream& out, std::ostream& err);

}  // namespace greenloop::cli
