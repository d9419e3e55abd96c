-- Trainer worker tables (services/trainer): one row per rank of a run, its accuracy curve with
-- cumulative energy, and every change verdicts made to its training set.

CREATE TABLE runs (
  run_id          text        NOT NULL,
  rank            integer     NOT NULL CHECK (rank >= 0),
  world_size      integer     NOT NULL CHECK (world_size >= 1),
  node            text        NOT NULL,
  experiment_id   text        NOT NULL DEFAULT '',
  dataset         text        NOT NULL,
  mode            text        NOT NULL,
  state           text        NOT NULL,
  finish_reason   text        NOT NULL DEFAULT 'FINISH_REASON_UNSPECIFIED',
  error_message   text        NOT NULL DEFAULT '',
  create_time     timestamptz NOT NULL,
  start_time      timestamptz,
  end_time        timestamptz,
  parameter_count bigint,
  macs_per_sample bigint,
  steps           bigint      NOT NULL DEFAULT 0,
  samples_processed bigint    NOT NULL DEFAULT 0,
  eval_accuracy   double precision,
  best_eval_accuracy double precision,
  energy_joules   double precision NOT NULL DEFAULT 0,
  energy_to_target_joules double precision,
  steps_to_target bigint,
  -- The whole Run message (greenloop.v1.Run, protobuf JSON mapping): config, progress, results.
  run             jsonb       NOT NULL,
  update_time     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, rank)
);
CREATE INDEX runs_node_create_time ON runs (node, create_time DESC);
CREATE INDEX runs_experiment ON runs (experiment_id) WHERE experiment_id <> '';

CREATE TABLE run_evaluations (
  run_id             text             NOT NULL,
  rank               integer          NOT NULL,
  step               bigint           NOT NULL,
  epoch              integer          NOT NULL,
  samples_processed  bigint           NOT NULL,
  eval_accuracy      double precision NOT NULL,
  eval_loss          double precision NOT NULL,
  train_loss         double precision NOT NULL,
  energy_joules      double precision NOT NULL,  -- whole run, cumulative
  node_energy_joules double precision NOT NULL,  -- this rank's node, cumulative
  elapsed_seconds    double precision NOT NULL,
  record_time        timestamptz      NOT NULL,
  PRIMARY KEY (run_id, rank, step),
  FOREIGN KEY (run_id, rank) REFERENCES runs (run_id, rank) ON DELETE CASCADE
);

CREATE TABLE run_changes (
  run_id       text             NOT NULL,
  rank         integer          NOT NULL,
  seq          bigserial        NOT NULL,
  step         bigint           NOT NULL,
  sample_index bigint           NOT NULL,  -- SampleRef index
  action       text             NOT NULL CHECK (action IN ('keep', 'relabel', 'drop', 'reweight')),
  old_label    integer          NOT NULL,
  new_label    integer          NOT NULL,
  old_weight   double precision NOT NULL,
  new_weight   double precision NOT NULL,
  source       text             NOT NULL CHECK (source IN ('human', 'auto')),
  item_id      text             NOT NULL DEFAULT '',
  revision     integer          NOT NULL DEFAULT 0,
  confidence   double precision NOT NULL,
  clean_label  integer          NOT NULL,  -- ground truth, for reports only
  correct      boolean          NOT NULL,
  PRIMARY KEY (run_id, rank, seq),
  FOREIGN KEY (run_id, rank) REFERENCES runs (run_id, rank) ON DELETE CASCADE
);
CREATE INDEX run_changes_sample ON run_changes (run_id, sample_index);
