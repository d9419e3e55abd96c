// PgFeedbackStore's bearer tokens (auth_tokens): created hashed, looked up by hash, revoked with
// the last-admin guard.
#include "fmt/format.h"
#include "services/feedback/storage/pg_rows.h"
#include "services/feedback/storage/pg_store.h"

namespace greenloop::feedback {

using storage::Bytes;
using storage::kTokenColumns;
using storage::TokenFromRow;

absl::StatusOr<v1::TokenInfo> PgFeedbackStore::CreateToken(const std::string& name, v1::Role role,
                                                           const std::string& hash,
                                                           const std::string& prefix,
                                                           std::optional<absl::Time> expire_time) {
  return pool_->Run([&](pqxx::work& tx) {
    return TokenFromRow(tx.exec_params1(
        "INSERT INTO auth_tokens (name, role, token_prefix, token_hash, expire_time) "
        "VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN to_timestamp($6) END) RETURNING " +
            kTokenColumns,
        name, static_cast<int>(role), prefix, Bytes(hash), expire_time.has_value(),
        expire_time.has_value() ? static_cast<double>(absl::ToUnixMicros(*expire_time)) / 1e6
                                : 0.0));
  });
}

absl::StatusOr<v1::TokenInfo> PgFeedbackStore::RevokeToken(std::int64_t token_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<v1::TokenInfo> {
    // Revokes are serialized so that two admins cannot revoke each other's last tokens at once.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('feedback-revoke'))");
    pqxx::result t = tx.exec_params(
        "SELECT " + kTokenColumns + " FROM auth_tokens WHERE token_id = $1 FOR UPDATE", token_id);
    if (t.empty()) return absl::NotFoundError(fmt::format("token '{}' does not exist", token_id));
    v1::TokenInfo info = TokenFromRow(t[0]);
    if (info.has_revoke_time()) return info;
    if (info.role() == v1::ROLE_ADMIN &&
        tx.exec_params1("SELECT count(*) FROM auth_tokens WHERE role = 3 AND token_id <> $1 "
                        "AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())",
                        token_id)[0]
                .as<std::int64_t>() == 0) {
      return absl::FailedPreconditionError(
          "this is the last live admin token; create another admin token before revoking it");
    }
    info =
        TokenFromRow(tx.exec_params1("UPDATE auth_tokens SET revoke_time = now() "
                                     "WHERE token_id = $1 RETURNING " +
                                         kTokenColumns,
                                     token_id));
    // A revoked rater's live leases go back to the pool at once.
    tx.exec_params(
        "WITH released AS (UPDATE feedback_leases SET state = 3, end_time = now() "
        "  WHERE rater_id = $1 AND state = 0 RETURNING item_id), "
        "counts AS (SELECT item_id, count(*) AS n FROM released GROUP BY item_id) "
        "UPDATE feedback_items i SET holds = i.holds - counts.n FROM counts "
        "WHERE i.item_id = counts.item_id",
        std::to_string(token_id));
    return info;
  });
}

absl::StatusOr<std::vector<std::pair<std::int64_t, v1::TokenInfo>>> PgFeedbackStore::ListTokens(
    bool include_revoked, v1::Role role, std::optional<std::int64_t> after, int limit) {
  return pool_->Run([&](pqxx::work& tx) {
    std::vector<std::pair<std::int64_t, v1::TokenInfo>> out;
    for (const auto& r : tx.exec_params(
             "SELECT " + kTokenColumns +
                 " FROM auth_tokens WHERE ($1 OR (revoke_time IS NULL AND "
                 "(expire_time IS NULL OR expire_time > now()))) AND ($2 = 0 OR role = $2) "
                 "AND token_id > $3 ORDER BY token_id LIMIT $4",
             include_revoked, static_cast<int>(role), after.value_or(0), limit)) {
      out.emplace_back(r[0].as<std::int64_t>(), TokenFromRow(r));
    }
    return out;
  });
}

absl::StatusOr<std::optional<TokenRecord>> PgFeedbackStore::FindToken(const std::string& hash) {
  return pool_->Run([&](pqxx::work& tx) {
    tx.exec_params(
        "UPDATE auth_tokens SET last_use_time = date_trunc('minute', now()) "
        "WHERE token_hash = $1 AND (last_use_time IS NULL OR "
        "last_use_time < date_trunc('minute', now()))",
        Bytes(hash));
    pqxx::result r = tx.exec_params(
        "SELECT " + kTokenColumns + " FROM auth_tokens WHERE token_hash = $1", Bytes(hash));
    std::optional<TokenRecord> out;
    if (!r.empty()) out = TokenRecord{TokenFromRow(r[0]), Bytes(r[0][8])};
    return out;
  });
}

absl::StatusOr<v1::TokenInfo> PgFeedbackStore::GetToken(std::int64_t token_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<v1::TokenInfo> {
    pqxx::result r = tx.exec_params(
        "SELECT " + kTokenColumns + " FROM auth_tokens WHERE token_id = $1", token_id);
    if (r.empty()) return absl::NotFoundError(fmt::format("token '{}' does not exist", token_id));
    return TokenFromRow(r[0]);
  });
}

absl::StatusOr<bool> PgFeedbackStore::HasLiveAdmin() {
  return pool_->Run([&](pqxx::work& tx) {
    return tx
        .exec1(
            "SELECT EXISTS (SELECT 1 FROM auth_tokens WHERE role = 3 AND revoke_time IS NULL "
            "AND (expire_time IS NULL OR expire_time > now()))")[0]
        .as<bool>();
  });
}

absl::StatusOr<std::int64_t> PgFeedbackStore::RevocationMark() {
  return pool_->Run([&](pqxx::work& tx) {
    return tx
        .exec1(
            "SELECT coalesce(max(extract(epoch from revoke_time) * 1e6), 0)::bigint "
            "FROM auth_tokens WHERE revoke_time IS NOT NULL")[0]
        .as<std::int64_t>();
  });
}

}  // namespace greenloop::feedback
