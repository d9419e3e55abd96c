// PgFeedbackStore's read-side figures: campaign and rater stats, a rater's own ratings, the
// metrics gauges and the campaigns the re-estimator should look at. Off the lease/submit path.
#include "common/status/status.h"
#include "fmt/format.h"
#include "services/feedback/core/answers.h"
#include "services/feedback/core/consensus.h"
#include "services/feedback/core/feature_masks.h"
#include "services/feedback/storage/pg_rows.h"
#include "services/feedback/storage/pg_store.h"

namespace greenloop::feedback {

using storage::Bytes;
using storage::CampaignNotFound;
using storage::Epoch;
using storage::Ts;

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
                     ", v.decision, CASE WHEN $3 THEN i.payload END, fm.cells::text "
                     "FROM feedback_ratings r JOIN feedback_items i ON i.item_id = r.item_id "
                     "LEFT JOIN feedback_rating_masks fm ON fm.rating_id = r.rating_id "
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
          if (!r[8].is_null()) {
            for (std::uint32_t cell : ParseCells(r[8].as<std::string>())) {
              m.mutable_answer()->mutable_feature_mask()->add_irrelevant_cells(cell);
            }
          }
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
