-- Lease may be told not to walk the queue head (p_walk = false): with a busy crowd the head is
-- full of held items, and a walk past them cost ~9 ms of PostgreSQL time against ~0.2 ms for
-- candidates taken by primary key. The service asks again with fresh candidates first, and walks
-- only then (FeedbackQueue::Lease).
DROP FUNCTION feedback_lease(text, text, int, int, int, bigint[]);

-- As in 0003, but the walk of the head, and the gold items that fill up after it, only when
-- p_walk.
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
  SELECT fc.closed, fc.ratings_per_item AS k, fc.lease_ttl_seconds AS ttl,
         fc.gold_share > 0 AS has_gold
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
        AND i.gold_answer IS NULL AND i.ratings_count + i.holds < c.k
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
    -- SKIP LOCKED, and k re-checked on the locked row version: concurrent raters never take an
    -- item beyond k. NO KEY UPDATE (what the UPDATE below takes anyway) does not block the
    -- foreign-key checks of ratings being inserted for the same item.
    WITH cand AS (
      SELECT i.item_id FROM feedback_items i
      WHERE i.campaign_id = p_campaign AND NOT i.decided AND i.gold_answer IS NULL
        AND i.ratings_count + i.holds < c.k AND i.item_id <> ALL (ids)
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
