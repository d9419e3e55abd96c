-- The queue's hot path as stored functions: Lease and Submit are one round trip each, and their
-- statements are planned once per connection (PL/pgSQL caches plans) instead of on every call.
-- The rules they keep are those documented on PgFeedbackStore (services/feedback/storage).
--
-- Errors the caller maps to the contract's codes (see common/pg/errors.cc):
--   GL404 NOT_FOUND, GL409 ALREADY_EXISTS, GL412 FAILED_PRECONDITION; the message is the
--   contract's message as is.

-- Item rows change on every lease and rating (holds, ratings_count). Free space on their pages
-- lets those be HOT updates: no new entries in the queue index, whose head every rater scans.
-- New pages only; autovacuum keeps up with the dead versions sooner.
ALTER TABLE feedback_items SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02,
                                autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE feedback_leases SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02);

-- Each rater's record on a campaign's gold items, kept as ratings come, so that deciding an
-- item reads one row per rater instead of counting the rater's gold ratings again.
CREATE TABLE feedback_rater_gold (
  campaign_id text NOT NULL,
  rater_id    text NOT NULL,
  answered    bigint NOT NULL DEFAULT 0,
  right_answers bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (campaign_id, rater_id)
);
INSERT INTO feedback_rater_gold (campaign_id, rater_id, answered, right_answers)
  SELECT r.campaign_id, r.rater_id, count(*), count(*) FILTER (WHERE r.answer = i.gold_answer)
  FROM feedback_ratings r JOIN feedback_items i ON i.item_id = r.item_id
  WHERE i.gold_answer IS NOT NULL GROUP BY r.campaign_id, r.rater_id;

-- Leases up to p_max items of p_campaign to p_rater: up to p_gold_wanted gold items, then the
-- queue head (priority, then age) among items still short of k ratings plus live leases, then gold
-- items again to fill up; never more than p_max_live live leases in all, never an item the rater
-- holds, rated or skipped. Rows in the order shown to the rater.
CREATE FUNCTION feedback_lease(p_campaign text, p_rater text, p_max int, p_gold_wanted int,
                               p_max_live int)
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
  IF room > cardinality(ids) THEN
    -- SKIP LOCKED, and k re-checked on the locked row version: concurrent raters never take an
    -- item beyond k. NO KEY UPDATE (what the UPDATE below takes anyway) does not block the
    -- foreign-key checks of ratings being inserted for the same item.
    WITH cand AS (
      SELECT i.item_id FROM feedback_items i
      WHERE i.campaign_id = p_campaign AND NOT i.decided AND i.gold_answer IS NULL
        AND i.ratings_count + i.holds < c.k
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
  IF room > cardinality(ids) AND c.has_gold THEN
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

-- Records p_rater's answer (category p_category, already validated against the campaign) on
-- p_lease, ends the lease and counts the rating on its item, in the caller's transaction.
-- `duplicate` is true (and nothing changes) when the lease was submitted with this answer
-- already. When this rating makes the item complete (k ratings, not gold, not decided), the
-- item's ratings come back with each rater's Dawid–Skene confusion row-major as text (NULL when
-- none yet) and, for those without one, their gold record in this campaign (feedback_rater_gold),
-- so that the caller can decide the verdict before it commits.
CREATE FUNCTION feedback_submit(p_rater text, p_lease bigint, p_category int,
                                p_seconds double precision, p_k int)
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
              NOT fi.decided AND fi.gold_answer IS NULL AND fi.ratings_count >= p_k AS complete
    INTO it;
  IF it.gold_answer IS NOT NULL THEN
    INSERT INTO feedback_rater_gold AS g (campaign_id, rater_id, answered, right_answers)
      VALUES (l.campaign_id, p_rater, 1, (p_category = it.gold_answer)::int)
      ON CONFLICT (campaign_id, rater_id) DO UPDATE
      SET answered = g.answered + 1, right_answers = g.right_answers + EXCLUDED.right_answers;
  END IF;
  IF NOT it.complete THEN
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

-- Verdicts are numbered when read, not when written. A writer used to take its seq from the
-- campaign row (UPDATE … RETURNING) and hold that row's lock to commit, so every verdict of a
-- campaign waited for the one before it. Now a verdict is inserted with seq NULL, and readers
-- number the committed ones in verdict_id order under the campaign row's lock
-- (feedback_sequence_verdicts): numbering is serialized, sees only committed verdicts, and a
-- verdict committed later gets a later seq, so seqs stay dense per campaign and a cursor never
-- skips one. verdicts_count stays the last seq given.
ALTER TABLE feedback_verdicts DROP CONSTRAINT feedback_verdicts_pkey;
ALTER TABLE feedback_verdicts ALTER COLUMN seq DROP NOT NULL;
ALTER TABLE feedback_verdicts ADD COLUMN verdict_id bigserial PRIMARY KEY;
CREATE UNIQUE INDEX feedback_verdicts_seq ON feedback_verdicts (campaign_id, seq);
CREATE INDEX feedback_verdicts_unsequenced ON feedback_verdicts (campaign_id, verdict_id)
  WHERE seq IS NULL;

-- Numbers p_campaign's committed, unnumbered verdicts; returns the last seq (NULL: no such
-- campaign).
CREATE FUNCTION feedback_sequence_verdicts(p_campaign text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  last bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM feedback_verdicts v
                 WHERE v.campaign_id = p_campaign AND v.seq IS NULL) THEN
    RETURN (SELECT c.verdicts_count FROM feedback_campaigns c WHERE c.campaign_id = p_campaign);
  END IF;
  SELECT c.verdicts_count INTO last FROM feedback_campaigns c
    WHERE c.campaign_id = p_campaign FOR NO KEY UPDATE;
  -- A new statement, so a new snapshot: what a numbering that held the lock before committed.
  WITH todo AS (
    SELECT v.verdict_id, last + row_number() OVER (ORDER BY v.verdict_id) AS seq
    FROM feedback_verdicts v WHERE v.campaign_id = p_campaign AND v.seq IS NULL),
  numbered AS (
    UPDATE feedback_verdicts v SET seq = todo.seq FROM todo
    WHERE v.verdict_id = todo.verdict_id RETURNING v.seq)
  SELECT coalesce(max(numbered.seq), last) INTO last FROM numbered;
  UPDATE feedback_campaigns c SET verdicts_count = last WHERE c.campaign_id = p_campaign;
  RETURN last;
END;
$$;

-- The newest revoke, read every second by each replica's token cache (RevocationMark).
CREATE INDEX auth_tokens_revoked ON auth_tokens (revoke_time) WHERE revoke_time IS NOT NULL;
