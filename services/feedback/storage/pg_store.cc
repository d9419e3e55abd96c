#include "services/feedback/storage/pg_store.h"

#include <algorithm>
#include <cmath>
#include <pqxx/binarystring>
#include <set>

#include "common/status/status.h"
#include "fmt/format.h"
#include "google/protobuf/util/message_differencer.h"
#include "services/feedback/core/answers.h"
#include "services/feedback/core/feature_masks.h"
#include "services/feedback/core/verdicts.h"
#include "services/feedback/storage/pg_rows.h"

namespace greenloop::feedback {
namespace {

using storage::Bytes;
using storage::CampaignNotFound;
using storage::Epoch;
using storage::IdArray;
using storage::kExpired;
using storage::kLive;
using storage::kReleased;
using storage::kSkipped;
using storage::kSubmitted;
using storage::LeaseNotFound;
using storage::ParseDoubles;
using storage::Time;
using storage::Ts;

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

// Writes a verdict and marks its item decided, in one statement. Its seq comes when a reader
// numbers it (feedback_sequence_verdicts), so writers of one campaign never wait for each other.
void InsertVerdict(pqxx::work& tx, const std::string& campaign_id, std::int64_t item_id,
                   const BuiltVerdict& built) {
  tx.exec_params(
      "WITH v AS (INSERT INTO feedback_verdicts (campaign_id, item_id, revision, decision, "
      "  verdict) VALUES ($1, $2, $3, $4, $5)) "
      "UPDATE feedback_items SET decided = true WHERE item_id = $2",
      campaign_id, item_id, static_cast<int>(built.verdict.revision()), built.decision,
      Bytes(built.verdict.SerializeAsString()));
}

// A text[] / int[] / bigint[] column as strings ('{a,b}' parsed by libpqxx); empty when NULL.
std::vector<std::string> TextArray(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  pqxx::array_parser parser = f.as_array();
  while (true) {
    const auto [kind, value] = parser.get_next();
    if (kind == pqxx::array_parser::juncture::done) break;
    if (kind == pqxx::array_parser::juncture::string_value) out.push_back(value);
    if (kind == pqxx::array_parser::juncture::null_value) out.emplace_back();
  }
  return out;
}

// What feedback_submit returned about a complete item: its ratings and the raters' models.
ItemRatings RatingsFromRow(std::int64_t item_id, const pqxx::row& r) {
  ItemRatings out;
  const std::vector<std::string> raters = TextArray(r["raters"]);
  const std::vector<std::string> answers = TextArray(r["answers"]);
  const std::vector<std::string> confusions = TextArray(r["confusions"]);
  for (std::size_t i = 0; i < raters.size() && i < answers.size(); ++i) {
    out.ratings.push_back({item_id, raters[i], std::stoi(answers[i])});
    if (i < confusions.size() && !confusions[i].empty()) {
      out.confusions[raters[i]] = ParseDoubles(confusions[i]);
    }
  }
  const std::vector<std::string> gold = TextArray(r["gold_raters"]);
  const std::vector<std::string> total = TextArray(r["gold_total"]);
  const std::vector<std::string> right = TextArray(r["gold_right"]);
  for (std::size_t i = 0; i < gold.size() && i < total.size() && i < right.size(); ++i) {
    out.gold[gold[i]] = {std::stoll(right[i]), std::stoll(total[i])};
  }
  return out;
}

// Stores the cells of a feature answer (already validated by AnswerCategory) with its rating.
void InsertMask(pqxx::work& tx, std::int64_t rating_id, const v1::CampaignSpec& spec,
                const v1::Answer& answer) {
  const absl::StatusOr<v1::FeatureMask> mask =
      CanonicalMask(spec, answer.feature_mask(), "answer.feature_mask");
  tx.exec_params("INSERT INTO feedback_rating_masks (rating_id, cells) VALUES ($1, $2::smallint[])",
                 rating_id, CellsText(mask.ok() ? *mask : v1::FeatureMask()));
}

// The cells each rater of an item marked (feature questions).
std::map<std::string, std::vector<std::uint32_t>> ItemMasks(pqxx::work& tx, std::int64_t item_id) {
  std::map<std::string, std::vector<std::uint32_t>> out;
  for (const auto& row : tx.exec_params(
           "SELECT r.rater_id, m.cells::text FROM feedback_ratings r "
           "JOIN feedback_rating_masks m ON m.rating_id = r.rating_id WHERE r.item_id = $1",
           item_id)) {
    out[row[0].as<std::string>()] = ParseCells(row[1].as<std::string>());
  }
  return out;
}

ItemRecord ItemFromRow(std::int64_t item_id, const pqxx::row& r, double now_epoch) {
  ItemRecord item;
  item.item_id = item_id;
  item.dataset = static_cast<v1::Dataset>(r["dataset"].as<int>());
  item.sample_index = r["sample_index"].as<std::uint64_t>();
  if (!r["given_label"].is_null()) item.given_label = r["given_label"].as<std::uint32_t>();
  item.ratings_count = r["ratings_count"].as<std::uint32_t>();
  item.skips_count = r["skips_count"].as<std::uint32_t>();
  item.decide_time = Time(now_epoch);
  return item;
}

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
        "lease_ttl_seconds, gold_share, agreeing_ratings) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (campaign_id) DO NOTHING RETURNING " +
            kCampaignColumns,
        campaign_id, spec.run_id(), Bytes(spec.SerializeAsString()),
        static_cast<int>(spec.ratings_per_item()), static_cast<int>(spec.lease_ttl_seconds()),
        spec.gold_share(), static_cast<int>(spec.agreeing_ratings()));
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

absl::StatusOr<std::vector<LeaseGrant>> PgFeedbackStore::Lease(
    const std::string& campaign_id, const std::string& rater_id, int max_items, int gold_wanted,
    int max_live, const std::vector<std::int64_t>& candidates, bool walk_head) {
  auto attempt = [&] {
    return pool_->Run([&](pqxx::work& tx) {
      std::vector<LeaseGrant> out;
      for (const auto& r : tx.exec_params(
               "SELECT item_id, lease_id, expire_epoch, payload, given_label, prediction "
               "FROM feedback_lease($1, $2, $3, $4, $5, $6::bigint[], $7)",
               campaign_id, rater_id, max_items, gold_wanted, max_live, IdArray(candidates),
               walk_head)) {
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
  };
  // SKIP LOCKED still waits on a row version that was updated meanwhile, so two Leases can
  // deadlock on the queue head; PostgreSQL rolls one back (ABORTED), and running it again is safe.
  absl::StatusOr<std::vector<LeaseGrant>> leased = attempt();
  for (int retry = 0; retry < 3 && leased.status().code() == absl::StatusCode::kAborted; ++retry) {
    leased = attempt();
  }
  if (leased.ok()) {
    absl::MutexLock lock(&mu_);
    if (lease_owners_.size() + leased->size() > kLeaseOwnersCap) lease_owners_.clear();
    for (const LeaseGrant& g : *leased) lease_owners_[g.lease_id] = {campaign_id, rater_id};
  }
  return leased;
}

absl::StatusOr<std::vector<HeadItem>> PgFeedbackStore::QueueHead(const std::string& campaign_id,
                                                                 int ratings_per_item,
                                                                 int agreeing_ratings, int limit) {
  return pool_->Run([&](pqxx::work& tx) {
    std::vector<HeadItem> out;
    for (const auto& r : tx.exec_params(
             "SELECT item_id, c.cap - ratings_count - holds FROM feedback_items, "
             "LATERAL (SELECT feedback_item_cap(ratings_count, $2, $3) AS cap) c "
             "WHERE campaign_id = $1 AND NOT decided AND gold_answer IS NULL "
             "AND ratings_count + holds < c.cap ORDER BY priority DESC, item_id LIMIT $4",
             campaign_id, ratings_per_item, agreeing_ratings, limit)) {
      out.push_back({r[0].as<std::int64_t>(), r[1].as<int>()});
    }
    return out;
  });
}

absl::StatusOr<std::string> PgFeedbackStore::LeaseCampaign(pqxx::work& tx,
                                                           const std::string& rater_id,
                                                           std::int64_t lease_id) {
  LeaseOwner owner;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = lease_owners_.find(lease_id); it != lease_owners_.end()) owner = it->second;
  }
  if (owner.campaign_id.empty()) {
    pqxx::result r = tx.exec_params(
        "SELECT campaign_id, rater_id FROM feedback_leases WHERE lease_id = $1", lease_id);
    if (r.empty()) return LeaseNotFound(lease_id);
    owner = {r[0][0].as<std::string>(), r[0][1].as<std::string>()};
  }
  if (owner.rater_id != rater_id) return LeaseNotFound(lease_id);
  return owner.campaign_id;
}

void PgFeedbackStore::ForgetLease(std::int64_t lease_id) {
  absl::MutexLock lock(&mu_);
  lease_owners_.erase(lease_id);
}

absl::StatusOr<SubmitOutcome> PgFeedbackStore::Submit(const std::string& rater_id,
                                                      std::int64_t lease_id,
                                                      const v1::Answer& answer,
                                                      double seconds_spent) {
  auto submitted = pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<SubmitOutcome> {
    SubmitOutcome out;
    GREENLOOP_ASSIGN_OR_RETURN(out.campaign_id, LeaseCampaign(tx, rater_id, lease_id));
    GREENLOOP_ASSIGN_OR_RETURN(v1::CampaignSpec spec, Spec(tx, out.campaign_id));
    GREENLOOP_ASSIGN_OR_RETURN(int category, AnswerCategory(spec, answer));
    // The rating, the lease's end and the item's counters; the item's ratings when complete.
    const pqxx::row r =
        tx.exec_params1("SELECT * FROM feedback_submit($1, $2, $3, $4, $5, $6)", rater_id, lease_id,
                        category, seconds_spent, static_cast<int>(spec.ratings_per_item()),
                        static_cast<int>(spec.agreeing_ratings()));
    out.rating_id = r["rating_id"].as<std::int64_t>();
    out.duplicate = r["duplicate"].as<bool>();
    if (out.duplicate) return out;
    out.server_seconds = r["server_seconds"].as<double>();
    const bool features = IsFeatureQuestion(spec.question_kind());
    if (features) InsertMask(tx, out.rating_id, spec, answer);
    if (r["complete"].as<bool>()) {
      const std::int64_t item_id = r["item_id"].as<std::int64_t>();
      ItemRatings ratings = RatingsFromRow(item_id, r);
      if (features) ratings.masks = ItemMasks(tx, item_id);
      GREENLOOP_ASSIGN_OR_RETURN(
          BuiltVerdict verdict,
          FirstVerdict(spec, ItemFromRow(item_id, r, r["now_epoch"].as<double>()), ratings));
      InsertVerdict(tx, out.campaign_id, item_id, verdict);
      out.verdict_emitted = true;
    }
    return out;
  });
  if (submitted.ok()) ForgetLease(lease_id);
  return submitted;
}

absl::StatusOr<std::string> PgFeedbackStore::Skip(const std::string& rater_id,
                                                  std::int64_t lease_id, v1::SkipReason reason) {
  auto skipped = pool_->Run([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
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
    const pqxx::row item = tx.exec_params1(
        "UPDATE feedback_items SET skips_count = skips_count + 1, holds = holds - $2 "
        "WHERE item_id = $1 RETURNING dataset, sample_index, given_label, ratings_count, "
        "skips_count, decided, gold_answer IS NOT NULL AS gold, " +
            Epoch("now()") + " AS now_epoch",
        item_id, state == kLive ? 1 : 0);
    if (std::optional<BuiltVerdict> verdict =
            UndecidableVerdict(spec, ItemFromRow(item_id, item, item["now_epoch"].as<double>()),
                               item["decided"].as<bool>(), item["gold"].as<bool>())) {
      InsertVerdict(tx, campaign_id, item_id, *verdict);
    }
    return campaign_id;
  });
  if (skipped.ok()) ForgetLease(lease_id);
  return skipped;
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
        "SELECT closed, feedback_sequence_verdicts($1), EXISTS (SELECT 1 FROM feedback_leases "
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
             "SELECT DISTINCT ON (item_id) item_id, decision, verdict, " + Epoch("now()") +
                 " FROM feedback_verdicts WHERE campaign_id = $1 ORDER BY item_id, revision DESC",
             campaign_id)) {
      const std::int64_t item_id = r[0].as<std::int64_t>();
      auto it = estimate.items.find(item_id);
      if (it == estimate.items.end()) continue;
      v1::Verdict latest;
      latest.ParseFromString(Bytes(r[2]));
      if (std::optional<BuiltVerdict> revised =
              RevisedVerdict(spec, latest, r[1].as<int>(), it->second.category,
                             it->second.confidence, Time(r[3].as<double>()))) {
        InsertVerdict(tx, campaign_id, item_id, *revised);
        ++revisions;
      }
    }
    return revisions;
  });
}

}  // namespace greenloop::feedback
