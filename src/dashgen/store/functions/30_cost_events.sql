-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Times are binned in UTC, whatever the session's time zone; rollups keep times as epoch microseconds.
CREATE OR REPLACE FUNCTION dashgen.utc_floor(t timestamptz, stride interval)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(stride, t, timestamptz '2000-01-01 00:00:00+00')
$$;

CREATE OR REPLACE FUNCTION dashgen.epoch_us(t timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint
$$;

-- The statement that adds (weight +1) or removes (weight -1) the events of the runs a query returns, as
-- (started_at, ended_at, weight, region, instance_type, operating_system, tenancy, tags without Name) and, since
-- migration 070, account_id ('' when unknown; a query without that column, as migration 007's: '').
-- Trigger functions EXECUTE it on their transition tables (only visible to their own statements).
CREATE OR REPLACE FUNCTION dashgen.cost_events_sql(runs_query text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
    WITH runs AS (%s),
    ev AS (  -- (time, +1 start / -1 billed end, weight, cost group) of every event of the runs
        SELECT e.at, e.sign, r.weight, dashgen.epoch_us(e.at) AS at_us,
               r.region, r.instance_type, r.operating_system, r.tenancy, r.tags,
               coalesce(to_jsonb(r) ->> 'account_id', '') AS account_id
        FROM runs r
        CROSS JOIN LATERAL (VALUES (r.started_at, 1),
                                   (greatest(r.ended_at, r.started_at + interval '60 seconds'), -1)) e(at, sign)
        WHERE e.sign = 1 OR r.ended_at IS NOT NULL
    ), hourly AS (
        INSERT INTO dashgen.cost_events_hourly AS h
        (bucket, region, instance_type, operating_system, tenancy, tags, events, running_delta, at_delta_us,
         account_id)
        SELECT dashgen.utc_floor(at, '1 hour'), region, instance_type, operating_system, tenancy, tags,
               sum(weight), sum(weight * sign), sum(weight * sign * at_us), account_id
        FROM ev GROUP BY 1, 2, 3, 4, 5, 6, 10
        HAVING sum(weight) <> 0 OR sum(weight * sign) <> 0 OR sum(weight * sign * at_us) <> 0
        ON CONFLICT (bucket, region, instance_type, operating_system, tenancy, tags, account_id) DO UPDATE
            SET events = h.events + excluded.events, running_delta = h.running_delta + excluded.running_delta,
                at_delta_us = h.at_delta_us + excluded.at_delta_us
    )
    INSERT INTO dashgen.cost_events_daily AS d
    (bucket, region, instance_type, operating_system, tenancy, tags, events, running_delta, at_delta_us, account_id)
    SELECT dashgen.utc_floor(at, '24 hours'), region, instance_type, operating_system, tenancy, tags,
           sum(weight), sum(weight * sign), sum(weight * sign * at_us), account_id
    FROM ev GROUP BY 1, 2, 3, 4, 5, 6, 10
    HAVING sum(weight) <> 0 OR sum(weight * sign) <> 0 OR sum(weight * sign * at_us) <> 0
    ON CONFLICT (bucket, region, instance_type, operating_system, tenancy, tags, account_id) DO UPDATE
        SET events = d.events + excluded.events, running_delta = d.running_delta + excluded.running_delta,
            at_delta_us = d.at_delta_us + excluded.at_delta_us
    $q$, runs_query)
$f$;

-- Rows whose events all cancelled out.
CREATE OR REPLACE FUNCTION dashgen.cost_events_prune() RETURNS void LANGUAGE sql AS $$
    DELETE FROM dashgen.cost_events_hourly WHERE events = 0;
    DELETE FROM dashgen.cost_events_daily WHERE events = 0;
$$;

-- Runs inserted, changed (start or end) or deleted: their events, in their instance's current cost group
-- (the runs of a deleted instance: see cost_events_on_instances).
CREATE OR REPLACE FUNCTION dashgen.cost_events_on_runs() RETURNS trigger LANGUAGE plpgsql AS $$
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
                i.tags - ''Name'' AS tags, coalesce(i.account_id, '''') AS account_id
         FROM (' || changed || ') c JOIN dashgen.instances i ON i.instance_id = c.instance_id');
    PERFORM dashgen.cost_events_prune();
    RETURN NULL;
END $$;

-- An instance whose cost group changed (tags, type, region, OS, tenancy, account) moves its runs' events; an instance
-- deleted takes them away first (its runs then go by cascade, when it no longer has a group).
CREATE OR REPLACE FUNCTION dashgen.cost_events_on_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE dashgen.cost_events_sql(
            'SELECT iv.started_at, iv.ended_at, -1 AS weight, $1 AS region, $2 AS instance_type,
                    $3 AS operating_system, $4 AS tenancy, $5 AS tags, $7 AS account_id
             FROM dashgen.instance_intervals iv WHERE iv.instance_id = $6')
        USING OLD.region, OLD.instance_type, OLD.operating_system, OLD.tenancy, OLD.tags - 'Name', OLD.instance_id,
              coalesce(OLD.account_id, '');
        PERFORM dashgen.cost_events_prune();
        RETURN OLD;
    END IF;
    EXECUTE dashgen.cost_events_sql(
        'WITH moved AS (
             SELECT o.instance_id, o.region AS o_region, o.instance_type AS o_type, o.operating_system AS o_os,
                    o.tenancy AS o_tenancy, o.tags - ''Name'' AS o_tags, coalesce(o.account_id, '''') AS o_account,
                    n.region, n.instance_type, n.operating_system, n.tenancy, n.tags - ''Name'' AS tags,
                    coalesce(n.account_id, '''') AS account_id
             FROM old_instances o JOIN new_instances n USING (instance_id)
             WHERE (o.region, o.instance_type, o.operating_system, o.tenancy, o.tags - ''Name'',
                    coalesce(o.account_id, ''''))
                   IS DISTINCT FROM (n.region, n.instance_type, n.operating_system, n.tenancy, n.tags - ''Name'',
                                     coalesce(n.account_id, '''')))
         SELECT iv.started_at, iv.ended_at, g.weight, g.region, g.instance_type, g.operating_system, g.tenancy, g.tags,
                g.account_id
         FROM moved m JOIN dashgen.instance_intervals iv ON iv.instance_id = m.instance_id
         CROSS JOIN LATERAL (VALUES (-1, m.o_region, m.o_type, m.o_os, m.o_tenancy, m.o_tags, m.o_account),
                                    (1, m.region, m.instance_type, m.operating_system, m.tenancy, m.tags, m.account_id))
             g(weight, region, instance_type, operating_system, tenancy, tags, account_id)');
    PERFORM dashgen.cost_events_prune();
    RETURN NULL;
END $$;

-- TRUNCATE fires no DELETE trigger: empty the rollups with the runs.
CREATE OR REPLACE FUNCTION dashgen.cost_rollups_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE dashgen.cost_events_hourly, dashgen.cost_events_daily;
    RETURN NULL;
END $$;
