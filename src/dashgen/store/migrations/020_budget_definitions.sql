-- Budget and deadline answers that follow docs/cost.md's definitions (issue 17), and one billing rule for every
-- cost panel. Functions and views of earlier migrations are replaced here (a landed migration is never edited).
--
-- 1. dashgen.instance_costs by rows: a run restarted within 60 s of an earlier start bills both 60-second
--    minimums at their own times, as by runs, the cumulative panel and dashgen.billed_seconds do (it counted the
--    overlap at a range edge inside it once). By runs: a range after now no longer gives a negative time.
-- 2. dashgen.cumulative_cost: with the tag key Name the rollups (grouped by tags without Name) are not used,
--    so a run's start and end fall in the same series and the curve equals the cost-by-tag table.
-- 3. dashgen.experiment_status: NULL means unknown and never turns into a number. The projected cost to finish
--    is unknown without an ETA (PostgreSQL's greatest() ignored the NULL ETA, so "fits budget" compared only the
--    spend so far with the budget); the ETA follows the recent pace (docs/cost.md says why) and is unknown when
--    progress stalls, goes backwards or would take more than a century (no overflow, no make_interval error
--    that took down every experiment's row).

-- ------------------------------------------------------------------ 1. one 60-second-minimum rule

-- What dashgen.billed_upto(t) counts too many when runs restart within 60 s of a start: it counts each earlier
-- run whole, so the part after t of the 60 s minimum of every run started in (t - 60 s, t] but the last one.
-- (A run j before the last one started by t ended by t, so it bills after t only its minimum's end, s_j + 60 s.)
CREATE FUNCTION dashgen.restart_overlap_s(id text, t timestamptz) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(x) - max(x), 0)
    FROM (SELECT 60 - date_part('epoch', t - iv.started_at) AS x
          FROM dashgen.instance_intervals iv
          WHERE iv.instance_id = id COLLATE "C" AND iv.started_at > t - interval '60 seconds'
            AND iv.started_at <= t) r
$$;

-- As in migration 004, less restart_overlap_s at each end of the range, called only when a run started within
-- 60 s before that end had another start within 60 s before it (the row's last 32 starts tell; before them, always).
CREATE OR REPLACE FUNCTION dashgen.instance_costs(win_from timestamptz, win_to timestamptz, by_runs bool DEFAULT NULL)
RETURNS TABLE (instance_id text, region text, instance_type text, name text, tags jsonb, tags_label text,
               state text, usd_per_hour numeric, price_source text, price_date date,
               seconds_in_range double precision, seconds_to_date double precision, running bool)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH how AS MATERIALIZED (  -- (also keeps this query a subquery: each column below is computed once)
        SELECT coalesce(by_runs, false) AS by_runs
    )
    SELECT i.instance_id, i.region, i.instance_type, i.name, i.tags, i.tags_label, i.state,
           p.usd_per_hour, p.source, p.price_date,
           CASE WHEN win_to <= win_from THEN 0
                WHEN (SELECT how.by_runs FROM how)
                THEN coalesce(closed.s, 0) + coalesce(greatest(0, date_part('epoch',  -- the run still going
                         least(win_to, dashgen.billed_end(i.running_since, NULL)) - greatest(win_from, i.running_since)))
                         * (i.running_since < win_to)::int, 0)
                ELSE  -- by rows: billed seconds up to win_to less up to win_from
                    dashgen.billed_upto(win_to, i.first_started_at, i.billed_closed_s, i.closed_until, i.running_since,
                        i.recent_starts, i.recent_ends, i.recent_before,
                        CASE WHEN win_to < greatest(i.closed_until, i.running_since) AND win_to < i.recent_starts[1]
                        THEN (SELECT iv.billed_before
                                     - greatest(0, coalesce(date_part('epoch', iv.prev_billed_end - win_to), 0))
                              FROM dashgen.instance_intervals iv
                              WHERE iv.instance_id = i.instance_id COLLATE "C" AND iv.started_at > win_to
                              ORDER BY iv.started_at LIMIT 1) END)
                  - CASE WHEN win_to > i.first_started_at AND win_to < greatest(i.closed_until, i.running_since)
                              AND (win_to < i.recent_starts[1]
                                   OR (i.recent_starts[width_bucket(win_to, i.recent_starts)]
                                           > win_to - interval '60 seconds'
                                       AND coalesce(i.recent_starts[width_bucket(win_to, i.recent_starts) - 1]
                                                    > win_to - interval '60 seconds', true)))
                         THEN dashgen.restart_overlap_s(i.instance_id, win_to) ELSE 0 END
                  - dashgen.billed_upto(win_from, i.first_started_at, i.billed_closed_s, i.closed_until,
                        i.running_since, i.recent_starts, i.recent_ends, i.recent_before,
                        CASE WHEN win_from < greatest(i.closed_until, i.running_since)
                                  AND win_from < i.recent_starts[1] AND win_from > i.first_started_at
                        THEN (SELECT iv.billed_before
                                     - greatest(0, coalesce(date_part('epoch', iv.prev_billed_end - win_from), 0))
                              FROM dashgen.instance_intervals iv
                              WHERE iv.instance_id = i.instance_id COLLATE "C" AND iv.started_at > win_from
                              ORDER BY iv.started_at LIMIT 1) END)
                  + CASE WHEN win_from > i.first_started_at AND win_from < greatest(i.closed_until, i.running_since)
                              AND (win_from < i.recent_starts[1]
                                   OR (i.recent_starts[width_bucket(win_from, i.recent_starts)]
                                           > win_from - interval '60 seconds'
                                       AND coalesce(i.recent_starts[width_bucket(win_from, i.recent_starts) - 1]
                                                    > win_from - interval '60 seconds', true)))
                         THEN dashgen.restart_overlap_s(i.instance_id, win_from) ELSE 0 END END,
           dashgen.seconds_to_date(i.billed_closed_s, i.running_since), i.running_since IS NOT NULL
    FROM dashgen.instances i
    LEFT JOIN dashgen.instance_prices p
           ON (p.region, p.instance_type, p.operating_system, p.tenancy)
            = (i.region, i.instance_type, i.operating_system, i.tenancy)
    LEFT JOIN (  -- by runs: closed runs overlapping the range (a billed end is at most 60 s after the end)
        SELECT iv.instance_id, sum(date_part('epoch', least(win_to, dashgen.billed_end(iv.started_at, iv.ended_at))
                                                      - greatest(win_from, iv.started_at))) AS s
        FROM dashgen.instance_intervals iv
        WHERE (SELECT how.by_runs FROM how) AND iv.ended_at > win_from - interval '60 seconds'
          AND iv.started_at < win_to AND dashgen.billed_end(iv.started_at, iv.ended_at) > win_from
        GROUP BY iv.instance_id) closed ON closed.instance_id = i.instance_id
$$;

-- ------------------------------------------------------------------ 2. cumulative cost by Name

-- As in migration 003; the rollups apply only without a Name filter and when the tag key is not Name.
CREATE OR REPLACE FUNCTION dashgen.cumulative_cost(t0 timestamptz, t1 timestamptz, step_s double precision, tag_key text,
                                        tag_values text[], names text[])
RETURNS TABLE ("time" timestamptz, metric text, value double precision)
LANGUAGE sql STABLE AS $$
WITH sel AS (  -- the selected instances: their series and USD per second (NULL: unknown, left out below)
    SELECT b.instance_id, coalesce(b.tags ->> tag_key, '(no tag)') AS series, b.usd_per_hour::float8 / 3600 AS rate
    FROM dashgen.instance_cost_basis b  -- (filtering on the price here would make the planner expect 1 row)
    WHERE dashgen.selected(b.tags, b.name, tag_key, tag_values, names)
), runs_events AS (  -- (instance, time, +1 / -1) taken from the runs
    -- runs going at t0: a start at t0
    SELECT iv.instance_id, t0 AS at, 1 AS sign
    FROM dashgen.instance_intervals iv
    WHERE tstzrange(iv.started_at, iv.ended_at, '[]') && tstzrange(t0 - interval '60 seconds', t0, '[]')
      AND iv.started_at <= t0 AND dashgen.billed_end(iv.started_at, iv.ended_at) > t0
    UNION ALL  -- starts in the partial hours at the edges
    SELECT iv.instance_id, iv.started_at, 1
    FROM dashgen.instance_intervals iv
    WHERE ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name') AND iv.started_at > t0
      AND iv.started_at <= t1
      AND (iv.started_at < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
           OR iv.started_at >= dashgen.utc_floor(t1, '1 hour'))
    UNION ALL  -- billed ends of closed runs there (a billed end is at most 60 s after the end)
    SELECT iv.instance_id, dashgen.billed_end(iv.started_at, iv.ended_at), -1
    FROM dashgen.instance_intervals iv
    WHERE ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name') AND iv.ended_at IS NOT NULL
      AND iv.ended_at > t0 - interval '60 seconds' AND iv.ended_at <= t1
      AND (iv.ended_at < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
           OR iv.ended_at >= dashgen.utc_floor(t1, '1 hour') - interval '60 seconds')
      AND dashgen.billed_end(iv.started_at, iv.ended_at) > t0
      AND (dashgen.billed_end(iv.started_at, iv.ended_at) < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
           OR dashgen.billed_end(iv.started_at, iv.ended_at) >= dashgen.utc_floor(t1, '1 hour'))
    UNION ALL  -- with a Name filter or the tag key Name: every start and closed end of the selected instances
    SELECT iv.instance_id, e.at, e.sign     -- in the range (a billed end after t0: the run ended after t0 - 60 s)
    FROM sel JOIN dashgen.instance_intervals iv ON iv.instance_id = sel.instance_id
    CROSS JOIN LATERAL (VALUES (iv.started_at, 1), (dashgen.billed_end(iv.started_at, iv.ended_at), -1)) e(at, sign)
    WHERE NOT ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name')
      AND iv.started_at <= t1 AND (iv.ended_at IS NULL OR iv.ended_at > t0 - interval '60 seconds')
      AND (e.sign = 1 OR iv.ended_at IS NOT NULL) AND e.at > t0
    UNION ALL  -- the end of every run still going (never in the rollups)
    SELECT iv.instance_id, dashgen.billed_end(iv.started_at, NULL), -1
    FROM dashgen.instance_intervals iv
    WHERE iv.ended_at IS NULL AND dashgen.billed_end(iv.started_at, NULL) > t0
), events AS (  -- (series, point, rate x sign, rate x sign x seconds from t0 to the event)
    SELECT sel.series,
           CASE WHEN e.at = t0 THEN t0
                -- inside the whole days or hours (ends of runs still going): at the end of that day or hour
                WHEN ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name')
                     AND e.at >= dashgen.utc_floor(dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
                                                   - interval '1 microsecond', '24 hours') + interval '24 hours'
                     AND e.at < dashgen.utc_floor(t1, '24 hours')
                THEN dashgen.utc_floor(e.at, '24 hours') + interval '24 hours'
                WHEN ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name')
                     AND e.at >= dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
                     AND e.at < dashgen.utc_floor(t1, '1 hour')
                THEN dashgen.utc_floor(e.at, '1 hour') + interval '1 hour'
                -- at the edges: the next point of the grid, and not after the first whole hour
                ELSE least(t1, t0 + make_interval(secs => ceil(date_part('epoch', e.at - t0) / step_s) * step_s),
                           CASE WHEN e.at < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
                                THEN dashgen.utc_floor(t0, '1 hour') + interval '1 hour' END) END AS point,
           sel.rate * e.sign AS r, sel.rate * e.sign * date_part('epoch', e.at - t0) AS q
    FROM runs_events e JOIN sel ON sel.instance_id = e.instance_id
    WHERE e.at <= t1 AND sel.rate IS NOT NULL  -- each branch gives times >= t0 (= t0: the runs going then)
    UNION ALL  -- whole days
    SELECT coalesce(d.tags ->> tag_key, '(no tag)'), d.bucket + interval '24 hours',
           p.usd_per_hour::float8 / 3600 * d.running_delta,
           p.usd_per_hour::float8 / 3600 * (d.at_delta_us - d.running_delta * dashgen.epoch_us(t0)) / 1e6
    FROM dashgen.cost_events_daily d
    JOIN dashgen.instance_prices p
      ON (p.region, p.instance_type, p.operating_system, p.tenancy)
       = (d.region, d.instance_type, d.operating_system, d.tenancy)
    WHERE ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name') AND p.usd_per_hour IS NOT NULL
      AND dashgen.chosen(d.tags ->> tag_key, tag_values)
      AND d.bucket >= dashgen.utc_floor(dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
                                        - interval '1 microsecond', '24 hours') + interval '24 hours'
      AND d.bucket < dashgen.utc_floor(t1, '24 hours')
    UNION ALL  -- whole hours outside those days
    SELECT coalesce(h.tags ->> tag_key, '(no tag)'), h.bucket + interval '1 hour',
           p.usd_per_hour::float8 / 3600 * h.running_delta,
           p.usd_per_hour::float8 / 3600 * (h.at_delta_us - h.running_delta * dashgen.epoch_us(t0)) / 1e6
    FROM dashgen.cost_events_hourly h
    JOIN dashgen.instance_prices p
      ON (p.region, p.instance_type, p.operating_system, p.tenancy)
       = (h.region, h.instance_type, h.operating_system, h.tenancy)
    WHERE ('__all__' = ANY (names) AND tag_key IS DISTINCT FROM 'Name') AND p.usd_per_hour IS NOT NULL
      AND dashgen.chosen(h.tags ->> tag_key, tag_values)
      AND h.bucket >= dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
      AND h.bucket < dashgen.utc_floor(t1, '1 hour')
      AND NOT (h.bucket >= dashgen.utc_floor(dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
                                             - interval '1 microsecond', '24 hours') + interval '24 hours'
               AND h.bucket < dashgen.utc_floor(dashgen.utc_floor(t1, '1 hour'), '24 hours'))
), per_series AS (
    SELECT series, point, sum(r) AS r, sum(q) AS q FROM events GROUP BY 1, 2
), points AS (  -- every series and their total, at t0, at t1 and where events are counted
    SELECT series, point, sum(r) AS r, sum(q) AS q
    FROM (SELECT series, point, r, q FROM per_series
          UNION ALL
          SELECT '(all selected)', point, r, q FROM per_series
          UNION ALL
          SELECT s.series, b.point, 0, 0
          FROM (SELECT DISTINCT series FROM per_series
                UNION SELECT '(all selected)' WHERE EXISTS (SELECT 1 FROM per_series)) s,
               (VALUES (t0), (t1)) b(point)) x
    GROUP BY 1, 2
)
SELECT point, series, date_part('epoch', point - t0) * sum(r) OVER win - sum(q) OVER win
FROM points
WINDOW win AS (PARTITION BY series ORDER BY point)
$$;

-- ------------------------------------------------------------------ 3. budget and deadline (docs/cost.md)

-- Per experiment: spend to date, burn rate now, projections against budget and deadline, progress and ETA.
-- NULL = unknown (an instance without a price ran or runs; no progress; stalled progress), never 0 USD or a date.
--   pace     least-squares slope of the points of the last hour before the latest one (at least the two latest);
--   ETA      finished (latest point >= 100 %): the first point of that final stretch at >= 100 %; else, with a
--            pace > 0: latest point + (100 - latest percent) / pace, unknown beyond a century; else unknown;
--   to finish  finished: spent; ETA now or later: spent + burn x (ETA - now); else unknown;
--   fits budget  projected cost to finish <= budget; when the finish cannot be projected (no ETA, or an ETA
--                already past without 100 %): projected at the deadline <= budget;
--   makes deadline  ETA <= deadline; unknown ETA: false once progress below 100 % was seen after the deadline.
CREATE OR REPLACE VIEW dashgen.experiment_status AS
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
           -- no members: bool_and over the one NULL row is NULL, so IS NOT FALSE: nothing spent, nothing burning
           CASE WHEN bool_and(m.usd_per_hour IS NOT NULL OR m.seconds = 0) IS NOT FALSE
                THEN round(coalesce(sum(m.seconds * m.usd_per_hour::float8 / 3600), 0)::numeric, 6) END AS spent_usd,
           CASE WHEN bool_and(m.usd_per_hour IS NOT NULL OR NOT m.running) IS NOT FALSE
                THEN coalesce(sum(m.usd_per_hour) FILTER (WHERE m.running), 0) END AS burn_usd_per_hour
    FROM dashgen.experiments e
    LEFT JOIN members m ON m.name = e.name
    GROUP BY e.name, e.budget_usd, e.deadline
), ranked AS (
    SELECT p.experiment AS name, p.at, p.percent,
           row_number() OVER (PARTITION BY p.experiment ORDER BY p.at DESC) AS nth
    FROM dashgen.experiment_progress p
), latest AS (
    SELECT name, max(at) FILTER (WHERE nth = 1) AS last_at, max(percent) FILTER (WHERE nth = 1) AS percent,
           max(at) FILTER (WHERE nth = 2) AS second_at,
           max(at) FILTER (WHERE percent < 100) AS below_at  -- the last point below 100 %
    FROM ranked GROUP BY name
), progress AS (
    SELECT l.name, l.last_at, l.percent,
           min(r.at) FILTER (WHERE l.percent >= 100 AND r.at > coalesce(l.below_at, '-infinity')) AS done_at,
           -- percent per second, x in seconds from the latest point (small numbers: no precision lost)
           regr_slope(r.percent::float8, date_part('epoch', r.at - l.last_at))
               FILTER (WHERE r.at >= CASE WHEN l.second_at IS NULL THEN l.last_at
                                          ELSE least(l.last_at - interval '1 hour', l.second_at) END) AS pace
    FROM latest l JOIN ranked r ON r.name = l.name
    GROUP BY l.name, l.last_at, l.percent
), eta AS (
    SELECT s.*, p.last_at, p.percent, p.pace, p.done_at,
           CASE WHEN p.done_at IS NOT NULL THEN p.done_at
                WHEN p.pace > 0  -- (nested CASE: the division and make_interval only run when they can)
                THEN CASE WHEN 100 - p.percent::float8 <= p.pace * (100 * 365.25 * 86400)
                          THEN p.last_at + make_interval(secs => (100 - p.percent::float8) / p.pace) END
           END AS eta
    FROM spend s LEFT JOIN progress p ON p.name = s.name
), projected AS (
    SELECT eta.*,
           spent_usd + burn_usd_per_hour * greatest(0, extract(epoch FROM deadline - now())) / 3600
               AS projected_at_deadline_usd,
           CASE WHEN done_at IS NOT NULL THEN spent_usd
                WHEN eta >= now() THEN spent_usd + burn_usd_per_hour * extract(epoch FROM eta - now()) / 3600
           END AS projected_to_finish_usd
    FROM eta
)
SELECT name, instances, running, budget_usd, spent_usd, budget_usd - spent_usd AS budget_left_usd,
       burn_usd_per_hour, deadline, projected_at_deadline_usd, percent AS progress_percent, eta,
       projected_to_finish_usd,
       CASE WHEN eta IS NOT NULL AND (done_at IS NOT NULL OR eta >= now()) THEN projected_to_finish_usd <= budget_usd
            ELSE projected_at_deadline_usd <= budget_usd END AS fits_budget,
       CASE WHEN eta IS NOT NULL THEN eta <= deadline
            WHEN last_at > deadline THEN false END AS makes_deadline,
       pace * 3600 AS pace_percent_per_hour
FROM projected;
