// The runner of "points" that the crowd sweep and the Green-ML study share: a list of runs, one
// at a time, each either resumed from what a store already holds or run now; a point that fails
// is recorded and the next one runs; an interrupted point ends the list, keeping what finished.
//
//   PointHooks hooks{.stored = [&](std::size_t i) { return store.Find(ids[i]); },
//                    .run = [&](std::size_t i) { return RunPoint(plan[i]); },
//                    .keep = [&](std::size_t i, const cli::ModeResult& m) { store.Save(i, m); }};
//   PointsOutcome outcome = RunPoints(labels, hooks, std::cerr);
//
// Thread-safety: runs the hooks on the calling thread.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/greenloop/experiment/results.pb.h"

namespace greenloop::experiment {

struct PointHooks {
  // What a store already holds for point i (a finished run: it is not run again); nullopt: run it.
  std::function<std::optional<cli::ModeResult>(std::size_t)> stored = [](std::size_t) {
    return std::nullopt;
  };
  // Runs point i. An error stops the whole list (a service down); a run that failed is a result
  // (its state "failed") and the next point runs; state "interrupted" ends the list.
  std::function<absl::StatusOr<cli::ModeResult>(std::size_t)> run;
  // Called with every point run now (not the resumed ones), before the next starts.
  std::function<void(std::size_t, const cli::ModeResult&)> keep = [](std::size_t,
                                                                     const cli::ModeResult&) {};
};

struct PointOutcome {
  std::size_t index = 0;
  cli::ModeResult run;
  bool resumed = false;  // taken from the store, not run now
};

struct PointsOutcome {
  // completed, interrupted, failed (some point failed; the others ran)
  std::string state = "completed";
  std::vector<PointOutcome> points;  // in order; the points never reached are missing
  std::size_t failed = 0;
  std::size_t resumed = 0;
};

// Runs the points labelled `labels` in order through `hooks`, writing one progress line per point
// ("[####------] 4/10 point label: succeeded, 12.3 J"). The error of hooks.run, if any, is
// returned with nothing else.
absl::StatusOr<PointsOutcome> RunPoints(const std::vector<std::string>& labels,
                                        const PointHooks& hooks, std::ostream& progress);

// "[####------]" for `done` of `total`, `width` characters inside the brackets.
std::string ProgressBar(std::size_t done, std::size_t total, std::size_t width = 20);

}  // namespace greenloop::experiment
