-- The national synthetic records in PostgreSQL, for deploy/bench/postgres.sh.
-- One table per kind of record, typed columns, the keys and indexes a
-- province's database would have for these queries. The CSV files come from
-- `progress_bench --export DIR`; psql runs this from inside DIR.

CREATE TABLE unit_path (
  code     text PRIMARY KEY,
  province text NOT NULL,
  district text,
  commune  text
);
CREATE TABLE phase (id text PRIMARY KEY, start_on date NOT NULL, end_on date NOT NULL);
CREATE TABLE cooperative (
  id text PRIMARY KEY, unit text NOT NULL,
  type text, founded_on date, dissolved_on date, union_supported boolean, consolidated_on date
);
CREATE TABLE observation (
  id text PRIMARY KEY, unit text NOT NULL,
  cooperative text, observed_on date, workers bigint, female_workers bigint,
  stable_jobs_women bigint, new_jobs_women bigint
);
CREATE TABLE manager (
  id text PRIMARY KEY, unit text NOT NULL,
  cooperative text, gender text, role text, since date, until date
);
CREATE TABLE cadre (
  id text PRIMARY KEY, unit text NOT NULL,
  kttt_support boolean, since date, until date
);
CREATE TABLE training (id text PRIMARY KEY, unit text NOT NULL, held_on date, type text);
CREATE TABLE training_attendee (training text NOT NULL, person text NOT NULL);
CREATE TABLE activity (
  id text PRIMARY KEY, unit text NOT NULL, type text, held_on date, amount_vnd bigint
);
-- The generator makes none; the indicator counts them all the same.
CREATE TABLE milestone (id text PRIMARY KEY, unit text NOT NULL, type text, achieved_on date);

\copy unit_path FROM 'unit_path.csv' WITH (FORMAT csv)
\copy phase FROM 'phase.csv' WITH (FORMAT csv)
\copy cooperative FROM 'cooperative.csv' WITH (FORMAT csv)
\copy observation FROM 'observation.csv' WITH (FORMAT csv)
\copy manager FROM 'manager.csv' WITH (FORMAT csv)
\copy cadre FROM 'cadre.csv' WITH (FORMAT csv)
\copy training FROM 'training.csv' WITH (FORMAT csv)
\copy training_attendee FROM 'training_attendee.csv' WITH (FORMAT csv)
\copy activity FROM 'activity.csv' WITH (FORMAT csv)

CREATE INDEX ON observation (cooperative, observed_on);
CREATE INDEX ON manager (cooperative);
CREATE INDEX ON training_attendee (person);
CREATE INDEX ON training_attendee (training);
CREATE INDEX ON cooperative (unit);
CREATE INDEX ON manager (unit);
CREATE INDEX ON cadre (unit);
CREATE INDEX ON activity (unit);
VACUUM ANALYZE;
