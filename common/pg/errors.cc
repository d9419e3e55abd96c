#include "common/pg/errors.h"

#include <exception>
#include <optional>
#include <pqxx/except>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace greenloop::pg {
namespace {

// The server's primary message: the first line of what(), without its "ERROR:  " severity.
std::string PrimaryMessage(std::string_view what) {
  std::string_view line = what.substr(0, what.find('\n'));
  for (std::string_view severity : {"ERROR:", "FATAL:", "PANIC:"}) {
    if (line.starts_with(severity)) {
      line.remove_prefix(severity.size());
      break;
    }
  }
  return OneLine(line);
}

// SQLSTATEs greenloop's stored functions raise (RAISE ... USING ERRCODE = 'GL404').
std::optional<absl::StatusCode> GreenloopCode(std::string_view state) {
  if (state == "GL404") return absl::StatusCode::kNotFound;
  if (state == "GL409") return absl::StatusCode::kAlreadyExists;
  if (state == "GL412") return absl::StatusCode::kFailedPrecondition;
  return std::nullopt;
}

absl::StatusCode CodeFromSqlState(std::string_view state) {
  if (state == "23505") return absl::StatusCode::kAlreadyExists;
  if (state == "23503" || state == "23001" || state == "23P01") {
    return absl::StatusCode::kFailedPrecondition;
  }
  if (state == "23502" || state == "23514") return absl::StatusCode::kInvalidArgument;
  if (state.starts_with("22")) return absl::StatusCode::kInvalidArgument;
  if (state.starts_with("40") || state == "55P03") return absl::StatusCode::kAborted;
  if (state == "57014") return absl::StatusCode::kDeadlineExceeded;
  if (state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (state.starts_with("53")) return absl::StatusCode::kUnavailable;
  return absl::StatusCode::kInternal;
}

}  // namespace

std::string OneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (char c : text) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

bool IsConnectionLost(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string& state = sql->sqlstate();
    return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03";
  }
  return false;
}

absl::Status StatusFromException(const std::exception& e) {
  const std::string_view what = e.what();
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    // libpqxx 6 reports most losses as "Could not obtain client encoding: not connected." (it
    // asks the dead connection for its encoding before looking at the server's last words).
    std::string reason = PrimaryMessage(what);
    if (reason.find("client encoding") != std::string::npos)
      reason = "server closed the connection";
    return absl::UnavailableError(absl::StrCat("lost the connection to PostgreSQL: ", reason));
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) {
    return absl::UnknownError(absl::StrCat(
        "lost the connection to PostgreSQL while committing; the transaction may or may not have "
        "been applied: ",
        PrimaryMessage(what)));
  }
  // libpqxx 6 throws these for SQLSTATE class 40 without keeping the SQLSTATE.
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return absl::AbortedError(
        absl::StrCat("transaction rolled back by PostgreSQL: ", PrimaryMessage(what)));
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string& state = sql->sqlstate();
    if (std::optional<absl::StatusCode> own = GreenloopCode(state)) {
      return absl::Status(*own, PrimaryMessage(what));
    }
    const absl::StatusCode code = CodeFromSqlState(state);
    const std::string suffix = state.empty() ? "" : absl::StrCat(" (SQLSTATE ", state, ")");
    if (code == absl::StatusCode::kInternal) {
      // The whole text, DETAIL and HINT included: INTERNAL messages stay in the logs.
      const size_t newline = what.find('\n');
      const std::string rest =
          newline == std::string_view::npos ? "" : OneLine(what.substr(newline));
      return absl::InternalError(absl::StrCat("PostgreSQL: ", PrimaryMessage(what),
                                              rest.empty() ? "" : " ", rest, suffix));
    }
    return absl::Status(code, absl::StrCat(PrimaryMessage(what), suffix));
  }
  if (dynamic_cast<const pqxx::usage_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::conversion_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::internal_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::range_error*>(&e) != nullptr) {
    return absl::InternalError(absl::StrCat("libpqxx: ", OneLine(what)));
  }
  return absl::InternalError(OneLine(what));
}

}  // namespace greenloop::pg
