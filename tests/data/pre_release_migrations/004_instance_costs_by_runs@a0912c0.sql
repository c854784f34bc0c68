-- The per-instance cost of a time range in one pass over the runs near it, instead of one index probe per
-- instance (bench/sync.py: the cost-per-instance and cost-by-tag panels on 10,000 instances x 30 days).
--
-- dashgen.instance_costs(win_from, win_to) now returns each instance's whole row (what the panels show, price
-- included), so that no panel joins the instances twice, and computes the billed seconds in the range either
--   by runs:   the sum over the runs that overlap the range of their billed overlap with it (exact; one index
--              scan of the runs that ended after win_from, plus the run still going from dashgen.instances);
--   by probes: billed seconds up to win_to minus up to win_from (migration 002: from the rollups, or one index
--              probe per instance), when more than two runs per instance ended after win_from;
-- and shows the tags as text computed once per sync (tags_label), not once per row and refresh.

-- "key=value, ..." in key order, Name left out (it has its own column).
CREATE FUNCTION dashgen.tags_label(tags jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(key || '=' || value, ', ' ORDER BY key) FROM jsonb_each_text(tags) WHERE key <> 'Name'
$$;
ALTER TABLE dashgen.instances
    ADD COLUMN tags_label text GENERATED ALWAYS AS (dashgen.tags_label(tags)) STORED,
    ADD COLUMN first_started_at timestamptz;  -- the start of its first run: nothing billed before it

-- refresh_billing (called by every sync for the instances whose runs changed) also keeps first_started_at.
ALTER FUNCTION dashgen.refresh_billing(text[]) RENAME TO refresh_run_rollups;
CREATE FUNCTION dashgen.refresh_billing(ids text[]) RETURNS void LANGUAGE sql AS $$
    SELECT dashgen.refresh_run_rollups(ids);
    UPDATE dashgen.instances i SET first_started_at = f.first
    FROM (SELECT i2.instance_id, min(iv.started_at) AS first
          FROM dashgen.instances i2 LEFT JOIN dashgen.instance_intervals iv ON iv.instance_id = i2.instance_id
          WHERE i2.instance_id = ANY (ids) GROUP BY i2.instance_id) f
    WHERE i.instance_id = f.instance_id AND i.first_started_at IS DISTINCT FROM f.first;
$$;
SELECT dashgen.refresh_billing(array_agg(instance_id)) FROM dashgen.instances;

DROP FUNCTION dashgen.instance_costs(timestamptz, timestamptz);

-- Per selected instance: its row, price (NULL = unknown), billed seconds inside [win_from, win_to] and to date.
-- `by_runs` forces one way of computing the range (tests check both agree); NULL chooses the cheaper one.
-- By probes, a run restarted within 60 s of an earlier start has that overlap counted once at a window edge
-- falling inside it (by runs: twice, as AWS bills both minimums); the two ways agree everywhere else.
CREATE FUNCTION dashgen.instance_costs(win_from timestamptz, win_to timestamptz, by_runs bool DEFAULT NULL)
RETURNS TABLE (instance_id text, region text, instance_type text, name text, tags jsonb, tags_label text,
               state text, usd_per_hour numeric, price_source text, price_date date,
               seconds_in_range double precision, seconds_to_date double precision, running bool)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH how AS MATERIALIZED (  -- by runs unless more than 2 runs per instance (1,000 at least) ended after win_from
        SELECT coalesce(by_runs, (SELECT count(*) < lim.n
                                  FROM (SELECT greatest(1000, 2 * reltuples)::bigint AS n
                                        FROM pg_class WHERE oid = 'dashgen.instances'::regclass) lim,
                                  LATERAL (SELECT FROM dashgen.instance_intervals iv
                                           WHERE iv.ended_at > win_from - interval '60 seconds' LIMIT lim.n) x
                                  GROUP BY lim.n)) AS by_runs
    )
    SELECT i.instance_id, i.region, i.instance_type, i.name, i.tags, i.tags_label, i.state,
           p.usd_per_hour, p.source, p.price_date,
           CASE WHEN win_to <= win_from THEN 0
                WHEN (SELECT how.by_runs FROM how)
                THEN coalesce(closed.s, 0) + coalesce(date_part('epoch',  -- the run still going
                         least(win_to, dashgen.billed_end(i.running_since, NULL)) - greatest(win_from, i.running_since))
                         * (i.running_since < win_to)::int, 0)
                ELSE probed.t_to - probed.t_from END,
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
    LEFT JOIN LATERAL (  -- by probes: billed seconds up to each end of the range (OFFSET 0: each probe runs once)
        SELECT
        CASE WHEN win_to <= coalesce(i.first_started_at, 'infinity') THEN 0
             WHEN win_to >= coalesce(i.closed_until, '-infinity') AND win_to >= coalesce(i.running_since, '-infinity')
             THEN i.billed_closed_s + coalesce(date_part('epoch', greatest(interval '0', least(
                      dashgen.billed_end(i.running_since, NULL), win_to) - i.running_since)), 0)
             ELSE coalesce((SELECT iv.billed_before + date_part('epoch', greatest(interval '0', least(
                                dashgen.billed_end(iv.started_at, iv.ended_at), win_to) - iv.started_at))
                            FROM dashgen.instance_intervals iv
                            WHERE iv.instance_id = i.instance_id AND iv.started_at <= win_to
                            ORDER BY iv.started_at DESC LIMIT 1), 0) END AS t_to,
        CASE WHEN win_from <= coalesce(i.first_started_at, 'infinity') THEN 0
             WHEN win_from >= coalesce(i.closed_until, '-infinity') AND win_from >= coalesce(i.running_since, '-infinity')
             THEN i.billed_closed_s + coalesce(date_part('epoch', greatest(interval '0', least(
                      dashgen.billed_end(i.running_since, NULL), win_from) - i.running_since)), 0)
             ELSE coalesce((SELECT iv.billed_before + date_part('epoch', greatest(interval '0', least(
                                dashgen.billed_end(iv.started_at, iv.ended_at), win_from) - iv.started_at))
                            FROM dashgen.instance_intervals iv
                            WHERE iv.instance_id = i.instance_id AND iv.started_at <= win_from
                            ORDER BY iv.started_at DESC LIMIT 1), 0) END AS t_from
        WHERE NOT (SELECT how.by_runs FROM how) OFFSET 0) probed ON true
$$;
