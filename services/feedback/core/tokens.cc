#include "services/feedback/core/tokens.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

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

}  // namespace greenloop::feedback
