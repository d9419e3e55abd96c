#include "common/grpc/auth.h"

#include <algorithm>
#include <cctype>
#include <cstddef>

#include "absl/status/status.h"

namespace greenloop::rpc {
namespace {

constexpr std::string_view kAuthorizationKey = "authorization";
constexpr std::string_view kBearerScheme = "bearer ";

// Debian's abseil is built with its own absl::string_view (not std::string_view), so absl's string
// helpers are avoided here in favour of these two.
bool StartsWithIgnoreCase(std::string_view text, std::string_view lower_prefix) {
  if (text.size() < lower_prefix.size()) return false;
  for (std::size_t i = 0; i < lower_prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != lower_prefix[i]) return false;
  }
  return true;
}

std::string_view StripSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Compares without an early exit on the first differing byte. The length of `presented` is
// observable through timing; its contents are not.
bool ConstantTimeEquals(std::string_view stored, std::string_view presented) {
  unsigned char diff = stored.size() == presented.size() ? 0 : 1;
  for (std::size_t i = 0; i < presented.size(); ++i) {
    const unsigned char s =
        stored.empty() ? 0 : static_cast<unsigned char>(stored[i % stored.size()]);
    diff |= static_cast<unsigned char>(s ^ static_cast<unsigned char>(presented[i]));
  }
  return diff == 0 && !stored.empty();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRater:
      return "rater";
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

StaticAuthenticator::StaticAuthenticator(std::vector<std::pair<std::string, Principal>> tokens)
    : tokens_(std::move(tokens)) {}

absl::StatusOr<Principal> StaticAuthenticator::Authenticate(std::string_view bearer_token) const {
  const Principal* found = nullptr;
  for (const auto& [token, principal] : tokens_) {
    // No break: every entry costs the same whether or not an earlier one matched.
    if (ConstantTimeEquals(token, bearer_token)) {
      found = &principal;
    }
  }
  if (found == nullptr) {
    return absl::UnauthenticatedError("unknown bearer token");
  }
  return *found;
}

absl::StatusOr<std::string_view> BearerToken(const ::grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto [begin, end] =
      metadata.equal_range(::grpc::string_ref(kAuthorizationKey.data(), kAuthorizationKey.size()));
  if (begin == end) {
    return absl::UnauthenticatedError(
        "missing credentials: send metadata 'authorization: Bearer <token>'");
  }
  if (std::next(begin) != end) {
    return absl::UnauthenticatedError("more than one 'authorization' metadata entry");
  }
  const std::string_view value(begin->second.data(), begin->second.size());
  if (!StartsWithIgnoreCase(value, kBearerScheme)) {
    return absl::UnauthenticatedError(
        "malformed 'authorization' metadata: expected 'Bearer <token>'");
  }
  const std::string_view token = StripSpaces(value.substr(kBearerScheme.size()));
  if (token.empty()) {
    return absl::UnauthenticatedError("empty bearer token in 'authorization' metadata");
  }
  return token;
}

absl::StatusOr<Principal> Authorize(const ::grpc::ServerContextBase& context,
                                    const Authenticator& authenticator,
                                    std::initializer_list<Role> allowed) {
  absl::StatusOr<std::string_view> token = BearerToken(context);
  if (!token.ok()) {
    return token.status();
  }
  absl::StatusOr<Principal> principal = authenticator.Authenticate(*token);
  if (!principal.ok()) {
    return principal.status();
  }
  if (allowed.size() != 0 &&
      std::find(allowed.begin(), allowed.end(), principal->role) == allowed.end()) {
    std::string needed;
    for (const Role role : allowed) {
      if (!needed.empty()) needed += " or ";
      needed += RoleName(role);
    }
    return absl::PermissionDeniedError("'" + principal->name + "' has role " +
                                       std::string(RoleName(principal->role)) +
                                       "; this method needs role " + needed);
  }
  return principal;
}

}  // namespace greenloop::rpc
