// The feedback commands of the `greenloop` command line (dispatched from commands.cc):
//
//   greenloop token create --role rater|worker|admin --name NAME [--expires 720h]
//   greenloop token revoke --id TOKEN_ID
//   greenloop token list [--all]
//   greenloop rate [--campaign ID] [--exit_when_empty]
//
// Every one talks to the feedback service's gRPC API: --server HOST:PORT (GREENLOOP_SERVER,
// default 127.0.0.1:7102) with --token T (GREENLOOP_TOKEN): an admin token for `token`, a rater
// token for `rate`. Same conventions as commands.h: results on `out`, one line per problem on
// `err`, exit codes kExitOk / kExitFailed / kExitUsage / kExitUnavailable.
#pragma once

#include <istream>
#include <ostream>
#include <string_view>
#include <vector>

#include "common/config/config.h"

namespace greenloop::cli {

/// Creates a token and prints it (the secret is shown only here) and its id.
int TokenCreate(const std::vector<std::string_view>& args, const config::Environment& env,
                std::ostream& out, std::ostream& err);
/// Revokes a token by id.
int TokenRevoke(const std::vector<std::string_view>& args, const config::Environment& env,
                std::ostream& out, std::ostream& err);
/// Lists tokens (live ones; --all adds revoked and expired).
int TokenList(const std::vector<std::string_view>& args, const config::Environment& env,
              std::ostream& out, std::ostream& err);
/// Rates items in the terminal: leases one, shows its text (or writes its image to a file and
/// prints a crude preview), reads one key per line from `in` (a label key, y/n, s to skip, q to
/// quit), submits, repeats. EOF or q releases the lease in hand and exits 0.
int Rate(const std::vector<std::string_view>& args, const config::Environment& env,
         std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace greenloop::cli
