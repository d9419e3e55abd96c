// Bearer token secrets: how they are made and how they are stored (hashed, never in clear).
//
// A secret is "glt_" plus 40 base62 characters (about 238 bits from the OS's CSPRNG), so one
// SHA-256 (no salt, no stretching) is enough to store it: the hash cannot be reversed and a
// database leak gives nothing to replay. Lookups go by hash; the hash found is compared again in
// constant time.
//
// Thread-safety: every function is thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace greenloop::feedback {

/// A new random secret; INTERNAL if the OS random source fails.
absl::StatusOr<std::string> GenerateTokenSecret();
/// SHA-256 of `secret`, 32 raw bytes.
std::string HashTokenSecret(std::string_view secret);
/// The first 8 characters ("glt_3kQ9"), to recognise a token without revealing it.
std::string TokenPrefix(std::string_view secret);
/// Constant-time equality of two byte strings of equal length (false when lengths differ).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

/// Fewest characters a chosen (not generated) bootstrap secret may have.
inline constexpr std::size_t kMinChosenSecretLength = 32;

/// OK when `secret` may become a working admin token at start (auth.bootstrap_admin_token): the
/// generated form ("glt_" and 40 base62 characters, GenerateTokenSecret()) or at least
/// kMinChosenSecretLength characters, either way with at least 10 distinct characters and no
/// placeholder word ("CHANGE-ME", "changeme", "placeholder", "example", "replace", "password",
/// "secret"; any case, '-' and '_' ignored: a generated secret holds one of these six-letter words
/// about once in 10⁸), so a manifest shipped with a placeholder can never open the service.
/// INVALID_ARGUMENT naming `setting` and saying how to make a good one otherwise; the value itself
/// is never echoed.
absl::Status CheckBootstrapSecret(std::string_view setting, std::string_view secret);

}  // namespace greenloop::feedback
