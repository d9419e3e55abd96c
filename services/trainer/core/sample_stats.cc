#include "services/trainer/core/sample_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace greenloop::trainer {

namespace {
constexpr std::size_t kPacked = 5;  // floats per sample in EpochBuffer()
}  // namespace

SampleStats::SampleStats(std::size_t n)
    : seen_(n, 0),
      seen_this_epoch_(n, 0),
      loss_(n, 0.0f),
      relative_(n, 0.0f),
      predicted_(n, -1),
      predicted_p_(n, 0.0f),
      step_(n, 0) {}

void SampleStats::Set(std::size_t p, float loss, float relative, std::int64_t predicted,
                      float predicted_p, std::uint64_t step) {
  if (seen_[p] == 0) ++seen_count_;
  seen_[p] = 1;
  seen_this_epoch_[p] = 1;
  loss_[p] = loss;
  relative_[p] = relative;
  predicted_[p] = predicted;
  predicted_p_[p] = predicted_p;
  step_[p] = step;
}

void SampleStats::Record(std::span<const std::int64_t> positions, std::span<const float> losses,
                         std::span<const float> probs, int classes, std::uint64_t step) {
  if (positions.empty()) return;
  const double mean =
      std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
  const double scale = mean > 1e-12 ? 1.0 / mean : 0.0;
  const auto k = static_cast<std::size_t>(classes);
  for (std::size_t i = 0; i < positions.size(); ++i) {
    const float* row = probs.data() + i * k;
    const auto top = static_cast<std::size_t>(std::max_element(row, row + k) - row);
    Set(static_cast<std::size_t>(positions[i]), losses[i], static_cast<float>(losses[i] * scale),
        static_cast<std::int64_t>(top), row[top], step);
  }
}

std::vector<float> SampleStats::EpochBuffer() const {
  std::vector<float> out(kPacked * size(), 0.0f);
  for (std::size_t p = 0; p < size(); ++p) {
    if (seen_this_epoch_[p] == 0) continue;
    float* o = out.data() + kPacked * p;
    o[0] = 1.0f;
    o[1] = loss_[p];
    o[2] = relative_[p];
    o[3] = static_cast<float>(predicted_[p]) + predicted_p_[p] / 2.0f;
    o[4] = static_cast<float>(step_[p]);
  }
  return out;
}

void SampleStats::Absorb(std::span<const float> summed) {
  for (std::size_t p = 0; p < size() && kPacked * p + kPacked - 1 < summed.size(); ++p) {
    const float* in = summed.data() + kPacked * p;
    if (in[0] < 0.5f) continue;
    const float cls = std::floor(in[3]);
    Set(p, in[1], in[2], static_cast<std::int64_t>(cls), 2.0f * (in[3] - cls),
        static_cast<std::uint64_t>(in[4]));
  }
}

void SampleStats::NewEpoch() { std::fill(seen_this_epoch_.begin(), seen_this_epoch_.end(), 0); }

namespace {

double Normal(double x, double mean, double var) {
  constexpr double kInvSqrt2Pi = 0.3989422804014327;
  const double d = x - mean;
  return kInvSqrt2Pi / std::sqrt(var) * std::exp(-0.5 * d * d / var);
}

double Quantile(std::vector<double> sorted_copy, double q) {
  std::sort(sorted_copy.begin(), sorted_copy.end());
  const auto i = static_cast<std::size_t>(q * static_cast<double>(sorted_copy.size() - 1));
  return sorted_copy[i];
}

}  // namespace

MixtureFit FitTwoGaussians(std::span<const double> values, int iterations) {
  MixtureFit fit;
  const std::size_t n = values.size();
  fit.posterior_high.assign(n, 0.0);
  if (n < 4) return fit;
  std::vector<double> x(values.begin(), values.end());
  double m0 = Quantile(x, 0.25);
  double m1 = Quantile(x, 0.90);
  const double total_mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  double total_var = 0;
  for (double v : x) total_var += (v - total_mean) * (v - total_mean);
  total_var /= static_cast<double>(n);
  if (!(total_var > 1e-12) || m1 <= m0) return fit;
  const double floor = std::max(1e-6, total_var * 1e-3);
  double v0 = total_var / 4;
  double v1 = total_var / 4;
  double w1 = 0.3;
  std::vector<double>& r = fit.posterior_high;
  for (int it = 0; it < iterations; ++it) {
    double s0 = 0, s1 = 0, x0 = 0, x1 = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double a = (1 - w1) * Normal(x[i], m0, v0);
      const double b = w1 * Normal(x[i], m1, v1);
      r[i] = a + b > 0 ? b / (a + b) : (x[i] > (m0 + m1) / 2 ? 1.0 : 0.0);
      s1 += r[i];
      s0 += 1 - r[i];
      x1 += r[i] * x[i];
      x0 += (1 - r[i]) * x[i];
    }
    if (s0 < 1 || s1 < 1) break;
    m0 = x0 / s0;
    m1 = x1 / s1;
    double q0 = 0, q1 = 0;
    for (std::size_t i = 0; i < n; ++i) {
      q1 += r[i] * (x[i] - m1) * (x[i] - m1);
      q0 += (1 - r[i]) * (x[i] - m0) * (x[i] - m0);
    }
    v0 = std::max(floor, q0 / s0);
    v1 = std::max(floor, q1 / s1);
    w1 = s1 / static_cast<double>(n);
  }
  if (m1 < m0) {  // keep "high" the high-mean component
    std::swap(m0, m1);
    std::swap(v0, v1);
    for (double& p : r) p = 1 - p;
    w1 = 1 - w1;
  }
  fit.mean_low = m0;
  fit.mean_high = m1;
  fit.weight_high = w1;
  // Two components only when the high mean lies beyond one spread of the low one.
  fit.separated = m1 - m0 > std::sqrt(v0) && w1 > 1e-3 && w1 < 1 - 1e-3;
  if (!fit.separated) std::fill(r.begin(), r.end(), 0.0);
  return fit;
}

}  // namespace greenloop::trainer
