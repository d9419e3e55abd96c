// What the PostgreSQL FeedbackStore's files share: lease states, bytea and timestamp conversions,
// row mappings and the contract's "does not exist" errors. Internal to services/feedback/storage.
#pragma once

#include <cmath>
#include <cstdint>
#include <pqxx/binarystring>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "greenloop/v1/feedback.pb.h"

namespace greenloop::feedback::storage {

// Lease states (feedback_leases.state).
inline constexpr int kLive = 0;
inline constexpr int kSubmitted = 1;
inline constexpr int kSkipped = 2;
inline constexpr int kReleased = 3;
inline constexpr int kExpired = 4;

inline pqxx::binarystring Bytes(const std::string& s) { return pqxx::binarystring(s); }
inline std::string Bytes(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

/// `extract(epoch from COLUMN)`: timestamps travel as epoch seconds (microsecond precision).
std::string Epoch(std::string_view column);
google::protobuf::Timestamp Ts(double epoch_seconds);
absl::Time Time(double epoch_seconds);

/// A bigint[] literal, "{1,2,3}".
std::string IdArray(const std::vector<std::int64_t>& ids);
/// "0.9,0.1,..." → doubles.
std::vector<double> ParseDoubles(const std::string& text);

absl::Status CampaignNotFound(const std::string& id);
absl::Status LeaseNotFound(std::int64_t id);

/// Columns of a token row, in TokenFromRow's order.
extern const std::string kTokenColumns;
v1::TokenInfo TokenFromRow(const pqxx::row& r);

}  // namespace greenloop::feedback::storage
