// Rater load against a ServiceUnderTest: a closed loop (every rater leases and submits back to
// back) and an open loop (Poisson arrivals, latency from the intended send time).
//
// A cycle is one Submit of the rater's current item and one Lease of its next one, as a rater on
// the web page does when it answers. Both loops run for a bounded time; only cycles that start
// inside the measured window count.
//
// Thread-safety: each function runs its own threads and returns when they have joined.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/bench/feedback/service_under_test.h"

namespace greenloop::feedback::bench {

struct LoadResult {
  double seconds = 0;                         // measured window
  std::int64_t cycles = 0;                    // completed inside it
  double offered_per_s = 0;                   // open loop: arrivals scheduled per second
  double lease_p50_ms = 0, lease_p99_ms = 0;  // closed loop: each call on its own
  double submit_p50_ms = 0, submit_p99_ms = 0;
  double cycle_p50_ms = 0, cycle_p99_ms = 0;  // open loop: intended send → next item shown
  std::int64_t errors = 0;
  double cycles_per_s() const { return seconds > 0 ? static_cast<double>(cycles) / seconds : 0; }
};

/// Each of `raters` loops Lease(1) → Submit for `seconds` after one second of warm-up.
LoadResult ClosedLoop(const ServiceUnderTest& service, const std::string& campaign_id,
                      const std::vector<std::string>& raters, int seconds);

/// Each rater answers after an exponential think time of mean `think_seconds` (so the crowd
/// offers raters / think_seconds cycles per second, as a Poisson process), for `seconds`.
/// `workers` client threads send the cycles; one that is due while all are busy waits, and the
/// wait counts in its latency (no coordinated omission).
LoadResult OpenLoop(const ServiceUnderTest& service, const std::string& campaign_id,
                    const std::vector<std::string>& raters, double think_seconds, int seconds,
                    int workers = 64);

/// The text of the first failed call since the last TakeFirstError(), empty when none.
std::string TakeFirstError();

/// The `p` quantile (0..1) of `values`; 0 when empty.
double Percentile(std::vector<double> values, double p);

}  // namespace greenloop::feedback::bench
