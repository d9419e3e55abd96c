// libpqxx exceptions, converted to greenloop's absl::Status policy (common/status/status.h).
//
// libpqxx reports every failure by throwing. Storage code catches at its boundary and converts
// once; Pool::Run and Pool::Lease::Transact already do this for the code they run, so call these
// directly only around libpqxx calls made outside them.
//
//   try {
//     pqxx::nontransaction tx(*lease);
//     tx.exec0("VACUUM widgets");
//   } catch (const std::exception& e) {
//     return pg::StatusFromException(e);
//   }
//
// The mapping (most specific first):
//
//   lost connection (pqxx::broken_connection, SQLSTATE 08xxx, 57P01-57P03)   UNAVAILABLE
//   commit outcome unknown (pqxx::in_doubt_error, statement_completion_unknown) UNKNOWN
//   serialization failure, deadlock (40xxx), lock not available (55P03)      ABORTED
//   statement timeout / cancel (57014)                                       DEADLINE_EXCEEDED
//   unique violation (23505)                                                 ALREADY_EXISTS
//   foreign key (23503), restrict (23001), exclusion (23P01) violations      FAILED_PRECONDITION
//   not-null (23502) and check (23514) violations, data exceptions (22xxx)   INVALID_ARGUMENT
//   too many connections, out of resources (53xxx)                           UNAVAILABLE
//   greenloop's own, raised by its stored functions: GL404 NOT_FOUND, GL409 ALREADY_EXISTS,
//   GL412 FAILED_PRECONDITION; the message is the contract's, shown as is (no SQLSTATE suffix)
//   anything else (syntax errors, undefined tables, std::exception)          INTERNAL
//
// Messages are one line. For INTERNAL they carry the full server text (ToGrpcStatus hides it from
// clients); for the other codes only the server's primary message and the SQLSTATE, never the
// DETAIL line, which can quote row values.
//
// Thread-safety: every function here is pure and thread-safe.
#pragma once

#include <exception>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace greenloop::pg {

// Converts an exception thrown by libpqxx, or by code running in a transaction, to a Status.
absl::Status StatusFromException(const std::exception& e);

// Returns true when `e` says the connection is gone before the transaction could commit: the
// server rolled it back, so running it again on a fresh connection is safe.
bool IsConnectionLost(const std::exception& e);

// Returns `text` on one line: newlines and tabs become single spaces, runs of spaces collapse,
// the ends are trimmed.
std::string OneLine(std::string_view text);

}  // namespace greenloop::pg
