-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- The version without `accounts` (before migration 070, or a migration creating it applied after 070:
-- CONTRIBUTING.md rule 6) would make a call ambiguous: dropped.
DROP FUNCTION IF EXISTS dashgen.cumulative_cost(timestamptz, timestamptz, double precision, text, text[], text[]);

-- The cumulative-cost panel with the charges beside On-Demand: as in 020_budget_definitions.sql (its rule and comments), plus
-- extra_events (Spot price differences and surplus credits) and all_events; every point stays exact.
-- `accounts`: the Account variable's choices (dashgen.chosen); the rollups group by account (migration 070), so an
-- account filter keeps reading whole hours and days from them ('' there = an instance whose account is unknown).
CREATE OR REPLACE FUNCTION dashgen.cumulative_cost(t0 timestamptz, t1 timestamptz, step_s double precision, tag_key text,
                                        tag_values text[], names text[], accounts text[] DEFAULT ARRAY['__all__'])
RETURNS TABLE ("time" timestamptz, metric text, value double precision)
LANGUAGE sql STABLE AS $$
WITH sel AS (  -- the selected instances: their series and USD per second (NULL: unknown, left out below)
    SELECT b.instance_id, coalesce(b.tags ->> tag_key, '(no tag)') AS series, b.usd_per_hour::float8 / 3600 AS rate
    FROM dashgen.instance_cost_basis b  -- (filtering on the price here would make the planner expect 1 row)
    WHERE dashgen.selected(b.tags, b.name, tag_key, tag_values, names) AND dashgen.chosen(b.account_id, accounts)
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
), extra_events AS (  -- charges beside On-Demand (dashgen.charge_pieces, issue 12): the rate changes at
                     -- each piece's start (t0 if earlier) and back at its end; a Spot piece by its price less On-Demand
    SELECT p.instance_id, e.at, e.sign,
           CASE WHEN p.kind = 'spot' THEN p.usd_per_s - sel.rate ELSE p.usd_per_s END AS rate
    FROM dashgen.charge_pieces(t0, t1) p
    JOIN sel ON sel.instance_id = p.instance_id
    CROSS JOIN LATERAL (VALUES (greatest(p.piece_from, t0), 1), (p.piece_to, -1)) e(at, sign)
    WHERE p.usd_per_s IS NOT NULL AND sel.rate IS NOT NULL
), all_events AS (
    SELECT instance_id, at, sign, NULL::float8 AS rate FROM runs_events
    UNION ALL
    SELECT instance_id, at, sign, rate FROM extra_events
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
           coalesce(e.rate, sel.rate) * e.sign AS r,
           coalesce(e.rate, sel.rate) * e.sign * date_part('epoch', e.at - t0) AS q
    FROM all_events e JOIN sel ON sel.instance_id = e.instance_id
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
      AND dashgen.chosen(d.tags ->> tag_key, tag_values) AND dashgen.chosen(nullif(d.account_id, ''), accounts)
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
      AND dashgen.chosen(h.tags ->> tag_key, tag_values) AND dashgen.chosen(nullif(h.account_id, ''), accounts)
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
