-- The feedback queue's tables (greenloop-feedback): bearer tokens, campaigns, items, leases,
-- ratings, verdicts and the per-rater consensus models. Protobuf columns hold the greenloop.v1
-- message named in their comment, serialized; answers are stored as categories (see
-- services/feedback/core/answers.h): label_check and relevance 0 = no, 1 = yes; label_choice the
-- label index.

CREATE TABLE auth_tokens (
  token_id      bigserial PRIMARY KEY,
  name          text NOT NULL,
  role          smallint NOT NULL,          -- greenloop.v1.Role
  token_prefix  text NOT NULL,
  token_hash    bytea NOT NULL UNIQUE,      -- SHA-256 of the secret; the secret is never stored
  create_time   timestamptz NOT NULL DEFAULT now(),
  expire_time   timestamptz,
  revoke_time   timestamptz,
  last_use_time timestamptz
);

CREATE TABLE feedback_campaigns (
  campaign_id       text PRIMARY KEY,
  seq               bigserial NOT NULL UNIQUE,  -- creation order, for listing newest first
  run_id            text NOT NULL DEFAULT '',
  spec              bytea NOT NULL,             -- greenloop.v1.CampaignSpec, defaults filled in
  ratings_per_item  int NOT NULL,
  lease_ttl_seconds int NOT NULL,
  gold_share        double precision NOT NULL,
  closed            boolean NOT NULL DEFAULT false,
  verdicts_count    bigint NOT NULL DEFAULT 0,  -- last verdict seq; the row lock orders verdicts
  create_time       timestamptz NOT NULL DEFAULT now(),
  close_time        timestamptz
);

CREATE TABLE feedback_items (
  item_id       bigserial PRIMARY KEY,
  campaign_id   text NOT NULL REFERENCES feedback_campaigns,
  dataset       smallint NOT NULL,
  sample_index  bigint NOT NULL,
  payload       bytea NOT NULL,               -- greenloop.v1.Payload
  given_label   int,                          -- NULL: none
  prediction    bytea,                        -- greenloop.v1.ModelPrediction; NULL: none
  priority      double precision NOT NULL,
  gold_answer   int,                          -- category of the known answer; NULL: not gold
  ratings_count int NOT NULL DEFAULT 0,
  skips_count   int NOT NULL DEFAULT 0,
  holds         int NOT NULL DEFAULT 0,       -- leases in state live (not yet ended or reaped)
  decided       boolean NOT NULL DEFAULT false,
  create_time   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (campaign_id, dataset, sample_index),
  CHECK (holds >= 0)
);
CREATE INDEX feedback_items_queue ON feedback_items (campaign_id, priority DESC, item_id)
  WHERE NOT decided AND gold_answer IS NULL;
CREATE INDEX feedback_items_gold ON feedback_items (campaign_id, item_id)
  WHERE gold_answer IS NOT NULL;

-- state: 0 live, 1 submitted, 2 skipped, 3 released, 4 expired (reaped after expire_time).
CREATE TABLE feedback_leases (
  lease_id     bigserial PRIMARY KEY,
  item_id      bigint NOT NULL REFERENCES feedback_items,
  campaign_id  text NOT NULL,
  rater_id     text NOT NULL,
  state        smallint NOT NULL DEFAULT 0,
  lease_time   timestamptz NOT NULL DEFAULT now(),
  expire_time  timestamptz NOT NULL,
  end_time     timestamptz,
  skip_reason  smallint
);
CREATE INDEX feedback_leases_item_rater ON feedback_leases (item_id, rater_id);
CREATE INDEX feedback_leases_live ON feedback_leases (expire_time) WHERE state = 0;
CREATE INDEX feedback_leases_rater_live ON feedback_leases (rater_id) WHERE state = 0;

CREATE TABLE feedback_ratings (
  rating_id      bigserial PRIMARY KEY,
  lease_id       bigint NOT NULL UNIQUE REFERENCES feedback_leases,
  item_id        bigint NOT NULL REFERENCES feedback_items,
  campaign_id    text NOT NULL,
  rater_id       text NOT NULL,
  answer         int NOT NULL,
  seconds_spent  double precision NOT NULL,   -- as the client reported
  server_seconds double precision NOT NULL,   -- lease to submit, as the server measured
  submit_time    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_ratings_item ON feedback_ratings (item_id);
CREATE INDEX feedback_ratings_campaign ON feedback_ratings (campaign_id, rating_id);
CREATE INDEX feedback_ratings_rater ON feedback_ratings (rater_id, rating_id DESC);

-- One row per verdict streamed; seq is dense per campaign and is what a cursor points at.
CREATE TABLE feedback_verdicts (
  campaign_id  text NOT NULL,
  seq          bigint NOT NULL,
  item_id      bigint NOT NULL REFERENCES feedback_items,
  revision     int NOT NULL,
  decision     int NOT NULL,                -- category, -1: undecidable
  verdict      bytea NOT NULL,              -- greenloop.v1.Verdict
  decide_time  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, seq),
  UNIQUE (item_id, revision)
);

-- Dawid–Skene estimates per rater and campaign, refreshed by the re-estimator.
CREATE TABLE feedback_rater_models (
  campaign_id  text NOT NULL,
  rater_id     text NOT NULL,
  reliability  double precision NOT NULL,   -- expected accuracy, in [0, 1]
  confusion    double precision[] NOT NULL, -- row-major K×K: P(answer = col | truth = row)
  update_time  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, rater_id)
);
