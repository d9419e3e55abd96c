#include "services/feedback/storage/pg_store.h"

#include <algorithm>
#include <cmath>
#include <pqxx/binarystring>
#include <set>

#include "common/status/status.h"
#include "fmt/format.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "services/feedback/core/answers.h"
#include "services/feedback/core/tokens.h"

namespace greenloop::feedback {
namespace {

using google::protobuf::util::TimeUtil;

// Lease states (feedback_leases.state).
constexpr int kLive = 0;
constexpr int kSubmitted = 1;
constexpr int kSkipped = 2;
constexpr int kReleased = 3;
constexpr int kExpired = 4;

pqxx::binarystring Bytes(const std::string& s) { return pqxx::binarystring(s); }
std::string Bytes(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

// Timestamps travel as epoch seconds (numeric, microsecond precision).
constexpr std::string_view kEpoch = "extract(epoch from {})";
std::string Epoch(std::string_view column) { return fmt::format(fmt::runtime(kEpoch), column); }

google::protobuf::Timestamp Ts(double epoch_seconds) {
  return TimeUtil::MicrosecondsToTimestamp(std::llround(epoch_seconds * 1e6));
}
absl::Time Time(double epoch_seconds) {
  return absl::FromUnixMicros(std::llround(epoch_seconds * 1e6));
}

const std::string kCampaignColumns = fmt::format("campaign_id, spec, closed, {}, {}, seq",
                                                 Epoch("create_time"), Epoch("close_time"));

v1::Campaign CampaignFromRow(const pqxx::row& r) {
  v1::Campaign c;
  c.set_campaign_id(r[0].as<std::string>());
  c.mutable_spec()->ParseFromString(Bytes(r[1]));
  c.set_state(r[2].as<bool>() ? v1::CAMPAIGN_STATE_CLOSED : v1::CAMPAIGN_STATE_OPEN);
  *c.mutable_create_time() = Ts(r[3].as<double>());
  if (!r[4].is_null()) *c.mutable_close_time() = Ts(r[4].as<double>());
  return c;
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

absl::Status CampaignNotFound(const std::string& id) {
  return absl::NotFoundError(fmt::format("campaign '{}' does not exist", id));
}
absl::Status LeaseNotFound(std::int64_t id) {
  return absl::NotFoundError(fmt::format("lease '{}' does not exist", id));
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

// Writes a verdict with the campaign's next seq. The campaign row lock (held to commit) orders
// verdict seqs by commit.
void InsertVerdict(pqxx::work& tx, const std::string& campaign_id, std::int64_t item_id,
                   int decision, v1::Verdict verdict) {
  const std::int64_t seq =
      tx.exec_params1(
            "UPDATE feedback_campaigns SET verdicts_count = verdicts_count + 1 "
            "WHERE campaign_id = $1 RETURNING verdicts_count",
            campaign_id)[0]
          .as<std::int64_t>();
  const double now = tx.exec1("SELECT " + Epoch("now()"))[0].as<double>();
  *verdict.mutable_decide_time() = Ts(now);
  tx.exec_params(
      "INSERT INTO feedback_verdicts (campaign_id, seq, item_id, revision, decision, verdict) "
      "VALUES ($1, $2, $3, $4, $5, $6)",
      campaign_id, seq, item_id, static_cast<int>(verdict.revision()), decision,
      Bytes(verdict.SerializeAsString()));
  tx.exec_params("UPDATE feedback_items SET decided = true WHERE item_id = $1", item_id);
}

// The first verdict of a complete item: its ratings, weighted by the raters' models (Dawid–Skene
// where estimated, gold accuracy otherwise).
absl::Status DecideItem(pqxx::work& tx, const v1::CampaignSpec& spec,
                        const std::string& campaign_id, std::int64_t item_id,
                        const pqxx::row& item) {
  const int k = Categories(spec);
  std::vector<Observation> ratings;
  std::map<std::string, RaterModel> models;
  std::vector<std::string> unmodelled;
  for (const auto& r :
       tx.exec_params("SELECT r.rater_id, r.answer, array_to_string(m.confusion, ',') "
                      "FROM feedback_ratings r LEFT JOIN feedback_rater_models m "
                      "  ON m.campaign_id = r.campaign_id AND m.rater_id = r.rater_id "
                      "WHERE r.item_id = $1",
                      item_id)) {
    const std::string rater = r[0].as<std::string>();
    ratings.push_back({item_id, rater, r[1].as<int>()});
    std::vector<double> confusion;
    if (!r[2].is_null()) confusion = ParseDoubles(r[2].as<std::string>());
    if (confusion.size() == static_cast<std::size_t>(k) * k) {
      models[rater] = RaterModel{k, std::move(confusion)};
    } else {
      unmodelled.push_back(rater);
    }
  }
  if (!unmodelled.empty()) {
    for (const auto& r : tx.exec_params(
             "SELECT r.rater_id, count(*), count(*) FILTER (WHERE r.answer = i.gold_answer) "
             "FROM feedback_ratings r JOIN feedback_items i ON i.item_id = r.item_id "
             "WHERE r.campaign_id = $1 AND i.gold_answer IS NOT NULL "
             "  AND r.rater_id = ANY($2::text[]) GROUP BY r.rater_id",
             campaign_id, fmt::format("{{{}}}", fmt::join(unmodelled, ",")))) {
      models[r[0].as<std::string>()] = RaterModel::OneCoin(
          k, SmoothedGoldAccuracy(r[2].as<std::int64_t>(), r[1].as<std::int64_t>()));
    }
  }
  GREENLOOP_ASSIGN_OR_RETURN(Decision d, Decide(k, ratings, models));
  v1::Verdict v;
  v.set_item_id(std::to_string(item_id));
  v.mutable_sample()->set_dataset(static_cast<v1::Dataset>(item["dataset"].as<int>()));
  v.mutable_sample()->set_index(item["sample_index"].as<std::uint64_t>());
  if (!item["given_label"].is_null()) v.set_given_label(item["given_label"].as<std::uint32_t>());
  SetDecision(spec, d.category, &v);
  v.set_confidence(d.confidence);
  v.set_ratings_count(item["ratings_count"].as<std::uint32_t>());
  v.set_skips_count(item["skips_count"].as<std::uint32_t>());
  v.set_revision(1);
  InsertVerdict(tx, campaign_id, item_id, d.category, std::move(v));
  return absl::OkStatus();
}

// "Too many raters skipped": as many skips as ratings wanted, before k ratings came.
void MaybeUndecidable(pqxx::work& tx, const v1::CampaignSpec& spec, const std::string& campaign_id,
                      std::int64_t item_id, const pqxx::row& item) {
  if (item["decided"].as<bool>() || !item["gold_answer"].is_null()) return;
  if (item["skips_count"].as<std::uint32_t>() < spec.ratings_per_item()) return;
  v1::Verdict v;
  v.set_item_id(std::to_string(item_id));
  v.mutable_sample()->set_dataset(static_cast<v1::Dataset>(item["dataset"].as<int>()));
  v.mutable_sample()->set_index(item["sample_index"].as<std::uint64_t>());
  if (!item["given_label"].is_null()) v.set_given_label(item["given_label"].as<std::uint32_t>());
  SetDecision(spec, std::nullopt, &v);
  v.set_confidence(1);
  v.set_ratings_count(item["ratings_count"].as<std::uint32_t>());
  v.set_skips_count(item["skips_count"].as<std::uint32_t>());
  v.set_revision(1);
  InsertVerdict(tx, campaign_id, item_id, -1, std::move(v));
}

constexpr std::string_view kItemReturning =
    "RETURNING item_id, dataset, sample_index, given_label, ratings_count, skips_count, decided, "
    "gold_answer";

}  // namespace

PgFeedbackStore::PgFeedbackStore(pg::Pool* pool) : pool_(pool) {}

absl::StatusOr<v1::CampaignSpec> PgFeedbackStore::Spec(pqxx::work& tx,
                                                       const std::string& campaign_id) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = specs_.find(campaign_id); it != specs_.end()) return it->second;
  }
  pqxx::result r =
      tx.exec_params("SELECT spec FROM feedback_campaigns WHERE campaign_id = $1", campaign_id);
  if (r.empty()) return CampaignNotFound(campaign_id);
  v1::CampaignSpec spec;
  spec.ParseFromString(Bytes(r[0][0]));
  absl::MutexLock lock(&mu_);
  specs_[campaign_id] = spec;
  return spec;
}

absl::StatusOr<std::pair<v1::Campaign, bool>> PgFeedbackStore::CreateCampaign(
    const std::string& campaign_id, const v1::CampaignSpec& spec) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<std::pair<v1::Campaign, bool>> {
    pqxx::result r = tx.exec_params(
        "INSERT INTO feedback_campaigns (campaign_id, run_id, spec, ratings_per_item, "
        "lease_ttl_seconds, gold_share) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (campaign_id) DO NOTHING RETURNING " +
            kCampaignColumns,
        campaign_id, spec.run_id(), Bytes(spec.SerializeAsString()),
        static_cast<int>(spec.ratings_per_item()), static_cast<int>(spec.lease_ttl_seconds()),
        spec.gold_share());
    if (!r.empty()) return std::make_pair(CampaignFromRow(r[0]), true);
    r = tx.exec_params(
        "SELECT " + kCampaignColumns + " FROM feedback_campaigns WHERE campaign_id = $1",
        campaign_id);
    if (r.empty()) return absl::AbortedError("campaign created and removed concurrently; retry");
    v1::Campaign existing = CampaignFromRow(r[0]);
    if (!google::protobuf::util::MessageDifferencer::Equals(existing.spec(), spec)) {
      return absl::AlreadyExistsError(fmt::format(
          "campaign '{}' exists with a different spec; choose another campaign_id", campaign_id));
    }
    return std::make_pair(std::move(existing), false);
  });
}

absl::StatusOr<v1::Campaign> PgFeedbackStore::GetCampaign(const std::string& campaign_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<v1::Campaign> {
    pqxx::result r = tx.exec_params(
        "SELECT " + kCampaignColumns + " FROM feedback_campaigns WHERE campaign_id = $1",
        campaign_id);
    if (r.empty()) return CampaignNotFound(campaign_id);
    return CampaignFromRow(r[0]);
  });
}

absl::StatusOr<std::vector<std::pair<std::int64_t, v1::Campaign>>> PgFeedbackStore::ListCampaigns(
    const std::vector<v1::CampaignState>& states, const std::string& run_id,
    std::optional<std::int64_t> before_seq, int limit) {
  const bool open =
      states.empty() || std::count(states.begin(), states.end(), v1::CAMPAIGN_STATE_OPEN) > 0;
  const bool closed =
      states.empty() || std::count(states.begin(), states.end(), v1::CAMPAIGN_STATE_CLOSED) > 0;
  return pool_->Run([&](pqxx::work& tx) {
    std::vector<std::pair<std::int64_t, v1::Campaign>> out;
    for (const auto& r : tx.exec_params(
             "SELECT " + kCampaignColumns +
                 " FROM feedback_campaigns WHERE ($1 = '' OR run_id = $1) "
                 "AND ((closed AND $2) OR (NOT closed AND $3)) AND ($4 <= 0 OR seq < $4) "
                 "ORDER BY seq DESC LIMIT $5",
             run_id, closed, open, before_seq.value_or(0), limit)) {
      out.emplace_back(r[5].as<std::int64_t>(), CampaignFromRow(r));
    }
    return out;
  });
}

absl::StatusOr<v1::Campaign> PgFeedbackStore::CloseCampaign(const std::string& campaign_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<v1::Campaign> {
    pqxx::result r = tx.exec_params(
        "UPDATE feedback_campaigns SET closed = true, close_time = coalesce(close_time, now()) "
        "WHERE campaign_id = $1 RETURNING " +
            kCampaignColumns,
        campaign_id);
    if (r.empty()) return CampaignNotFound(campaign_id);
    return CampaignFromRow(r[0]);
  });
}

absl::StatusOr<std::vector<v1::EnqueueResult>> PgFeedbackStore::Enqueue(
    const std::string& campaign_id, const v1::CampaignSpec& spec,
    const google::protobuf::RepeatedPtrField<v1::ItemInput>& items) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<std::vector<v1::EnqueueResult>> {
    // FOR SHARE: a concurrent CloseCampaign waits for this batch, or this batch sees it closed.
    pqxx::result c = tx.exec_params(
        "SELECT closed FROM feedback_campaigns WHERE campaign_id = $1 FOR SHARE", campaign_id);
    if (c.empty()) return CampaignNotFound(campaign_id);
    if (c[0][0].as<bool>()) {
      return absl::FailedPreconditionError(
          fmt::format("campaign '{}' is closed; no more items are enqueued", campaign_id));
    }
    std::vector<v1::EnqueueResult> out;
    for (const v1::ItemInput& item : items) {
      int gold = -1;
      if (item.has_gold_answer()) gold = *AnswerCategory(spec, item.gold_answer());
      const bool has_prediction = item.has_model_prediction();
      pqxx::result r = tx.exec_params(
          "INSERT INTO feedback_items AS i (campaign_id, dataset, sample_index, payload, "
          "given_label, prediction, priority, gold_answer) VALUES ($1, $2, $3, $4, "
          "NULLIF($5, -1), CASE WHEN $6 THEN $7::bytea END, $8, NULLIF($9, -1)) "
          "ON CONFLICT (campaign_id, dataset, sample_index) DO UPDATE SET "
          "payload = EXCLUDED.payload, given_label = EXCLUDED.given_label, "
          "prediction = EXCLUDED.prediction, priority = EXCLUDED.priority, "
          "gold_answer = EXCLUDED.gold_answer WHERE NOT i.decided "
          "RETURNING item_id, (xmax = 0) AS created",
          campaign_id, static_cast<int>(item.sample().dataset()),
          static_cast<std::int64_t>(item.sample().index()),
          Bytes(item.payload().SerializeAsString()),
          item.has_given_label() ? static_cast<std::int64_t>(item.given_label()) : -1,
          has_prediction,
          Bytes(has_prediction ? item.model_prediction().SerializeAsString() : std::string()),
          item.priority(), gold);
      v1::EnqueueResult& result = out.emplace_back();
      if (!r.empty()) {
        result.set_item_id(r[0][0].as<std::string>());
        result.set_outcome(r[0][1].as<bool>() ? v1::ENQUEUE_OUTCOME_CREATED
                                              : v1::ENQUEUE_OUTCOME_UPDATED);
      } else {
        result.set_item_id(
            tx.exec_params1("SELECT item_id FROM feedback_items WHERE "
                            "campaign_id = $1 AND dataset = $2 AND sample_index = $3",
                            campaign_id, static_cast<int>(item.sample().dataset()),
                            static_cast<std::int64_t>(item.sample().index()))[0]
                .as<std::string>());
        result.set_outcome(v1::ENQUEUE_OUTCOME_ALREADY_DECIDED);
      }
    }
    return out;
  });
}

absl::StatusOr<std::vector<LeaseGrant>> PgFeedbackStore::Lease(const std::string& campaign_id,
                                                               const std::string& rater_id,
                                                               int max_items, int gold_wanted,
                                                               int max_live) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<std::vector<LeaseGrant>> {
    // One Lease at a time per rater: its cap on live leases and "never the same item twice"
    // are checked against committed state.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('feedback-rater'), hashtext($1))",
                   rater_id);
    pqxx::result c = tx.exec_params(
        "SELECT closed, ratings_per_item, lease_ttl_seconds, gold_share, "
        "(SELECT count(*) FROM feedback_leases WHERE rater_id = $2 AND state = 0 "
        " AND expire_time > now()) FROM feedback_campaigns WHERE campaign_id = $1",
        campaign_id, rater_id);
    if (c.empty()) return CampaignNotFound(campaign_id);
    if (c[0][0].as<bool>()) {
      return absl::FailedPreconditionError(
          fmt::format("campaign '{}' is closed; nothing more is leased", campaign_id));
    }
    const int k = c[0][1].as<int>();
    const int ttl = c[0][2].as<int>();
    const bool has_gold = c[0][3].as<double>() > 0;
    const int room = std::min(max_items, max_live - c[0][4].as<int>());
    std::vector<LeaseGrant> out;
    if (room <= 0) return out;

    // Not this rater's: items it holds, rated or skipped (released and expired leases are fine).
    constexpr std::string_view kNotMine =
        "NOT EXISTS (SELECT 1 FROM feedback_leases l WHERE l.item_id = i.item_id "
        "AND l.rater_id = $2 AND l.state IN (0, 1, 2))";
    auto take_gold = [&](int n) {
      std::vector<std::int64_t> ids;
      for (const auto& r : tx.exec_params(fmt::format("SELECT i.item_id FROM feedback_items i "
                                                      "WHERE i.campaign_id = $1 AND "
                                                      "i.gold_answer IS NOT NULL AND {} "
                                                      "ORDER BY i.item_id LIMIT $3",
                                                      kNotMine),
                                          campaign_id, rater_id, n)) {
        ids.push_back(r[0].as<std::int64_t>());
      }
      return ids;
    };
    std::vector<std::int64_t> ids;
    std::vector<std::int64_t> gold_ids;
    if (gold_wanted > 0) ids = gold_ids = take_gold(std::min(gold_wanted, room));
    const int normal_wanted = room - static_cast<int>(ids.size());
    if (normal_wanted > 0) {
      for (const auto& r : tx.exec_params(
               fmt::format("WITH cand AS (SELECT i.item_id FROM feedback_items i "
                           "WHERE i.campaign_id = $1 AND NOT i.decided AND i.gold_answer IS NULL "
                           "AND i.ratings_count + i.holds < $4 AND {} "
                           "ORDER BY i.priority DESC, i.item_id LIMIT $3 FOR UPDATE SKIP LOCKED) "
                           "UPDATE feedback_items i SET holds = i.holds + 1 FROM cand "
                           "WHERE i.item_id = cand.item_id RETURNING i.item_id",
                           kNotMine),
               campaign_id, rater_id, normal_wanted, k)) {
        ids.push_back(r[0].as<std::int64_t>());
      }
    }
    if (static_cast<int>(ids.size()) < room && has_gold) {
      // Not enough ordinary items: fill up with gold ones (calibration beats idling).
      std::set<std::int64_t> chosen(ids.begin(), ids.end());
      for (std::int64_t id : take_gold(room)) {
        if (static_cast<int>(ids.size()) < room && chosen.insert(id).second) {
          ids.push_back(id);
          gold_ids.push_back(id);
        }
      }
    }
    if (ids.empty()) return out;
    if (!gold_ids.empty()) {
      // Gold items were not locked above (no k applies to them); count their leases too, so
      // that every live lease is one `holds` whatever its item.
      tx.exec_params(
          "UPDATE feedback_items SET holds = holds + 1 WHERE item_id = ANY($1::bigint[])",
          IdArray(gold_ids));
    }
    for (const auto& r : tx.exec_params(
             "WITH l AS (INSERT INTO feedback_leases (item_id, campaign_id, rater_id, expire_time) "
             "  SELECT unnest($1::bigint[]), $2, $3, now() + make_interval(secs => $4) "
             "  RETURNING item_id, lease_id, expire_time) "
             "SELECT i.item_id, l.lease_id, " +
                 Epoch("l.expire_time") +
                 ", i.payload, i.given_label, i.prediction FROM l JOIN feedback_items i "
                 "ON i.item_id = l.item_id ORDER BY i.priority DESC, i.item_id",
             IdArray(ids), campaign_id, rater_id, ttl)) {
      LeaseGrant& g = out.emplace_back();
      g.item_id = r[0].as<std::int64_t>();
      g.lease_id = r[1].as<std::int64_t>();
      g.expire_time = Time(r[2].as<double>());
      g.campaign_id = campaign_id;
      g.payload.ParseFromString(Bytes(r[3]));
      if (!r[4].is_null()) g.given_label = r[4].as<std::uint32_t>();
      if (!r[5].is_null()) {
        g.prediction.emplace();
        g.prediction->ParseFromString(Bytes(r[5]));
      }
    }
    return out;
  });
}

absl::StatusOr<SubmitOutcome> PgFeedbackStore::Submit(const std::string& rater_id,
                                                      std::int64_t lease_id,
                                                      const v1::Answer& answer,
                                                      double seconds_spent) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<SubmitOutcome> {
    pqxx::result l = tx.exec_params(
        "SELECT l.rater_id, l.state, l.item_id, l.campaign_id, l.expire_time > now(), "
        "extract(epoch from now() - l.lease_time), r.rating_id, r.answer, " +
            Epoch("l.expire_time") +
            " FROM feedback_leases l LEFT JOIN feedback_ratings r ON r.lease_id = l.lease_id "
            "WHERE l.lease_id = $1 FOR UPDATE OF l",
        lease_id);
    if (l.empty() || l[0][0].as<std::string>() != rater_id) return LeaseNotFound(lease_id);
    const int state = l[0][1].as<int>();
    const std::int64_t item_id = l[0][2].as<std::int64_t>();
    SubmitOutcome out;
    out.campaign_id = l[0][3].as<std::string>();
    GREENLOOP_ASSIGN_OR_RETURN(v1::CampaignSpec spec, Spec(tx, out.campaign_id));
    GREENLOOP_ASSIGN_OR_RETURN(int category, AnswerCategory(spec, answer));
    if (state == kSubmitted) {
      if (l[0][7].as<int>() != category) {
        return absl::AlreadyExistsError(
            fmt::format("lease '{}' was already submitted with a different answer", lease_id));
      }
      out.rating_id = l[0][6].as<std::int64_t>();
      out.duplicate = true;
      return out;
    }
    if (state == kSkipped || state == kReleased) {
      return absl::FailedPreconditionError(fmt::format("lease '{}' was {}; lease the item again",
                                                       lease_id,
                                                       state == kSkipped ? "skipped" : "released"));
    }
    if (state == kExpired || !l[0][4].as<bool>()) {
      return absl::FailedPreconditionError(fmt::format(
          "lease '{}' expired at {} before the answer came; lease the item again", lease_id,
          absl::FormatTime(absl::RFC3339_sec, Time(l[0][8].as<double>()), absl::UTCTimeZone())));
    }
    out.server_seconds = l[0][5].as<double>();
    out.rating_id =
        tx.exec_params1(
              "INSERT INTO feedback_ratings (lease_id, item_id, campaign_id, rater_id, answer, "
              "seconds_spent, server_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7) "
              "RETURNING rating_id",
              lease_id, item_id, out.campaign_id, rater_id, category, seconds_spent,
              out.server_seconds)[0]
            .as<std::int64_t>();
    tx.exec_params("UPDATE feedback_leases SET state = 1, end_time = now() WHERE lease_id = $1",
                   lease_id);
    pqxx::row item = tx.exec_params1(
        "UPDATE feedback_items SET ratings_count = ratings_count + 1, holds = holds - 1 "
        "WHERE item_id = $1 " +
            std::string(kItemReturning),
        item_id);
    if (!item["decided"].as<bool>() && item["gold_answer"].is_null() &&
        item["ratings_count"].as<std::uint32_t>() >= spec.ratings_per_item()) {
      GREENLOOP_RETURN_IF_ERROR(DecideItem(tx, spec, out.campaign_id, item_id, item));
      out.verdict_emitted = true;
    }
    return out;
  });
}

absl::StatusOr<std::string> PgFeedbackStore::Skip(const std::string& rater_id,
                                                  std::int64_t lease_id, v1::SkipReason reason) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
    pqxx::result l = tx.exec_params(
        "SELECT rater_id, state, item_id, campaign_id FROM feedback_leases WHERE lease_id = $1 "
        "FOR UPDATE",
        lease_id);
    if (l.empty() || l[0][0].as<std::string>() != rater_id) return LeaseNotFound(lease_id);
    const int state = l[0][1].as<int>();
    const std::int64_t item_id = l[0][2].as<std::int64_t>();
    const std::string campaign_id = l[0][3].as<std::string>();
    if (state == kSubmitted) {
      return absl::FailedPreconditionError(
          fmt::format("lease '{}' was submitted; it cannot be skipped", lease_id));
    }
    if (state == kSkipped) return campaign_id;
    GREENLOOP_ASSIGN_OR_RETURN(v1::CampaignSpec spec, Spec(tx, campaign_id));
    tx.exec_params(
        "UPDATE feedback_leases SET state = 2, end_time = now(), skip_reason = $2 "
        "WHERE lease_id = $1",
        lease_id, static_cast<int>(reason));
    pqxx::row item = tx.exec_params1(
        "UPDATE feedback_items SET skips_count = skips_count + 1, holds = holds - $2 "
        "WHERE item_id = $1 " +
            std::string(kItemReturning),
        item_id, state == kLive ? 1 : 0);
    MaybeUndecidable(tx, spec, campaign_id, item_id, item);
    return campaign_id;
  });
}

absl::Status PgFeedbackStore::Release(const std::string& rater_id, std::int64_t lease_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::Status {
    pqxx::result l = tx.exec_params(
        "SELECT rater_id, state, item_id FROM feedback_leases WHERE lease_id = $1 FOR UPDATE",
        lease_id);
    if (l.empty() || l[0][0].as<std::string>() != rater_id) return LeaseNotFound(lease_id);
    const int state = l[0][1].as<int>();
    if (state == kSubmitted || state == kSkipped) {
      return absl::FailedPreconditionError(
          fmt::format("lease '{}' was {}; nothing to release", lease_id,
                      state == kSubmitted ? "submitted" : "skipped"));
    }
    if (state != kLive) return absl::OkStatus();
    tx.exec_params("UPDATE feedback_leases SET state = 3, end_time = now() WHERE lease_id = $1",
                   lease_id);
    tx.exec_params("UPDATE feedback_items SET holds = holds - 1 WHERE item_id = $1",
                   l[0][2].as<std::int64_t>());
    return absl::OkStatus();
  });
}

absl::StatusOr<std::int64_t> PgFeedbackStore::ExpireLeases() {
  return pool_->Run([&](pqxx::work& tx) {
    return tx
        .exec1(
            "WITH expired AS (UPDATE feedback_leases SET state = 4, end_time = now() "
            "  WHERE state = 0 AND expire_time <= now() RETURNING item_id), "
            "counts AS (SELECT item_id, count(*) AS n FROM expired GROUP BY item_id), "
            "fixed AS (UPDATE feedback_items i SET holds = i.holds - counts.n FROM counts "
            "  WHERE i.item_id = counts.item_id RETURNING counts.n) "
            "SELECT coalesce(sum(n), 0)::bigint FROM fixed")[0]
        .as<std::int64_t>();
  });
}

absl::StatusOr<VerdictBatch> PgFeedbackStore::ReadVerdicts(const std::string& campaign_id,
                                                           std::int64_t after_seq, int limit) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<VerdictBatch> {
    pqxx::result c = tx.exec_params(
        "SELECT closed, verdicts_count, EXISTS (SELECT 1 FROM feedback_leases "
        "WHERE campaign_id = $1 AND state = 0) FROM feedback_campaigns WHERE campaign_id = $1",
        campaign_id);
    if (c.empty()) return CampaignNotFound(campaign_id);
    VerdictBatch out;
    for (const auto& r : tx.exec_params("SELECT seq, verdict FROM feedback_verdicts "
                                        "WHERE campaign_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                                        campaign_id, after_seq, limit)) {
      v1::Verdict v;
      v.ParseFromString(Bytes(r[1]));
      out.verdicts.emplace_back(r[0].as<std::int64_t>(), std::move(v));
    }
    const std::int64_t last = out.verdicts.empty() ? after_seq : out.verdicts.back().first;
    out.finished = c[0][0].as<bool>() && !c[0][2].as<bool>() && last >= c[0][1].as<std::int64_t>();
    return out;
  });
}

absl::StatusOr<CampaignRatings> PgFeedbackStore::LoadRatings(const std::string& campaign_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<CampaignRatings> {
    CampaignRatings out;
    GREENLOOP_ASSIGN_OR_RETURN(out.spec, Spec(tx, campaign_id));
    for (const auto& r : tx.exec_params(
             "SELECT item_id, rater_id, answer FROM feedback_ratings WHERE campaign_id = $1",
             campaign_id)) {
      out.observations.push_back({r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<int>()});
    }
    for (const auto& r : tx.exec_params("SELECT item_id, gold_answer FROM feedback_items "
                                        "WHERE campaign_id = $1 AND gold_answer IS NOT NULL",
                                        campaign_id)) {
      out.gold[r[0].as<std::int64_t>()] = r[1].as<int>();
    }
    for (const auto& r : tx.exec_params(
             "SELECT DISTINCT ON (item_id) item_id, decision, revision FROM feedback_verdicts "
             "WHERE campaign_id = $1 ORDER BY item_id, revision DESC",
             campaign_id)) {
      out.decided[r[0].as<std::int64_t>()] = {r[1].as<int>(), r[2].as<int>()};
    }
    return out;
  });
}

absl::StatusOr<int> PgFeedbackStore::SaveEstimate(const std::string& campaign_id,
                                                  const DawidSkeneResult& estimate) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<int> {
    GREENLOOP_ASSIGN_OR_RETURN(v1::CampaignSpec spec, Spec(tx, campaign_id));
    for (const auto& [rater, model] : estimate.raters) {
      tx.exec_params(
          "INSERT INTO feedback_rater_models (campaign_id, rater_id, reliability, confusion) "
          "VALUES ($1, $2, $3, $4::float8[]) ON CONFLICT (campaign_id, rater_id) DO UPDATE SET "
          "reliability = EXCLUDED.reliability, confusion = EXCLUDED.confusion, "
          "update_time = now()",
          campaign_id, rater, model.Reliability(estimate.prior),
          fmt::format("{{{}}}", fmt::join(model.confusion, ",")));
    }
    // Items whose decision the new estimate changes get a new revision.
    int revisions = 0;
    for (const auto& r : tx.exec_params(
             "SELECT DISTINCT ON (item_id) item_id, decision, verdict FROM feedback_verdicts "
             "WHERE campaign_id = $1 ORDER BY item_id, revision DESC",
             campaign_id)) {
      const std::int64_t item_id = r[0].as<std::int64_t>();
      const int decision = r[1].as<int>();
      auto it = estimate.items.find(item_id);
      if (decision < 0 || it == estimate.items.end() || it->second.category == decision) continue;
      v1::Verdict v;
      v.ParseFromString(Bytes(r[2]));
      v.clear_decision();
      SetDecision(spec, it->second.category, &v);
      v.set_confidence(it->second.confidence);
      v.set_revision(v.revision() + 1);
      InsertVerdict(tx, campaign_id, item_id, it->second.category, std::move(v));
      ++revisions;
    }
    return revisions;
  });
}

absl::StatusOr<std::vector<std::string>> PgFeedbackStore::CampaignsToReestimate() {
  return pool_->Run([&](pqxx::work& tx) {
    std::vector<std::string> out;
    for (const auto& r :
         tx.exec("SELECT c.campaign_id FROM feedback_campaigns c WHERE NOT c.closed AND EXISTS ("
                 "SELECT 1 FROM feedback_ratings r WHERE r.campaign_id = c.campaign_id AND "
                 "r.submit_time > coalesce((SELECT max(update_time) FROM feedback_rater_models m "
                 "WHERE m.campaign_id = c.campaign_id), '-infinity'))")) {
      out.push_back(r[0].as<std::string>());
    }
    return out;
  });
}

absl::StatusOr<v1::GetCampaignStatsResponse> PgFeedbackStore::Stats(
    const std::string& campaign_id) {
  return pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<v1::GetCampaignStatsResponse> {
    v1::GetCampaignStatsResponse out;
    out.set_campaign_id(campaign_id);
    pqxx::result c = tx.exec_params(
        "SELECT "
        " (SELECT count(*) FROM feedback_items WHERE campaign_id = $1),"
        " (SELECT count(*) FROM feedback_items WHERE campaign_id = $1 AND NOT decided "
        "   AND gold_answer IS NULL),"
        " (SELECT count(*) FROM feedback_items WHERE campaign_id = $1 AND decided),"
        " (SELECT count(*) FROM feedback_items WHERE campaign_id = $1 AND gold_answer IS NOT NULL),"
        " (SELECT count(*) FROM feedback_leases WHERE campaign_id = $1 AND state = 0 "
        "   AND expire_time > now()),"
        " (SELECT count(*) FROM feedback_ratings WHERE campaign_id = $1),"
        " (SELECT count(*) FROM feedback_leases WHERE campaign_id = $1 AND state = 2),"
        " (SELECT count(*) FROM feedback_ratings WHERE campaign_id = $1 "
        "   AND submit_time > now() - interval '1 hour') "
        "FROM feedback_campaigns WHERE campaign_id = $1",
        campaign_id);
    if (c.empty()) return CampaignNotFound(campaign_id);
    out.set_items_total(c[0][0].as<std::uint64_t>());
    out.set_items_pending(c[0][1].as<std::uint64_t>());
    out.set_items_decided(c[0][2].as<std::uint64_t>());
    out.set_gold_items(c[0][3].as<std::uint64_t>());
    out.set_leases_live(c[0][4].as<std::uint64_t>());
    out.set_ratings_total(c[0][5].as<std::uint64_t>());
    out.set_skips_total(c[0][6].as<std::uint64_t>());
    out.set_ratings_per_hour(c[0][7].as<double>());
    for (const auto& r : tx.exec_params(
             "WITH rr AS (SELECT r.rater_id, count(*) AS rated, "
             "  count(*) FILTER (WHERE i.gold_answer IS NOT NULL) AS gold_rated, "
             "  count(*) FILTER (WHERE i.gold_answer IS NOT NULL AND r.answer = i.gold_answer) "
             "    AS gold_right, "
             "  percentile_cont(0.5) WITHIN GROUP (ORDER BY r.server_seconds) AS med, "
             "  extract(epoch from max(r.submit_time)) AS last_submit, "
             "  count(v.decision) AS with_verdict, "
             "  count(*) FILTER (WHERE v.decision = r.answer) AS agree "
             "  FROM feedback_ratings r JOIN feedback_items i ON i.item_id = r.item_id "
             "  LEFT JOIN LATERAL (SELECT decision FROM feedback_verdicts v "
             "    WHERE v.item_id = r.item_id AND v.decision >= 0 ORDER BY revision DESC LIMIT 1) "
             "    v ON true "
             "  WHERE r.campaign_id = $1 GROUP BY r.rater_id), "
             "ll AS (SELECT rater_id, count(*) FILTER (WHERE state = 2) AS skipped, "
             "  extract(epoch from min(lease_time)) AS first_lease FROM feedback_leases "
             "  WHERE campaign_id = $1 GROUP BY rater_id) "
             "SELECT ll.rater_id, coalesce(t.name, ''), coalesce(rr.rated, 0), ll.skipped, "
             "  coalesce(rr.gold_rated, 0), coalesce(rr.gold_right, 0), coalesce(rr.med, 0), "
             "  rr.last_submit, ll.first_lease, m.reliability, coalesce(rr.with_verdict, 0), "
             "  coalesce(rr.agree, 0) "
             "FROM ll LEFT JOIN rr ON rr.rater_id = ll.rater_id "
             "LEFT JOIN feedback_rater_models m ON m.campaign_id = $1 AND m.rater_id = ll.rater_id "
             "LEFT JOIN auth_tokens t ON t.token_id::text = ll.rater_id "
             "WHERE coalesce(rr.rated, 0) > 0 OR ll.skipped > 0 "
             "ORDER BY 3 DESC, 1",
             campaign_id)) {
      v1::RaterStats* s = out.add_raters();
      s->set_rater_id(r[0].as<std::string>());
      s->set_rater_name(r[1].as<std::string>());
      s->set_items_rated(r[2].as<std::uint64_t>());
      s->set_items_skipped(r[3].as<std::uint64_t>());
      s->set_gold_rated(r[4].as<std::uint64_t>());
      if (s->gold_rated() > 0) {
        s->set_gold_accuracy(r[5].as<double>() / static_cast<double>(s->gold_rated()));
      }
      s->set_median_seconds_per_item(r[6].as<double>());
      if (!r[7].is_null() && !r[8].is_null()) {
        const double hours = (r[7].as<double>() - r[8].as<double>()) / 3600;
        if (hours > 0) s->set_items_per_hour(static_cast<double>(s->items_rated()) / hours);
      }
      s->set_weight(r[9].is_null() ? kDefaultRaterAccuracy : r[9].as<double>());
      if (r[10].as<std::int64_t>() > 0) {
        s->set_agreement_with_verdicts(r[11].as<double>() / r[10].as<double>());
      }
    }
    return out;
  });
}

absl::StatusOr<std::vector<std::pair<std::int64_t, v1::MyRating>>> PgFeedbackStore::ListMyRatings(
    const std::string& rater_id, const std::string& campaign_id, bool include_payloads,
    std::optional<std::int64_t> before, int limit) {
  return pool_->Run(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::pair<std::int64_t, v1::MyRating>>> {
        std::vector<std::pair<std::int64_t, v1::MyRating>> out;
        for (const auto& r : tx.exec_params(
                 "SELECT r.rating_id, r.campaign_id, r.item_id, r.answer, r.seconds_spent, " +
                     Epoch("r.submit_time") +
                     ", v.decision, CASE WHEN $3 THEN i.payload END "
                     "FROM feedback_ratings r JOIN feedback_items i ON i.item_id = r.item_id "
                     "LEFT JOIN LATERAL (SELECT decision FROM feedback_verdicts v "
                     "  WHERE v.item_id = r.item_id ORDER BY revision DESC LIMIT 1) v ON true "
                     "WHERE r.rater_id = $1 AND ($2 = '' OR r.campaign_id = $2) "
                     "AND ($4 <= 0 OR r.rating_id < $4) ORDER BY r.rating_id DESC LIMIT $5",
                 rater_id, campaign_id, include_payloads, before.value_or(0), limit)) {
          const std::string campaign = r[1].as<std::string>();
          GREENLOOP_ASSIGN_OR_RETURN(v1::CampaignSpec spec, Spec(tx, campaign));
          v1::MyRating m;
          m.set_rating_id(r[0].as<std::string>());
          m.set_campaign_id(campaign);
          m.set_item_id(r[2].as<std::string>());
          *m.mutable_answer() = CategoryAnswer(spec, r[3].as<int>());
          m.set_seconds_spent(r[4].as<double>());
          *m.mutable_submit_time() = Ts(r[5].as<double>());
          if (!r[6].is_null() && r[6].as<int>() >= 0) {
            m.set_agrees_with_verdict(r[6].as<int>() == r[3].as<int>());
          }
          if (!r[7].is_null()) m.mutable_payload()->ParseFromString(Bytes(r[7]));
          out.emplace_back(r[0].as<std::int64_t>(), std::move(m));
        }
        return out;
      });
}

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

absl::StatusOr<PgFeedbackStore::Gauges> PgFeedbackStore::ReadGauges() {
  return pool_->Run([&](pqxx::work& tx) {
    Gauges g;
    for (const auto& r :
         tx.exec("SELECT c.campaign_id, "
                 " (SELECT count(*) FROM feedback_items i WHERE i.campaign_id = c.campaign_id "
                 "   AND NOT i.decided AND i.gold_answer IS NULL), "
                 " (SELECT count(*) FROM feedback_leases l WHERE l.campaign_id = c.campaign_id "
                 "   AND l.state = 0) "
                 "FROM feedback_campaigns c WHERE NOT c.closed")) {
      g.depth[r[0].as<std::string>()] = r[1].as<std::int64_t>();
      g.live_leases[r[0].as<std::string>()] = r[2].as<std::int64_t>();
    }
    return g;
  });
}

}  // namespace greenloop::feedback
