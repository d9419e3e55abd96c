-- A table without a unique constraint: applying 0002 twice would show as two rows.
CREATE TABLE widgets (
  id   bigserial,
  name text NOT NULL
);
