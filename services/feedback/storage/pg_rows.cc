#include "services/feedback/storage/pg_rows.h"

#include "fmt/format.h"
#include "google/protobuf/util/time_util.h"

namespace greenloop::feedback::storage {

std::string Epoch(std::string_view column) { return fmt::format("extract(epoch from {})", column); }

google::protobuf::Timestamp Ts(double epoch_seconds) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
      std::llround(epoch_seconds * 1e6));
}

absl::Time Time(double epoch_seconds) {
  return absl::FromUnixMicros(std::llround(epoch_seconds * 1e6));
}

std::string IdArray(const std::vector<std::int64_t>& ids) {
  return fmt::format("{{{}}}", fmt::join(ids, ","));
}

std::vector<double> ParseDoubles(const std::string& text) {
  std::vector<double> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(std::stod(text.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

absl::Status CampaignNotFound(const std::string& id) {
  return absl::NotFoundError(fmt::format("campaign '{}' does not exist", id));
}

absl::Status LeaseNotFound(std::int64_t id) {
  return absl::NotFoundError(fmt::format("lease '{}' does not exist", id));
}

const std::string kTokenColumns = fmt::format(
    "token_id, name, role, token_prefix, {}, {}, {}, {}, token_hash", Epoch("create_time"),
    Epoch("expire_time"), Epoch("revoke_time"), Epoch("last_use_time"));

v1::TokenInfo TokenFromRow(const pqxx::row& r) {
  v1::TokenInfo t;
  t.set_token_id(r[0].as<std::string>());
  t.set_name(r[1].as<std::string>());
  t.set_role(static_cast<v1::Role>(r[2].as<int>()));
  t.set_token_prefix(r[3].as<std::string>());
  *t.mutable_create_time() = Ts(r[4].as<double>());
  if (!r[5].is_null()) *t.mutable_expire_time() = Ts(r[5].as<double>());
  if (!r[6].is_null()) *t.mutable_revoke_time() = Ts(r[6].as<double>());
  if (!r[7].is_null()) *t.mutable_last_use_time() = Ts(r[7].as<double>());
  return t;
}

}  // namespace greenloop::feedback::storage
