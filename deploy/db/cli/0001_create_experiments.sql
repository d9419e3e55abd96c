-- Command-line tables (tools/greenloop): experiments and their runs as `greenloop experiment`
-- collected them, and the estimates `greenloop predict` made. The CLI reads no other component's
-- tables: everything here came through the services' gRPC APIs.

CREATE TABLE experiments (
  experiment_id    text        PRIMARY KEY,
  name             text        NOT NULL,
  spec_path        text        NOT NULL,
  dataset          text        NOT NULL,
  state            text        NOT NULL,
  target_accuracy  double precision NOT NULL DEFAULT 0,
  start_time       timestamptz NOT NULL DEFAULT now(),
  update_time      timestamptz NOT NULL DEFAULT now(),
  wall_seconds     double precision NOT NULL DEFAULT 0,
  report_markdown  text        NOT NULL DEFAULT '',
  report_html      text        NOT NULL DEFAULT '',
  -- The whole greenloop.cli.ExperimentResult (tools/greenloop/experiment/results.proto, protobuf
  -- JSON mapping): every mode's figures, curves and crowd totals.
  result           jsonb       NOT NULL
);

-- One row per run (mode) of an experiment, with the columns Grafana and the regression read.
CREATE TABLE experiment_runs (
  experiment_id     text        NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
  run_id            text        NOT NULL,
  mode              text        NOT NULL,
  state             text        NOT NULL,
  node              text        NOT NULL DEFAULT '',
  parameter_count   bigint      NOT NULL DEFAULT 0,
  macs_per_sample   bigint      NOT NULL DEFAULT 0,
  samples_processed bigint      NOT NULL DEFAULT 0,
  batch_size        integer     NOT NULL DEFAULT 0,
  steps             bigint      NOT NULL DEFAULT 0,
  duration_seconds  double precision NOT NULL DEFAULT 0,
  energy_joules     double precision NOT NULL DEFAULT 0,
  energy_source     text        NOT NULL DEFAULT '',
  energy_to_target_joules double precision,
  final_accuracy    double precision NOT NULL DEFAULT 0,
  best_accuracy     double precision NOT NULL DEFAULT 0,
  carbon_grams      double precision NOT NULL DEFAULT 0,
  rater_seconds_modelled double precision NOT NULL DEFAULT 0,
  ratings           bigint      NOT NULL DEFAULT 0,
  projection_error_10 double precision,
  projection_error_25 double precision,
  PRIMARY KEY (experiment_id, run_id)
);
CREATE INDEX experiment_runs_state ON experiment_runs (state);

CREATE TABLE predictions (
  prediction_id    bigserial   PRIMARY KEY,
  create_time      timestamptz NOT NULL DEFAULT now(),
  spec_path        text        NOT NULL,
  estimate_joules  double precision NOT NULL,
  low_joules       double precision NOT NULL,
  high_joules      double precision NOT NULL,
  loo_error        double precision,
  runs_used        integer     NOT NULL,
  -- The features the estimate was made for (JSON object).
  features         jsonb       NOT NULL
);
