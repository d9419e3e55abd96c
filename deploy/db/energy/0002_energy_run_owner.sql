-- Who registered each run (issue 17): the id of the authenticated principal whose Register opened
-- it ('' when authentication is off). Only that principal, or an admin, may add to the run or
-- unregister it, also after a collector restart.
ALTER TABLE energy_runs ADD COLUMN owner text NOT NULL DEFAULT '';
