#include "common/pg/url.h"

#include <libpq-fe.h>

#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace greenloop::pg {
namespace {

constexpr std::string_view kMask = "***";

// Debian's abseil is built with its own absl::string_view, which does not take std::string_view;
// these small helpers keep this file on std::string_view throughout.
template <typename... Parts>
void Append(std::string* out, const Parts&... parts) {
  (out->append(std::string_view(parts)), ...);
}

template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  Append(&out, parts...);
  return out;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  for (size_t pos = text.find(separator); pos != std::string_view::npos;
       pos = text.find(separator, start)) {
    pieces.push_back(text.substr(start, pos - start));
    start = pos + 1;
  }
  pieces.push_back(text.substr(start));
  return pieces;
}

bool IsUri(std::string_view url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

// Quotes a value for the key=value form: single quotes, with \ and ' escaped.
std::string QuoteValue(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

// The parts of a URI: everything up to the path, the path (with its leading '/'), the query
// (without its '?').
struct UriParts {
  std::string_view head;
  std::string_view path;
  std::string_view query;
  bool has_query = false;
};

UriParts SplitUri(std::string_view url) {
  UriParts parts;
  const size_t scheme_end = url.find("://") + 3;
  const size_t authority_end = url.find_first_of("/?", scheme_end);
  parts.head = url.substr(0, authority_end);
  if (authority_end == std::string_view::npos) return parts;
  const size_t query_start = url.find('?', authority_end);
  parts.path = url.substr(authority_end, query_start - authority_end);
  if (query_start != std::string_view::npos) {
    parts.has_query = true;
    parts.query = url.substr(query_start + 1);
  }
  return parts;
}

std::string RedactUri(std::string_view url) {
  const UriParts parts = SplitUri(url);
  std::string out;
  // User info ends at the last '@' of the authority; its password follows the first ':'.
  const size_t scheme_end = url.find("://") + 3;
  const std::string_view authority = parts.head.substr(scheme_end);
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos) {
    const size_t colon = authority.find(':');
    Append(&out, parts.head.substr(0, scheme_end), authority.substr(0, colon + 1), kMask,
           authority.substr(at));
  } else {
    Append(&out, parts.head);
  }
  out.append(parts.path);
  if (parts.has_query) {
    out.push_back('?');
    bool first = true;
    for (std::string_view param : Split(parts.query, '&')) {
      if (!first) out.push_back('&');
      first = false;
      const size_t eq = param.find('=');
      if (param.substr(0, eq) == "password") {
        Append(&out, "password=", kMask);
      } else {
        out.append(param);
      }
    }
  }
  return out;
}

std::string MaskAfterPassword(std::string_view text) {
  const size_t pos = text.find("password");
  if (pos == std::string_view::npos) return std::string(text);
  return Cat(text.substr(0, pos), "password=", kMask);
}

std::string RedactKeywords(std::string_view text) {
  std::string out;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i < n && IsSpace(text[i])) out.push_back(text[i++]);
    if (i == n) break;
    const size_t key_start = i;
    while (i < n && text[i] != '=' && !IsSpace(text[i])) ++i;
    const std::string_view key = text.substr(key_start, i - key_start);
    out.append(key);
    while (i < n && IsSpace(text[i])) out.push_back(text[i++]);
    if (i == n || text[i] != '=') return MaskAfterPassword(text);
    out.push_back(text[i++]);
    while (i < n && IsSpace(text[i])) out.push_back(text[i++]);
    const size_t value_start = i;
    if (i < n && text[i] == '\'') {
      ++i;
      while (i < n && text[i] != '\'') i += (text[i] == '\\' && i + 1 < n) ? 2 : 1;
      if (i == n) return MaskAfterPassword(text);
      ++i;
    } else {
      while (i < n && !IsSpace(text[i])) i += (text[i] == '\\' && i + 1 < n) ? 2 : 1;
    }
    if (key == "password") {
      out.append(kMask);
    } else {
      out.append(text.substr(value_start, i - value_start));
    }
  }
  return out;
}

using ConnInfo = std::map<std::string, std::string, std::less<>>;

// Parses `url` with libpq itself, so every form and escape libpq accepts is understood.
absl::StatusOr<ConnInfo> Parse(std::string_view url) {
  char* error = nullptr;
  const std::string text(url);
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(text.c_str(), &error), &PQconninfoFree);
  if (options == nullptr) {
    std::string detail = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    while (!detail.empty() && IsSpace(detail.back())) detail.pop_back();
    const std::string redacted = RedactUrl(url);
    // libpq may quote a piece of the url (a bad escape inside a password, say); say nothing
    // more than the redacted url when the url holds a password.
    if (redacted != url) detail = "malformed connection string";
    return absl::InvalidArgumentError(Cat("invalid PostgreSQL url \"", redacted, "\": ", detail));
  }
  ConnInfo info;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val != nullptr && *o->val != '\0') info.emplace(o->keyword, o->val);
  }
  return info;
}

std::string Get(const ConnInfo& info, std::string_view key) {
  auto it = info.find(key);
  return it == info.end() ? std::string() : it->second;
}

// Sets (or adds) query parameter `key` of a URI.
std::string SetUriParameter(std::string_view url, std::string_view key, std::string_view value) {
  const UriParts parts = SplitUri(url);
  std::string out = Cat(parts.head, parts.path, "?");
  bool replaced = false;
  bool first = true;
  if (parts.has_query && !parts.query.empty()) {
    for (std::string_view param : Split(parts.query, '&')) {
      if (!first) out.push_back('&');
      first = false;
      if (param.substr(0, param.find('=')) == key) {
        Append(&out, key, "=", PercentEncode(value));
        replaced = true;
      } else {
        out.append(param);
      }
    }
  }
  if (!replaced) Append(&out, first ? "" : "&", key, "=", PercentEncode(value));
  return out;
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  return IsUri(url) ? RedactUri(url) : RedactKeywords(url);
}

absl::StatusOr<std::string> DescribeTarget(std::string_view url) {
  absl::StatusOr<ConnInfo> info = Parse(url);
  if (!info.ok()) return info.status();
  std::string host = Get(*info, "host");
  if (host.empty()) host = Get(*info, "hostaddr");
  if (host.empty()) host = "localhost";
  std::string port = Get(*info, "port");
  if (port.empty()) port = "5432";
  std::string dbname = Get(*info, "dbname");
  if (dbname.empty()) dbname = Get(*info, "user");
  return Cat(host, ":", port, "/", dbname);
}

std::string PasswordOf(std::string_view url) {
  absl::StatusOr<ConnInfo> info = Parse(url);
  return info.ok() ? Get(*info, "password") : std::string();
}

absl::StatusOr<std::string> WithDatabase(std::string_view url, std::string_view dbname) {
  if (dbname.empty()) return absl::InvalidArgumentError("database name must not be empty");
  if (!IsUri(url)) return Cat(url, " dbname=", QuoteValue(dbname));
  const UriParts parts = SplitUri(url);
  // A dbname= query parameter overrides the path, so replace it where there is one.
  if (parts.has_query) {
    for (std::string_view param : Split(parts.query, '&')) {
      if (param.substr(0, param.find('=')) == "dbname") {
        return SetUriParameter(url, "dbname", dbname);
      }
    }
  }
  std::string out = Cat(parts.head, "/", PercentEncode(dbname));
  if (parts.has_query) Append(&out, "?", parts.query);
  return out;
}

std::string WithDefaultParameter(std::string_view url, std::string_view key,
                                 std::string_view value) {
  absl::StatusOr<ConnInfo> info = Parse(url);
  if (info.ok() && info->contains(key)) return std::string(url);
  if (IsUri(url)) return SetUriParameter(url, key, value);
  return Cat(url, url.empty() ? "" : " ", key, "=", QuoteValue(value));
}

}  // namespace greenloop::pg
