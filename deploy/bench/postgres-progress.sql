-- Progress against the shipped plan (deploy/plans/de-an-01-nam-dinh.toml),
-- every unit, indicator and phase, as `recompute` makes it: the same rules,
-- written by hand in SQL, rolled up the unit tree with GROUP BY ROLLUP.
-- psql variables: as_of, plan_start (YYYY-MM-DD).
--
-- As in crate::progress: a record exists on a date when its lifespan
-- ([lifespans] of the plan) holds it; each phase sees the date capped at its
-- end, so rows are computed once per distinct date (`day`) and joined to the
-- phases that see it; "the latest observation" is the latest living one, by
-- observed_on then id.
WITH day AS (
  SELECT DISTINCT LEAST(:'as_of'::date, end_on) AS d FROM phase
),
-- Cooperatives with a woman in management on the day.
wim AS (
  SELECT DISTINCT m.cooperative, day.d
  FROM manager m CROSS JOIN day
  WHERE m.gender = 'female'
    AND m.role IN ('chair', 'board_member', 'director', 'supervisory_board')
    AND (m.since IS NULL OR m.since <= day.d)
    AND (m.until IS NULL OR m.until >= day.d)
),
-- Each cooperative's latest observation living on the day.
latest AS (
  SELECT DISTINCT ON (o.cooperative, day.d)
    o.cooperative, day.d, o.workers, o.female_workers, o.stable_jobs_women, o.new_jobs_women
  FROM observation o CROSS JOIN day
  WHERE o.observed_on IS NULL OR o.observed_on <= day.d
  ORDER BY o.cooperative, day.d, o.observed_on DESC NULLS LAST, o.id COLLATE "C" DESC
),
coop AS (
  SELECT c.id, c.unit, c.type, day.d,
    c.union_supported AND c.consolidated_on >= :'plan_start'::date
      AND c.consolidated_on <= day.d AS consolidated,
    c.union_supported AND c.founded_on >= :'plan_start'::date AS new_supported,
    w.cooperative IS NOT NULL AS wim,
    w.cooperative IS NOT NULL
      OR (l.workers > 0 AND l.female_workers::float8 / l.workers > 0.5) AS in_scope,
    l.stable_jobs_women, l.new_jobs_women
  FROM cooperative c CROSS JOIN day
  LEFT JOIN wim w ON w.cooperative = c.id AND w.d = day.d
  LEFT JOIN latest l ON l.cooperative = c.id AND l.d = day.d
  WHERE (c.founded_on IS NULL OR c.founded_on <= day.d)
    AND (c.dissolved_on IS NULL OR c.dissolved_on >= day.d)
),
-- Who attended which type of training held by the day.
attended AS (
  SELECT a.person, day.d,
    bool_or(t.type IN ('governance', 'digital_skills')) AS governance_or_digital,
    bool_or(t.type = 'cadre_kttt') AS cadre_kttt,
    bool_or(t.type = 'cadre_skills') AS cadre_skills
  FROM training_attendee a JOIN training t ON t.id = a.training CROSS JOIN day
  WHERE t.held_on IS NULL OR t.held_on <= day.d
  GROUP BY a.person, day.d
),
-- One row per root and day: what it adds to each indicator (NULL: nothing).
roots AS (
  SELECT unit, d,
    (type = 'HTX' AND consolidated AND in_scope)::int AS htx_consolidated,
    (type = 'THT' AND consolidated AND in_scope)::int AS tht_consolidated,
    CASE WHEN in_scope THEN stable_jobs_women END AS stable_jobs,
    CASE WHEN in_scope AND type = 'HTX' THEN stable_jobs_women END AS stable_jobs_htx,
    CASE WHEN in_scope AND type = 'THT' THEN stable_jobs_women END AS stable_jobs_tht,
    NULL::int AS managers_trained_pct_num, NULL::int AS managers_trained_pct_den,
    (type = 'HTX' AND new_supported AND wim)::int AS new_htx,
    (new_supported AND wim)::int AS new_htx_tht,
    CASE WHEN in_scope THEN new_jobs_women END AS new_jobs,
    NULL::int AS association,
    NULL::int AS cadres_kttt_trained_pct_num, NULL::int AS cadres_kttt_trained_pct_den,
    NULL::int AS cadres_skills_pct_num, NULL::int AS cadres_skills_pct_den,
    NULL::int AS activities, NULL::bigint AS loans_vnd
  FROM coop
  UNION ALL
  SELECT m.unit, day.d, NULL, NULL, NULL, NULL, NULL,
    COALESCE(a.governance_or_digital, false)::int, 1,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM manager m CROSS JOIN day
  JOIN cooperative c ON c.id = m.cooperative AND c.type = 'HTX'
    AND (c.founded_on IS NULL OR c.founded_on <= day.d)
    AND (c.dissolved_on IS NULL OR c.dissolved_on >= day.d)
  LEFT JOIN attended a ON a.person = m.id AND a.d = day.d
  WHERE m.gender = 'female'
    AND m.role IN ('chair', 'board_member', 'director', 'supervisory_board')
    AND (m.since IS NULL OR m.since <= day.d)
    AND (m.until IS NULL OR m.until >= day.d)
  UNION ALL
  SELECT k.unit, day.d, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    CASE WHEN k.kttt_support THEN COALESCE(a.cadre_kttt, false)::int END,
    CASE WHEN k.kttt_support THEN 1 END,
    COALESCE(a.cadre_skills, false)::int, 1,
    NULL, NULL
  FROM cadre k CROSS JOIN day
  LEFT JOIN attended a ON a.person = k.id AND a.d = day.d
  WHERE (k.since IS NULL OR k.since <= day.d) AND (k.until IS NULL OR k.until >= day.d)
  UNION ALL
  SELECT x.unit, day.d, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    (x.held_on >= :'plan_start'::date)::int,
    CASE WHEN x.type = 'loan' AND x.held_on >= :'plan_start'::date THEN x.amount_vnd END
  FROM activity x CROSS JOIN day
  WHERE x.held_on IS NULL OR x.held_on <= day.d
  UNION ALL
  SELECT s.unit, day.d, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    (s.type = 'women_entrepreneurs_association')::int,
    NULL, NULL, NULL, NULL, NULL, NULL
  FROM milestone s CROSS JOIN day
  WHERE s.achieved_on IS NULL OR s.achieved_on <= day.d
),
-- Every province, district and commune: what is placed at it or below.
rolled AS (
  SELECT r.d,
    CASE WHEN GROUPING(u.commune) = 0 THEN u.commune
         WHEN GROUPING(u.district) = 0 THEN u.district
         ELSE u.province END AS code,
    COALESCE(sum(htx_consolidated), 0) AS htx_consolidated,
    COALESCE(sum(tht_consolidated), 0) AS tht_consolidated,
    COALESCE(sum(stable_jobs), 0) AS stable_jobs,
    COALESCE(sum(stable_jobs_htx), 0) AS stable_jobs_htx,
    COALESCE(sum(stable_jobs_tht), 0) AS stable_jobs_tht,
    COALESCE(sum(managers_trained_pct_num), 0) AS managers_trained_pct_num,
    COALESCE(sum(managers_trained_pct_den), 0) AS managers_trained_pct_den,
    COALESCE(sum(new_htx), 0) AS new_htx,
    COALESCE(sum(new_htx_tht), 0) AS new_htx_tht,
    COALESCE(sum(new_jobs), 0) AS new_jobs,
    COALESCE(sum(association), 0) AS association,
    COALESCE(sum(cadres_kttt_trained_pct_num), 0) AS cadres_kttt_trained_pct_num,
    COALESCE(sum(cadres_kttt_trained_pct_den), 0) AS cadres_kttt_trained_pct_den,
    COALESCE(sum(cadres_skills_pct_num), 0) AS cadres_skills_pct_num,
    COALESCE(sum(cadres_skills_pct_den), 0) AS cadres_skills_pct_den,
    COALESCE(sum(activities), 0) AS activities,
    COALESCE(sum(loans_vnd), 0) AS loans_vnd
  FROM roots r JOIN unit_path u ON u.code = r.unit
  GROUP BY r.d, ROLLUP (u.province, u.district, u.commune)
  -- Not the grand total (no unit), nor the part of a district placed at
  -- the district itself (its own subtotal row follows).
  HAVING GROUPING(u.province) = 0
    AND NOT (GROUPING(u.district) = 0 AND u.district IS NULL)
    AND NOT (GROUPING(u.commune) = 0 AND u.commune IS NULL)
)
SELECT x.code, p.id AS phase,
  htx_consolidated, tht_consolidated, stable_jobs, stable_jobs_htx, stable_jobs_tht,
  managers_trained_pct_num, managers_trained_pct_den, new_htx, new_htx_tht, new_jobs,
  association, cadres_kttt_trained_pct_num, cadres_kttt_trained_pct_den,
  cadres_skills_pct_num, cadres_skills_pct_den, activities, loans_vnd
FROM rolled x JOIN phase p ON LEAST(:'as_of'::date, p.end_on) = x.d
ORDER BY x.code COLLATE "C", p.id COLLATE "C";
