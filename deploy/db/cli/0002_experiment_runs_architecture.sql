-- The model each stored run trained ("MODEL_KIND_RESNET width=16 depth=1"; empty for runs stored
-- before the model zoo, all of which trained the dataset's default model). greenloop predict
-- leaves one architecture (the part before the first space) out at a time.
ALTER TABLE experiment_runs ADD COLUMN architecture text NOT NULL DEFAULT '';
