-- greenloop-energy: samples at a fixed resolution, per-run totals, and the state a restarted
-- collector needs to continue. Every table is keyed by node: one collector per node writes its own
-- rows only.

-- One row per (node, zone, bucket): the energy the zone spent in that bucket of
-- `bucket_seconds` (config storage.sample_resolution), downsampled from the per-interval readings.
-- zone 'node' with domain 'node' is the node total (no double counting).
CREATE TABLE energy_samples (
  node            text             NOT NULL,
  zone            text             NOT NULL,
  bucket_start    timestamptz      NOT NULL,
  domain          text             NOT NULL,
  source          text             NOT NULL,
  bucket_seconds  double precision NOT NULL CHECK (bucket_seconds > 0),
  energy_joules   double precision NOT NULL CHECK (energy_joules >= 0),
  idle_joules     double precision NOT NULL CHECK (idle_joules >= 0),
  covered_seconds double precision NOT NULL CHECK (covered_seconds >= 0),
  PRIMARY KEY (node, zone, bucket_start)
);
CREATE INDEX energy_samples_by_time ON energy_samples (bucket_start);

-- A run's figures on one node, as GetRunEnergy returns them.
CREATE TABLE energy_runs (
  run_id              text             NOT NULL,
  node                text             NOT NULL,
  active              boolean          NOT NULL,
  first_register_time timestamptz      NOT NULL,
  register_time       timestamptz      NOT NULL,
  end_time            timestamptz      NOT NULL,
  unregister_time     timestamptz,
  duration_seconds    double precision NOT NULL,
  gap_seconds         double precision NOT NULL,
  active_joules       double precision NOT NULL,
  idle_joules         double precision NOT NULL,
  carbon_grams        double precision NOT NULL,
  idle_carbon_grams   double precision NOT NULL,
  estimated_domains   text[]           NOT NULL DEFAULT '{}',
  pids                integer[]        NOT NULL DEFAULT '{}',
  live_pids           integer[]        NOT NULL DEFAULT '{}',
  ranks               integer[]        NOT NULL DEFAULT '{}',
  gpu_uuids           text[]           NOT NULL DEFAULT '{}',
  updated_at          timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, node)
);

-- The per-(domain, source) breakdown of energy_runs.
CREATE TABLE energy_run_domains (
  run_id        text             NOT NULL,
  node          text             NOT NULL,
  domain        text             NOT NULL,
  source        text             NOT NULL,
  zones         text[]           NOT NULL,
  active_joules double precision NOT NULL,
  idle_joules   double precision NOT NULL,
  seconds       double precision NOT NULL,
  PRIMARY KEY (run_id, node, domain, source),
  FOREIGN KEY (run_id, node) REFERENCES energy_runs ON DELETE CASCADE
);

-- What a restarted collector continues from: meter counters, process CPU times, idle baselines,
-- written in the same transaction as the run totals they belong to.
CREATE TABLE energy_collector_state (
  node     text        PRIMARY KEY,
  boot_id  text        NOT NULL,
  saved_at timestamptz NOT NULL,
  counters text        NOT NULL
);
