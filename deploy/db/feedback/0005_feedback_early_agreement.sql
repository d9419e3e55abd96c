-- Early agreement (CampaignSpec.agreeing_ratings, adaptive repeated labelling): an item is
-- leased to at most `a` raters at first and decided as soon as its first `a` ratings all agree;
-- when they do not, it opens up to k. With a = 0 every item waits for k, as before.
ALTER TABLE feedback_campaigns ADD COLUMN agreeing_ratings integer NOT NULL DEFAULT 0;

-- Raters an item may have (ratings plus live leases) with `ratings` in: `a` until that many
-- ratings are in (when 0 < a < k), then k. Inlined by the planner.
CREATE FUNCTION feedback_item_cap(ratings int, k int, a int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN a > 0 AND a < k AND ratings < a THEN a ELSE k END
$$;

DROP FUNCTION feedback_lease(text, text, int, int, int, bigint[], boolean);

-- As in 0004, with the cap of feedback_item_cap instead of k.
CREATE FUNCTION feedback_lease(p_campaign text, p_rater text, p_max int, p_gold_wanted int,
                               p_max_live int, p_candidates bigint[],
                               p_walk boolean)
RETURNS TABLE (item_id bigint, lease_id bigint, expire_epoch double precision, payload bytea,
               given_label int, prediction bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  c record;
  room int;
  ids bigint[] := '{}';
  gold_ids bigint[] := '{}';
  more bigint[];
BEGIN
  -- One Lease at a time per rater: its cap and "never twice" see committed state.
  PERFORM pg_advisory_xact_lock(hashtext('feedback-rater'), hashtext(p_rater));
  SELECT fc.closed, fc.ratings_per_item AS k, fc.agreeing_ratings AS a,
         fc.lease_ttl_seconds AS ttl, fc.gold_share > 0 AS has_gold
    INTO c FROM feedback_campaigns fc WHERE fc.campaign_id = p_campaign;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'GL404',
      MESSAGE = format('campaign ''%s'' does not exist', p_campaign);
  END IF;
  IF c.closed THEN
    RAISE EXCEPTION USING ERRCODE = 'GL412',
      MESSAGE = format('campaign ''%s'' is closed; nothing more is leased', p_campaign);
  END IF;
  room := least(p_max, p_max_live - (SELECT count(*) FROM feedback_leases l
                                     WHERE l.rater_id = p_rater AND l.state = 0
                                       AND l.expire_time > now())::int);
  IF room <= 0 THEN
    RETURN;
  END IF;
  IF p_gold_wanted > 0 THEN
    gold_ids := ARRAY(SELECT i.item_id FROM feedback_items i
                      WHERE i.campaign_id = p_campaign AND i.gold_answer IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM feedback_leases l
                                        WHERE l.item_id = i.item_id AND l.rater_id = p_rater
                                          AND l.state IN (0, 1, 2))
                      ORDER BY i.item_id LIMIT least(p_gold_wanted, room));
    ids := gold_ids;
  END IF;
  IF room > cardinality(ids) AND cardinality(p_candidates) > 0 THEN
    -- The caller's candidates first: a few rows by primary key instead of a walk down the head
    -- every rater walks. The same conditions hold on the locked rows, so a stale candidate is
    -- simply not taken.
    WITH cand AS (
      SELECT i.item_id FROM feedback_items i
      WHERE i.item_id = ANY (p_candidates) AND i.campaign_id = p_campaign AND NOT i.decided
        AND i.gold_answer IS NULL AND i.ratings_count + i.holds < feedback_item_cap(i.ratings_count, c.k, c.a)
        AND NOT EXISTS (SELECT 1 FROM feedback_leases l
                        WHERE l.item_id = i.item_id AND l.rater_id = p_rater
                          AND l.state IN (0, 1, 2))
      ORDER BY array_position(p_candidates, i.item_id) LIMIT room - cardinality(ids)
      FOR NO KEY UPDATE SKIP LOCKED),
    taken AS (UPDATE feedback_items i SET holds = i.holds + 1 FROM cand
              WHERE i.item_id = cand.item_id RETURNING i.item_id)
    SELECT coalesce(array_agg(taken.item_id), '{}') INTO more FROM taken;
    ids := ids || more;
  END IF;
  IF room > cardinality(ids) AND p_walk THEN
    -- SKIP LOCKED, and the cap re-checked on the locked row version: concurrent raters never
    -- take an item beyond it. NO KEY UPDATE (what the UPDATE below takes anyway) does not block the
    -- foreign-key checks of ratings being inserted for the same item.
    WITH cand AS (
      SELECT i.item_id FROM feedback_items i
      WHERE i.campaign_id = p_campaign AND NOT i.decided AND i.gold_answer IS NULL
        AND i.ratings_count + i.holds < feedback_item_cap(i.ratings_count, c.k, c.a) AND i.item_id <> ALL (ids)
        AND NOT EXISTS (SELECT 1 FROM feedback_leases l
                        WHERE l.item_id = i.item_id AND l.rater_id = p_rater
                          AND l.state IN (0, 1, 2))
      ORDER BY i.priority DESC, i.item_id LIMIT room - cardinality(ids)
      FOR NO KEY UPDATE SKIP LOCKED),
    taken AS (UPDATE feedback_items i SET holds = i.holds + 1 FROM cand
              WHERE i.item_id = cand.item_id RETURNING i.item_id)
    SELECT coalesce(array_agg(taken.item_id), '{}') INTO more FROM taken;
    ids := ids || more;
  END IF;
  IF room > cardinality(ids) AND c.has_gold AND p_walk THEN
    -- Not enough ordinary items: fill up with gold ones (calibration beats idling).
    more := ARRAY(SELECT i.item_id FROM feedback_items i
                  WHERE i.campaign_id = p_campaign AND i.gold_answer IS NOT NULL
                    AND i.item_id <> ALL (ids)
                    AND NOT EXISTS (SELECT 1 FROM feedback_leases l
                                    WHERE l.item_id = i.item_id AND l.rater_id = p_rater
                                      AND l.state IN (0, 1, 2))
                  ORDER BY i.item_id LIMIT room - cardinality(ids));
    ids := ids || more;
    gold_ids := gold_ids || more;
  END IF;
  IF cardinality(ids) = 0 THEN
    RETURN;
  END IF;
  IF cardinality(gold_ids) > 0 THEN
    -- Gold items were not locked above (no k applies to them); count their leases too, so that
    -- every live lease is one `holds` whatever its item.
    UPDATE feedback_items SET holds = holds + 1 WHERE item_id = ANY (gold_ids);
  END IF;
  RETURN QUERY
    WITH l AS (INSERT INTO feedback_leases (item_id, campaign_id, rater_id, expire_time)
               SELECT unnest(ids), p_campaign, p_rater, now() + make_interval(secs => c.ttl)
               RETURNING item_id, lease_id, expire_time)
    SELECT i.item_id, l.lease_id, extract(epoch FROM l.expire_time)::double precision,
           i.payload, i.given_label, i.prediction
    FROM l JOIN feedback_items i ON i.item_id = l.item_id
    ORDER BY i.priority DESC, i.item_id;
END;
$$;

DROP FUNCTION feedback_submit(text, bigint, int, double precision, int);

-- As in 0002, with p_agree: the campaign's agreeing_ratings.
-- Records p_rater's answer (category p_category, already validated against the campaign) on
-- p_lease, ends the lease and counts the rating on its item, in the caller's transaction.
-- `duplicate` is true (and nothing changes) when the lease was submitted with this answer
-- already. When this rating makes the item complete (k ratings, or p_agree ratings that all
-- agree; not gold, not decided), the
-- item's ratings come back with each rater's Dawid–Skene confusion row-major as text (NULL when
-- none yet) and, for those without one, their gold record in this campaign (feedback_rater_gold),
-- so that the caller can decide the verdict before it commits.
CREATE FUNCTION feedback_submit(p_rater text, p_lease bigint, p_category int,
                                p_seconds double precision, p_k int, p_agree int)
RETURNS TABLE (duplicate boolean, rating_id bigint, campaign_id text,
               server_seconds double precision, now_epoch double precision, item_id bigint,
               dataset int, sample_index bigint, given_label int, ratings_count int,
               skips_count int, complete boolean, raters text[], answers int[],
               confusions text[], gold_raters text[], gold_total bigint[], gold_right bigint[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  l record;
  it record;
  rid bigint;
  secs double precision;
  done boolean;
BEGIN
  SELECT fl.rater_id, fl.state, fl.item_id, fl.campaign_id, fl.expire_time > now() AS live,
         extract(epoch FROM now() - fl.lease_time)::double precision AS held,
         fl.expire_time, r.rating_id, r.answer
    INTO l FROM feedback_leases fl LEFT JOIN feedback_ratings r ON r.lease_id = fl.lease_id
    WHERE fl.lease_id = p_lease FOR UPDATE OF fl;
  IF NOT FOUND OR l.rater_id <> p_rater THEN
    RAISE EXCEPTION USING ERRCODE = 'GL404',
      MESSAGE = format('lease ''%s'' does not exist', p_lease);
  END IF;
  IF l.state = 1 THEN
    IF l.answer <> p_category THEN
      RAISE EXCEPTION USING ERRCODE = 'GL409',
        MESSAGE = format('lease ''%s'' was already submitted with a different answer', p_lease);
    END IF;
    RETURN QUERY SELECT true, l.rating_id, l.campaign_id, 0::double precision,
      extract(epoch FROM now())::double precision, l.item_id, NULL::int, NULL::bigint,
      NULL::int, NULL::int, NULL::int, false, NULL::text[], NULL::int[], NULL::text[],
      NULL::text[], NULL::bigint[], NULL::bigint[];
    RETURN;
  END IF;
  IF l.state IN (2, 3) THEN
    RAISE EXCEPTION USING ERRCODE = 'GL412',
      MESSAGE = format('lease ''%s'' was %s; lease the item again', p_lease,
                       CASE l.state WHEN 2 THEN 'skipped' ELSE 'released' END);
  END IF;
  IF l.state = 4 OR NOT l.live THEN
    RAISE EXCEPTION USING ERRCODE = 'GL412',
      MESSAGE = format('lease ''%s'' expired at %s before the answer came; lease the item again',
                       p_lease, to_char(l.expire_time AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'));
  END IF;
  secs := l.held;
  INSERT INTO feedback_ratings (lease_id, item_id, campaign_id, rater_id, answer, seconds_spent,
                                server_seconds)
    VALUES (p_lease, l.item_id, l.campaign_id, p_rater, p_category, p_seconds, secs)
    RETURNING feedback_ratings.rating_id INTO rid;
  UPDATE feedback_leases SET state = 1, end_time = now() WHERE lease_id = p_lease;
  UPDATE feedback_items fi SET ratings_count = fi.ratings_count + 1, holds = fi.holds - 1
    WHERE fi.item_id = l.item_id
    RETURNING fi.dataset, fi.sample_index, fi.given_label, fi.ratings_count, fi.skips_count,
              fi.gold_answer,
              NOT fi.decided AND fi.gold_answer IS NULL AS undecided
    INTO it;
  -- Complete at k ratings, or as soon as the first p_agree all agree (this one included).
  done := it.undecided AND (it.ratings_count >= p_k OR
    (p_agree > 0 AND it.ratings_count >= p_agree AND NOT EXISTS (
       SELECT 1 FROM feedback_ratings r WHERE r.item_id = l.item_id AND r.answer <> p_category)));
  IF it.gold_answer IS NOT NULL THEN
    INSERT INTO feedback_rater_gold AS g (campaign_id, rater_id, answered, right_answers)
      VALUES (l.campaign_id, p_rater, 1, (p_category = it.gold_answer)::int)
      ON CONFLICT (campaign_id, rater_id) DO UPDATE
      SET answered = g.answered + 1, right_answers = g.right_answers + EXCLUDED.right_answers;
  END IF;
  IF NOT done THEN
    RETURN QUERY SELECT false, rid, l.campaign_id, secs,
      extract(epoch FROM now())::double precision, l.item_id, it.dataset::int, it.sample_index,
      it.given_label, it.ratings_count, it.skips_count, false, NULL::text[], NULL::int[],
      NULL::text[], NULL::text[], NULL::bigint[], NULL::bigint[];
    RETURN;
  END IF;
  RETURN QUERY
    WITH rr AS (
      SELECT r.rater_id, r.answer, array_to_string(m.confusion, ',') AS confusion
      FROM feedback_ratings r LEFT JOIN feedback_rater_models m
        ON m.campaign_id = r.campaign_id AND m.rater_id = r.rater_id
      WHERE r.item_id = l.item_id),
    gold AS (
      SELECT g.rater_id, g.answered AS total, g.right_answers
      FROM feedback_rater_gold g
      WHERE g.campaign_id = l.campaign_id
        AND g.rater_id IN (SELECT rr.rater_id FROM rr WHERE rr.confusion IS NULL))
    SELECT false, rid, l.campaign_id, secs, extract(epoch FROM now())::double precision,
      l.item_id, it.dataset::int, it.sample_index, it.given_label, it.ratings_count,
      it.skips_count, true,
      (SELECT array_agg(rr.rater_id ORDER BY rr.rater_id) FROM rr),
      (SELECT array_agg(rr.answer ORDER BY rr.rater_id) FROM rr),
      (SELECT array_agg(rr.confusion ORDER BY rr.rater_id) FROM rr),
      (SELECT coalesce(array_agg(gold.rater_id ORDER BY gold.rater_id), '{}') FROM gold),
      (SELECT coalesce(array_agg(gold.total ORDER BY gold.rater_id), '{}') FROM gold),
      (SELECT coalesce(array_agg(gold.right_answers ORDER BY gold.rater_id), '{}') FROM gold);
END;
$$;

