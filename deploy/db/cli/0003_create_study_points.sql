-- One row per point of a Green-ML study (greenloop study): the point's run as it ended, so that a
-- re-run of the same study id resumes the points that did not succeed. The run itself is also an
-- experiment (experiments / experiment_runs, experiment id = point_id).
CREATE TABLE study_points (
  study_id text NOT NULL,
  point_id text NOT NULL,
  label text NOT NULL,
  spec_path text NOT NULL,
  state text NOT NULL,
  architecture text NOT NULL,
  parameter_count bigint NOT NULL,
  macs_per_sample bigint NOT NULL,
  batch_size integer NOT NULL,
  learning_rate double precision NOT NULL,
  threads integer NOT NULL,
  samples_processed bigint NOT NULL,
  energy_joules double precision NOT NULL,
  energy_source text NOT NULL,
  energy_per_sample_joules double precision NOT NULL,
  energy_to_target_joules double precision,
  accuracy double precision NOT NULL,
  duration_seconds double precision NOT NULL,
  idle_joules double precision NOT NULL,
  carbon_grams double precision NOT NULL,
  -- [{batch_size, samples, seconds, energy_joules, joules_per_sample, latency_ms, ...}]
  inference jsonb NOT NULL,
  -- The run's cli.ModeResult (JSON mapping).
  result jsonb NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (study_id, point_id)
);
