-- Rollups that keep the cumulative-cost panel under 100 ms on 10,000 instances x 30 days of runs
-- (bench/sync.py), exact to the cent: whole days and whole hours of the time range come from the rollups, the
-- partial hours at its edges from the runs themselves. The rollups are kept by statement triggers on
-- dashgen.instance_intervals and dashgen.instances, so they change inside the sync's one transaction, with
-- the runs: Grafana never reads a rollup that disagrees with them.
--
--   dashgen.cost_events_hourly / dashgen.cost_events_daily: per UTC hour (day) and cost group (price key and
--   tags without Name), how many runs started or stopped in it, and when (the sum of their times).

-- Times are binned in UTC, whatever the session's time zone; rollups keep times as epoch microseconds.
CREATE FUNCTION dashgen.utc_floor(t timestamptz, stride interval)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(stride, t, timestamptz '2000-01-01 00:00:00+00')
$$;
CREATE FUNCTION dashgen.epoch_us(t timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint
$$;

-- Runs started in a time window, closed runs ended in one, runs going at a time (GiST: overlap with a range).
CREATE INDEX instance_intervals_started ON dashgen.instance_intervals (started_at) INCLUDE (instance_id, ended_at);
CREATE INDEX instance_intervals_ended ON dashgen.instance_intervals (ended_at)
    INCLUDE (instance_id, started_at) WHERE ended_at IS NOT NULL;
CREATE INDEX instance_intervals_span ON dashgen.instance_intervals
    USING gist (tstzrange(started_at, ended_at, '[]'));  -- ended_at NULL: unbounded (still running)

-- ------------------------------------------------------------------ hourly start/stop events per cost group

-- A run is +1 at its start and, once closed, -1 at its billed end (at least 60 s after the start). The end of
-- a run still going depends on now() and is never stored here: queries add it.
CREATE TABLE dashgen.cost_events_hourly (
    bucket           timestamptz NOT NULL,  -- the UTC hour the events fall in
    region           text NOT NULL,
    instance_type    text NOT NULL,
    operating_system text NOT NULL,
    tenancy          text NOT NULL,
    tags             jsonb NOT NULL,        -- the instances' tags without Name
    events           int NOT NULL,          -- number of starts and ends (a row at 0 is deleted)
    running_delta    int NOT NULL,          -- starts - ends
    at_delta_us      bigint NOT NULL,       -- sum of +start and -billed end, in epoch microseconds (exact)
    PRIMARY KEY (bucket, region, instance_type, operating_system, tenancy, tags)
);
CREATE INDEX cost_events_hourly_empty ON dashgen.cost_events_hourly (bucket) WHERE events = 0;
CREATE TABLE dashgen.cost_events_daily (LIKE dashgen.cost_events_hourly INCLUDING ALL);  -- per UTC day

-- The statement that adds (weight +1) or removes (weight -1) the events of the runs a query returns, as
-- (started_at, ended_at, weight, region, instance_type, operating_system, tenancy, tags without Name).
-- Trigger functions EXECUTE it on their transition tables (only visible to their own statements).
CREATE FUNCTION dashgen.cost_events_sql(runs_query text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
    WITH runs AS (%s),
    ev AS (  -- (time, +1 start / -1 billed end, weight, cost group) of every event of the runs
        SELECT e.at, e.sign, r.weight, dashgen.epoch_us(e.at) AS at_us,
               r.region, r.instance_type, r.operating_system, r.tenancy, r.tags
        FROM runs r
        CROSS JOIN LATERAL (VALUES (r.started_at, 1),
                                   (greatest(r.ended_at, r.started_at + interval '60 seconds'), -1)) e(at, sign)
        WHERE e.sign = 1 OR r.ended_at IS NOT NULL
    ), hourly AS (
        INSERT INTO dashgen.cost_events_hourly AS h
        SELECT dashgen.utc_floor(at, '1 hour'), region, instance_type, operating_system, tenancy, tags,
               sum(weight), sum(weight * sign), sum(weight * sign * at_us)
        FROM ev GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(weight) <> 0 OR sum(weight * sign) <> 0 OR sum(weight * sign * at_us) <> 0
        ON CONFLICT (bucket, region, instance_type, operating_system, tenancy, tags) DO UPDATE
            SET events = h.events + excluded.events, running_delta = h.running_delta + excluded.running_delta,
                at_delta_us = h.at_delta_us + excluded.at_delta_us
    )
    INSERT INTO dashgen.cost_events_daily AS d
    SELECT dashgen.utc_floor(at, '24 hours'), region, instance_type, operating_system, tenancy, tags,
           sum(weight), sum(weight * sign), sum(weight * sign * at_us)
    FROM ev GROUP BY 1, 2, 3, 4, 5, 6
    HAVING sum(weight) <> 0 OR sum(weight * sign) <> 0 OR sum(weight * sign * at_us) <> 0
    ON CONFLICT (bucket, region, instance_type, operating_system, tenancy, tags) DO UPDATE
        SET events = d.events + excluded.events, running_delta = d.running_delta + excluded.running_delta,
            at_delta_us = d.at_delta_us + excluded.at_delta_us
    $q$, runs_query)
$f$;

-- Rows whose events all cancelled out.
CREATE FUNCTION dashgen.cost_events_prune() RETURNS void LANGUAGE sql AS $$
    DELETE FROM dashgen.cost_events_hourly WHERE events = 0;
    DELETE FROM dashgen.cost_events_daily WHERE events = 0;
$$;

-- Runs inserted, changed (start or end) or deleted: their events, in their instance's current cost group
-- (the runs of a deleted instance: see cost_events_on_instances).
CREATE FUNCTION dashgen.cost_events_on_runs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;  -- (instance_id, started_at, ended_at, weight) of the runs whose events change
BEGIN
    IF TG_OP = 'INSERT' THEN
        changed := 'SELECT instance_id, started_at, ended_at, 1 AS weight FROM new_runs';
    ELSIF TG_OP = 'DELETE' THEN
        changed := 'SELECT instance_id, started_at, ended_at, -1 AS weight FROM old_runs';
    ELSE  -- only runs whose start or end changed (refresh_billing rewrites billed_before)
        changed := '(SELECT instance_id, started_at, ended_at, 1 AS weight FROM new_runs
                     EXCEPT ALL SELECT instance_id, started_at, ended_at, 1 FROM old_runs)
                    UNION ALL
                    (SELECT instance_id, started_at, ended_at, -1 FROM old_runs
                     EXCEPT ALL SELECT instance_id, started_at, ended_at, -1 FROM new_runs)';
    END IF;
    EXECUTE dashgen.cost_events_sql(
        'SELECT c.started_at, c.ended_at, c.weight, i.region, i.instance_type, i.operating_system, i.tenancy,
                i.tags - ''Name'' AS tags
         FROM (' || changed || ') c JOIN dashgen.instances i ON i.instance_id = c.instance_id');
    PERFORM dashgen.cost_events_prune();
    RETURN NULL;
END $$;

CREATE TRIGGER cost_events_insert AFTER INSERT ON dashgen.instance_intervals
    REFERENCING NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION dashgen.cost_events_on_runs();
CREATE TRIGGER cost_events_update AFTER UPDATE ON dashgen.instance_intervals
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.cost_events_on_runs();
CREATE TRIGGER cost_events_delete AFTER DELETE ON dashgen.instance_intervals
    REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT EXECUTE FUNCTION dashgen.cost_events_on_runs();

-- An instance whose cost group changed (tags, type, region, OS, tenancy) moves its runs' events; an instance
-- deleted takes them away first (its runs then go by cascade, when it no longer has a group).
CREATE FUNCTION dashgen.cost_events_on_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE dashgen.cost_events_sql(
            'SELECT iv.started_at, iv.ended_at, -1 AS weight, $1 AS region, $2 AS instance_type,
                    $3 AS operating_system, $4 AS tenancy, $5 AS tags
             FROM dashgen.instance_intervals iv WHERE iv.instance_id = $6')
        USING OLD.region, OLD.instance_type, OLD.operating_system, OLD.tenancy, OLD.tags - 'Name', OLD.instance_id;
        PERFORM dashgen.cost_events_prune();
        RETURN OLD;
    END IF;
    EXECUTE dashgen.cost_events_sql(
        'WITH moved AS (
             SELECT o.instance_id, o.region AS o_region, o.instance_type AS o_type, o.operating_system AS o_os,
                    o.tenancy AS o_tenancy, o.tags - ''Name'' AS o_tags, n.region, n.instance_type,
                    n.operating_system, n.tenancy, n.tags - ''Name'' AS tags
             FROM old_instances o JOIN new_instances n USING (instance_id)
             WHERE (o.region, o.instance_type, o.operating_system, o.tenancy, o.tags - ''Name'')
                   IS DISTINCT FROM (n.region, n.instance_type, n.operating_system, n.tenancy, n.tags - ''Name''))
         SELECT iv.started_at, iv.ended_at, g.weight, g.region, g.instance_type, g.operating_system, g.tenancy, g.tags
         FROM moved m JOIN dashgen.instance_intervals iv ON iv.instance_id = m.instance_id
         CROSS JOIN LATERAL (VALUES (-1, m.o_region, m.o_type, m.o_os, m.o_tenancy, m.o_tags),
                                    (1, m.region, m.instance_type, m.operating_system, m.tenancy, m.tags))
             g(weight, region, instance_type, operating_system, tenancy, tags)');
    PERFORM dashgen.cost_events_prune();
    RETURN NULL;
END $$;

CREATE TRIGGER cost_events_regroup AFTER UPDATE ON dashgen.instances
    REFERENCING OLD TABLE AS old_instances NEW TABLE AS new_instances
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.cost_events_on_instances();
CREATE TRIGGER cost_events_forget BEFORE DELETE ON dashgen.instances
    FOR EACH ROW EXECUTE FUNCTION dashgen.cost_events_on_instances();

-- TRUNCATE fires no DELETE trigger: empty the rollups with the runs.
CREATE FUNCTION dashgen.cost_rollups_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE dashgen.cost_events_hourly, dashgen.cost_events_daily;
    RETURN NULL;
END $$;
CREATE TRIGGER cost_rollups_truncate AFTER TRUNCATE ON dashgen.instance_intervals
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.cost_rollups_truncate();


-- ------------------------------------------------------------------ the cumulative-cost panel

-- Cumulative cost in [t0, t1] per series (the value of tag `tag_key`, "(no tag)" without it) and for
-- "(all selected)", over the selected instances that have a price. Each run adds rate x (p - start) to the
-- cost at a point p after its start and loses rate x (p - billed end) after its end; the runs going at t0
-- count as started at t0. So cost(p) = (p - t0) x sum(rate x sign) - sum(rate x sign x (time - t0)) over
-- the events up to p, and an event may be counted at any point at or after it. Events are counted at:
--   whole UTC days inside the range (dashgen.cost_events_daily)       -> the day's end;
--   the other whole UTC hours (dashgen.cost_events_hourly)             -> the hour's end;
--   the partial hours at the edges, and the end of every run still going (now, or its 60 s minimum): from
--   the runs, at the next point of a `step_s` grid from t0 (before the first whole hour: at most its start).
-- With a Name filter the rollups (per group, not per instance) do not apply: every event comes from the runs.
-- Points exist at t0, t1 and where events are counted; the cost is linear in between. Every point is exact.
CREATE FUNCTION dashgen.cumulative_cost(t0 timestamptz, t1 timestamptz, step_s double precision, tag_key text,
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
    WHERE '__all__' = ANY (names) AND iv.started_at > t0 AND iv.started_at <= t1
      AND (iv.started_at < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
           OR iv.started_at >= dashgen.utc_floor(t1, '1 hour'))
    UNION ALL  -- billed ends of closed runs there (a billed end is at most 60 s after the end)
    SELECT iv.instance_id, dashgen.billed_end(iv.started_at, iv.ended_at), -1
    FROM dashgen.instance_intervals iv
    WHERE '__all__' = ANY (names) AND iv.ended_at IS NOT NULL
      AND iv.ended_at > t0 - interval '60 seconds' AND iv.ended_at <= t1
      AND (iv.ended_at < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
           OR iv.ended_at >= dashgen.utc_floor(t1, '1 hour') - interval '60 seconds')
      AND dashgen.billed_end(iv.started_at, iv.ended_at) > t0
      AND (dashgen.billed_end(iv.started_at, iv.ended_at) < dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
           OR dashgen.billed_end(iv.started_at, iv.ended_at) >= dashgen.utc_floor(t1, '1 hour'))
    UNION ALL  -- with a Name filter: every start and closed end of the selected instances
    SELECT iv.instance_id, e.at, e.sign
    FROM sel JOIN dashgen.instance_intervals iv ON iv.instance_id = sel.instance_id
    CROSS JOIN LATERAL (VALUES (iv.started_at, 1), (dashgen.billed_end(iv.started_at, iv.ended_at), -1)) e(at, sign)
    WHERE NOT ('__all__' = ANY (names)) AND (e.sign = 1 OR iv.ended_at IS NOT NULL) AND e.at > t0
    UNION ALL  -- the end of every run still going (never in the rollups)
    SELECT iv.instance_id, dashgen.billed_end(iv.started_at, NULL), -1
    FROM dashgen.instance_intervals iv
    WHERE iv.ended_at IS NULL AND dashgen.billed_end(iv.started_at, NULL) > t0
), events AS (  -- (series, point, rate x sign, rate x sign x seconds from t0 to the event)
    SELECT sel.series,
           CASE WHEN e.at = t0 THEN t0
                -- inside the whole days or hours (ends of runs still going): at the end of that day or hour
                WHEN '__all__' = ANY (names)
                     AND e.at >= dashgen.utc_floor(dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
                                                   - interval '1 microsecond', '24 hours') + interval '24 hours'
                     AND e.at < dashgen.utc_floor(t1, '24 hours')
                THEN dashgen.utc_floor(e.at, '24 hours') + interval '24 hours'
                WHEN '__all__' = ANY (names) AND e.at >= dashgen.utc_floor(t0, '1 hour') + interval '1 hour'
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
    WHERE '__all__' = ANY (names) AND p.usd_per_hour IS NOT NULL AND dashgen.chosen(d.tags ->> tag_key, tag_values)
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
    WHERE '__all__' = ANY (names) AND p.usd_per_hour IS NOT NULL AND dashgen.chosen(h.tags ->> tag_key, tag_values)
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
