-- How cost is computed, once, for every panel and for the CLI (read by sql/cost_*.sql and sql/experiment_*.sql).
-- EC2 Linux bills per second with a 60-second minimum per start; a running interval counts up to now().

-- The end of what EC2 bills for one run: its end (now() while running), but at least 60 s after its start.
CREATE FUNCTION dashgen.billed_end(started_at timestamptz, ended_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(coalesce(ended_at, now()), started_at + interval '60 seconds')
$$;

-- Seconds EC2 bills for one run inside the window [win_from, win_to].
CREATE FUNCTION dashgen.billed_seconds(started_at timestamptz, ended_at timestamptz,
                                       win_from timestamptz, win_to timestamptz)
RETURNS numeric LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(0::numeric, extract(epoch FROM
        least(dashgen.billed_end(started_at, ended_at), win_to) - greatest(started_at, win_from)))
$$;

-- Rollups `dashgen.refresh_billing` keeps exact at every sync, so that no panel sums every run ever made:
-- per run, the billed seconds of the instance's earlier runs; per instance, the billed seconds of its closed
-- runs and the start of the run still going (NULL when stopped).
ALTER TABLE dashgen.instance_intervals ADD COLUMN billed_before double precision NOT NULL DEFAULT 0;
ALTER TABLE dashgen.instances ADD COLUMN billed_closed_s double precision NOT NULL DEFAULT 0,
                              ADD COLUMN closed_until timestamptz,  -- the billed end of its last closed run
                              ADD COLUMN running_since timestamptz;
CREATE INDEX instance_intervals_end ON dashgen.instance_intervals ((coalesce(ended_at, 'infinity')));
CREATE INDEX instance_intervals_probe ON dashgen.instance_intervals (instance_id, started_at DESC)
    INCLUDE (ended_at, billed_before);

CREATE FUNCTION dashgen.refresh_billing(ids text[]) RETURNS void LANGUAGE sql AS $$
    UPDATE dashgen.instance_intervals iv SET billed_before = w.before
    FROM (SELECT instance_id, started_at,
                 coalesce(sum(closed_s) OVER (PARTITION BY instance_id ORDER BY started_at
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
          FROM (SELECT instance_id, started_at,
                       coalesce(date_part('epoch', dashgen.billed_end(started_at, ended_at) - started_at)
                                * (ended_at IS NOT NULL)::int, 0) AS closed_s
                FROM dashgen.instance_intervals WHERE instance_id = ANY (ids)) x) w
    WHERE iv.instance_id = w.instance_id AND iv.started_at = w.started_at AND iv.billed_before <> w.before;
    UPDATE dashgen.instances i SET billed_closed_s = r.closed_s, closed_until = r.until, running_since = r.since
    FROM (SELECT i2.instance_id,
                 coalesce(sum(date_part('epoch', dashgen.billed_end(iv.started_at, iv.ended_at) - iv.started_at))
                          FILTER (WHERE iv.ended_at IS NOT NULL), 0) AS closed_s,
                 max(dashgen.billed_end(iv.started_at, iv.ended_at)) FILTER (WHERE iv.ended_at IS NOT NULL) AS until,
                 max(iv.started_at) FILTER (WHERE iv.ended_at IS NULL) AS since
          FROM dashgen.instances i2 LEFT JOIN dashgen.instance_intervals iv ON iv.instance_id = i2.instance_id
          WHERE i2.instance_id = ANY (ids) GROUP BY i2.instance_id) r
    WHERE i.instance_id = r.instance_id
      AND (i.billed_closed_s, i.closed_until, i.running_since) IS DISTINCT FROM (r.closed_s, r.until, r.since);
$$;

-- Billed seconds to date of an instance, from its rollups.
CREATE FUNCTION dashgen.seconds_to_date(billed_closed_s double precision, running_since timestamptz)
RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT billed_closed_s + coalesce(date_part('epoch', dashgen.billed_end(running_since, NULL) - running_since), 0)
$$;

-- Per instance: billed seconds inside [win_from, win_to], billed seconds to date, running now.
-- Billed seconds up to t: from the rollups when t is after the last closed run and the start of the open
-- one, else from the last run started by t (one index probe). Runs restarted within 60 s of a start may overlap their minimum; that overlap is counted once here.
CREATE FUNCTION dashgen.instance_costs(win_from timestamptz, win_to timestamptz)
RETURNS TABLE (instance_id text, seconds_in_range double precision, seconds_to_date double precision,
               running bool)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT i.instance_id, upto.t_to - upto.t_from, dashgen.seconds_to_date(i.billed_closed_s, i.running_since),
           i.running_since IS NOT NULL
    FROM dashgen.instances i,
    LATERAL (SELECT
        CASE WHEN win_to >= coalesce(i.closed_until, '-infinity')
                  AND win_to >= coalesce(i.running_since, '-infinity')
             THEN i.billed_closed_s + coalesce(date_part('epoch', greatest(interval '0', least(
                      dashgen.billed_end(i.running_since, NULL), win_to) - i.running_since)), 0)
             ELSE coalesce((SELECT iv.billed_before + date_part('epoch', greatest(interval '0', least(
                                dashgen.billed_end(iv.started_at, iv.ended_at), win_to) - iv.started_at))
                            FROM dashgen.instance_intervals iv
                            WHERE iv.instance_id = i.instance_id AND iv.started_at <= win_to
                            ORDER BY iv.started_at DESC LIMIT 1), 0) END AS t_to,
        CASE WHEN win_from >= coalesce(i.closed_until, '-infinity')
                  AND win_from >= coalesce(i.running_since, '-infinity')
             THEN i.billed_closed_s + coalesce(date_part('epoch', greatest(interval '0', least(
                      dashgen.billed_end(i.running_since, NULL), win_from) - i.running_since)), 0)
             ELSE coalesce((SELECT iv.billed_before + date_part('epoch', greatest(interval '0', least(
                                dashgen.billed_end(iv.started_at, iv.ended_at), win_from) - iv.started_at))
                            FROM dashgen.instance_intervals iv
                            WHERE iv.instance_id = i.instance_id AND iv.started_at <= win_from
                            ORDER BY iv.started_at DESC LIMIT 1), 0) END AS t_from) upto
$$;

-- Per experiment: spend to date, burn rate now, projections against budget and deadline, progress and ETA.
-- NULL = unknown (an instance without a price ran; no progress metric), never $0.
CREATE VIEW dashgen.experiment_status AS
WITH members AS (
    SELECT e.name, p.usd_per_hour, dashgen.seconds_to_date(i.billed_closed_s, i.running_since) AS seconds,
           i.running_since IS NOT NULL AS running
    FROM dashgen.experiments e
    JOIN dashgen.instances i ON i.tags @> jsonb_build_object(e.tag_key, e.tag_value)
    LEFT JOIN dashgen.instance_prices p
           ON (p.region, p.instance_type, p.operating_system, p.tenancy)
            = (i.region, i.instance_type, i.operating_system, i.tenancy)
), spend AS (
    SELECT e.name, e.budget_usd, e.deadline,
           count(m.name) AS instances,
           count(*) FILTER (WHERE m.running) AS running,
           CASE WHEN bool_and(m.usd_per_hour IS NOT NULL OR m.seconds = 0) IS NOT FALSE
                THEN round(coalesce(sum(m.seconds * m.usd_per_hour::float8 / 3600), 0)::numeric, 6) END AS spent_usd,
           CASE WHEN bool_and(m.usd_per_hour IS NOT NULL OR NOT m.running) IS NOT FALSE
                THEN coalesce(sum(m.usd_per_hour) FILTER (WHERE m.running), 0) END AS burn_usd_per_hour
    FROM dashgen.experiments e
    LEFT JOIN members m ON m.name = e.name
    GROUP BY e.name, e.budget_usd, e.deadline
), progress AS (
    SELECT p.experiment AS name,
           max(p.at) AS last_at,
           (array_agg(p.percent ORDER BY p.at DESC))[1] AS percent,
           min(p.at) FILTER (WHERE p.percent >= 100) AS done_at,
           regr_slope(p.percent, extract(epoch FROM p.at)) AS percent_per_second
    FROM dashgen.experiment_progress p
    GROUP BY p.experiment
), eta AS (
    SELECT s.*, p.percent,
           CASE WHEN p.done_at IS NOT NULL THEN p.done_at
                WHEN p.percent_per_second > 0
                THEN p.last_at + make_interval(secs => ((100 - p.percent) / p.percent_per_second)::float8)
           END AS eta
    FROM spend s LEFT JOIN progress p ON p.name = s.name
), projected AS (
    SELECT eta.*,
           spent_usd + burn_usd_per_hour * greatest(0, extract(epoch FROM deadline - now())) / 3600
               AS projected_at_deadline_usd,
           spent_usd + burn_usd_per_hour * greatest(0, extract(epoch FROM eta.eta - now())) / 3600
               AS projected_to_finish_usd
    FROM eta
)
SELECT name, instances, running, budget_usd, spent_usd, budget_usd - spent_usd AS budget_left_usd,
       burn_usd_per_hour, deadline, projected_at_deadline_usd, percent AS progress_percent, eta,
       projected_to_finish_usd,
       coalesce(projected_to_finish_usd, projected_at_deadline_usd) <= budget_usd AS fits_budget,
       eta <= deadline AS makes_deadline
FROM projected;
