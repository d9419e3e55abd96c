#include "services/feedback/core/tokens.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "fmt/format.h"

namespace greenloop::feedback {

absl::StatusOr<std::string> GenerateTokenSecret() {
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string secret = "glt_";
  while (secret.size() < 44) {
    unsigned char buf[64];
    if (RAND_bytes(buf, sizeof buf) != 1) {
      return absl::InternalError("the OS random source failed (RAND_bytes)");
    }
    for (unsigned char b : buf) {
      if (b >= 248) continue;  // 248 = 4 × 62: reject to keep the draw uniform
      secret += kAlphabet[b % 62];
      if (secret.size() == 44) break;
    }
  }
  return secret;
}

std::string HashTokenSecret(std::string_view secret) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

std::string TokenPrefix(std::string_view secret) { return std::string(secret.substr(0, 8)); }

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool HasGeneratedForm(std::string_view secret) {
  return secret.size() == 44 && secret.substr(0, 4) == "glt_" &&
         std::all_of(secret.begin() + 4, secret.end(), IsBase62);
}

// `secret` lower-cased with '-' and '_' dropped, so "CHANGE-ME" and "change_me" read "changeme".
std::string Folded(std::string_view secret) {
  std::string out;
  for (char c : secret) {
    if (c == '-' || c == '_') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

absl::Status CheckBootstrapSecret(std::string_view setting, std::string_view secret) {
  const std::string advice = fmt::format(
      "use a generated token (greenloop token create prints one) or at least {} random "
      "characters (e.g. openssl rand -base64 32)",
      kMinChosenSecretLength);
  if (!HasGeneratedForm(secret) && secret.size() < kMinChosenSecretLength) {
    return absl::InvalidArgumentError(
        fmt::format("{} is too short to be an admin token ({} characters); {}", setting,
                    secret.size(), advice));
  }
  const std::string folded = Folded(secret);
  for (std::string_view word :
       {"changeme", "placeholder", "example", "replace", "password", "secret"}) {
    if (folded.find(word) != std::string::npos) {
      return absl::InvalidArgumentError(
          fmt::format("{} holds a placeholder ('{}'), not a secret; {}", setting, word, advice));
    }
  }
  const std::set<char> distinct(secret.begin(), secret.end());
  if (distinct.size() < 10) {
    return absl::InvalidArgumentError(fmt::format(
        "{} does not look random ({} distinct characters); {}", setting, distinct.size(), advice));
  }
  return absl::OkStatus();
}

}  // namespace greenloop::feedback
