// Which samples to ask about, and who decides them, for the scored-pool selection (the path the
// noise review does not take).
//
// RankCandidates() scores a pool of samples from their class probabilities against the labels
// training uses (loss, margin or entropy) and keeps the best. RouteCandidate() says, per mode,
// whether a candidate is flagged automatically, asked of humans, or left alone.
// ThresholdCalibrator moves MODE_HYBRID's flag threshold to where the humans' answers about the
// band's items say it belongs.
//
// Pure functions and a plain class, no LibTorch: the loop computes the probabilities.
//
// Thread-safety: none needed for the functions; ThresholdCalibrator is owned by the loop.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "greenloop/v1/feedback.pb.h"
#include "greenloop/v1/trainer.pb.h"

namespace greenloop::trainer {

// One scored candidate of a pool.
struct ScoredCandidate {
  std::size_t index = 0;    // into the pool
  double score = 0;         // higher: more worth asking about
  std::int64_t other = -1;  // the most probable class other than the given label
  double other_p = 0;
  std::int64_t top = 0;  // the most probable class
  double top_p = 0;
};

// Scores every row of `probs` (given.size() rows × `classes`, row-major) against its label in
// `given` by `score` (SELECTION_SCORE_LOSS when unspecified) and returns the best `wanted`,
// highest score first; ties keep pool order.
std::vector<ScoredCandidate> RankCandidates(std::span<const float> probs,
                                            std::span<const std::int64_t> given,
                                            std::size_t classes, v1::SelectionScore score,
                                            std::size_t wanted);

// Where one candidate goes.
struct CandidateRoute {
  bool automatic = false;  // flagged wrong by the trainer itself (relabel to `other`)
  bool human = false;      // asked of raters
};

// MODE_AUTO flags a candidate whose other class reaches `threshold`; MODE_HITL asks humans about
// every candidate; MODE_HYBRID flags above threshold + band and asks humans within `band` of the
// threshold. Other modes route nothing.
CandidateRoute RouteCandidate(v1::Mode mode, double other_p, double threshold, double band);

// MODE_HYBRID's flag threshold, fitted to the humans' answers about items that the automatic
// score left undecided.
class ThresholdCalibrator final {
 public:
  explicit ThresholdCalibrator(double threshold) : threshold_(threshold) {}

  // Records that the item of training sample `ref` went to humans with other-class probability
  // `other_p`.
  void Offer(std::uint64_t ref, double other_p) { in_band_[ref] = other_p; }
  // Forgets an offer that never reached the queue.
  void Forget(std::uint64_t ref) { in_band_.erase(ref); }
  // Takes a human verdict: one about an offered item moves the threshold to the value, within
  // [0.5, 0.99], that best separates what humans called wrong from right (ties: the higher).
  // Other verdicts are ignored.
  void Observe(const v1::Verdict& verdict);

  double threshold() const { return threshold_; }
  const std::vector<std::pair<double, bool>>& points() const { return points_; }
  const std::map<std::uint64_t, double>& in_band() const { return in_band_; }
  // Replaces the state (from a checkpoint).
  void Restore(double threshold, std::vector<std::pair<double, bool>> points,
               std::map<std::uint64_t, double> in_band);

 private:
  double threshold_;
  std::vector<std::pair<double, bool>> points_;  // (other-class probability, humans said wrong)
  std::map<std::uint64_t, double> in_band_;
};

}  // namespace greenloop::trainer
