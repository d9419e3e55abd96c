-- The batches the collector's writer committed (issue 17): a batch tried again after a commit
-- whose outcome was unknown carries the same id and is skipped, so the sample energy it adds to
-- its buckets is never counted twice. Rows older than a week are pruned by the writer.
CREATE TABLE energy_write_batches (
  node       text        NOT NULL,
  batch_id   text        NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node, batch_id)
);
