// The experiment commands of the `greenloop` command line (dispatched from commands.cc):
//
//   greenloop experiment run SPEC [--pg.url URL] [--auth.token T] [--auth.admin_token T]
//   greenloop experiment sweep SPEC [--raters 3,6,9] [--accuracy ...] [--spammer_share ...]
//   greenloop experiment report|greenloop report EXPERIMENT|latest --pg.url URL
//   greenloop predict --spec SPEC --pg.url URL [--node NAME] | --calibrate [--spec SPEC]
//
// Same conventions as commands.h: results on `out`, one line per problem on `err`, exit codes
// kExitOk, kExitFailed (a run failed / the experiment was interrupted), kExitUsage (bad spec or
// flags: nothing was started), kExitUnavailable (a service or PostgreSQL is down).
#pragma once

#include <ostream>
#include <string_view>
#include <vector>

#include "common/config/config.h"

namespace greenloop::cli {

int ExperimentRun(const std::vector<std::string_view>& args, const config::Environment& env,
                  std::ostream& out, std::ostream& err);
// Runs the spec's baseline once, then one short human-mode run per sweep point (crowd size, rater
// accuracy, spammer share, one factor at a time around the spec's crowd; experiment/sweep.h),
// prints the table and writes DIR/<sweep id>/sweep.{md,html}. kExitUsage for a bad spec or list
// value (nothing started), kExitUnavailable for a service or PostgreSQL down, kExitFailed when
// Ctrl-C cut the sweep short (the finished points are reported) or a run failed.
int ExperimentSweep(const std::vector<std::string_view>& args, const config::Environment& env,
                    std::ostream& out, std::ostream& err);
int ExperimentReport(const std::vector<std::string_view>& args, const config::Environment& env,
                     std::ostream& out, std::ostream& err);
int Predict(const std::vector<std::string_view>& args, const config::Environment& env,
            std::ostream& out, std::ostream& err);

}  // namespace greenloop::cli
