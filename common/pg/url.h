// PostgreSQL connection strings, handled without ever showing a password.
//
// greenloop takes its PostgreSQL address as a libpq connection string, in either of libpq's forms:
// a URI (`postgresql://user:secret@127.0.0.1:5432/greenloop?sslmode=disable`) or key=value pairs
// (`host=127.0.0.1 port=5432 dbname=greenloop password=secret`). Anything that goes to a log, a
// Status message or a metric label goes through RedactUrl() or DescribeTarget() first.
//
//   logging::Info("connecting", {{"url", pg::RedactUrl(url)}});
//   // postgresql://user:***@127.0.0.1:5432/greenloop
//
// Thread-safety: every function here is pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace greenloop::pg {

// Returns `url` with every password replaced by "***": the password of a URI's user info, a
// `password=` URI query parameter and a `password=` key of the key=value form. Never fails; text
// it cannot make sense of comes back with anything after a "password" masked.
std::string RedactUrl(std::string_view url);

// Returns "host:port/dbname" (e.g. "127.0.0.1:5432/greenloop") for messages; parts the url leaves
// to libpq's defaults read "localhost", "5432" and the user name. INVALID_ARGUMENT (naming the
// redacted url) if libpq cannot parse `url`.
absl::StatusOr<std::string> DescribeTarget(std::string_view url);

// Returns the password `url` carries, or "" if none or unparsable; used to scrub text (such as a
// libpq error) that might echo it.
std::string PasswordOf(std::string_view url);

// Returns `url` with its database replaced by `dbname` (same form as the input: the URI path, or
// a trailing dbname= key). INVALID_ARGUMENT if `dbname` is empty.
absl::StatusOr<std::string> WithDatabase(std::string_view url, std::string_view dbname);

// Returns `url` with the libpq parameter `key` set to `value` unless `url` already sets it (the
// url wins): a URI query parameter, or a key=value pair appended.
std::string WithDefaultParameter(std::string_view url, std::string_view key,
                                 std::string_view value);

}  // namespace greenloop::pg
