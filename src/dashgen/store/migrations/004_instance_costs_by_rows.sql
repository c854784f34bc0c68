-- The per-instance cost of a time range without reading every run before it (bench/sync.py: the
-- cost-per-instance and cost-by-tag panels on 10,000 instances x 30 days of runs).
--
-- dashgen.instance_costs(win_from, win_to) now returns each instance's whole row (what the panels show, price
-- included), so that no panel joins the instances twice, and computes the billed seconds in the range
--   by rows:   billed seconds up to win_to minus up to win_from, each from the instance's own row: its rollups,
--              or a binary search in its last 32 runs (kept in the row), or for a time before those one index
--              probe for its first run started after that time;
--   or, on request (`by_runs => true`: the tests' cross-check), by runs: the sum over the runs that overlap the
--              range of their billed overlap with it (one scan of the runs that ended after win_from). By rows
--              measured 28-30 ms against 34-99 ms by runs for 1 to 14 days of 10,000 instances' daily runs;
-- and shows the tags as text computed once per sync (tags_label), not once per row and refresh.

-- "key=value, ..." in key order, Name left out (it has its own column).
CREATE FUNCTION dashgen.tags_label(tags jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(key || '=' || value, ', ' ORDER BY key) FROM jsonb_each_text(tags) WHERE key <> 'Name'
$$;
ALTER TABLE dashgen.instances
    ADD COLUMN tags_label text GENERATED ALWAYS AS (dashgen.tags_label(tags)) STORED,
    ADD COLUMN first_started_at timestamptz,  -- the start of its first run: nothing billed before it
    -- its last 32 runs, oldest first: starts, ends (NULL: still going) and billed seconds of the runs before each
    ADD COLUMN recent_starts timestamptz[],
    ADD COLUMN recent_ends timestamptz[],
    ADD COLUMN recent_before double precision[];

-- Per run, the billed end of the instance's run before it (NULL for its first run).
ALTER TABLE dashgen.instance_intervals ADD COLUMN prev_billed_end timestamptz;
DROP INDEX dashgen.instance_intervals_probe;  -- (the last run started by t: read every run before t)
DROP INDEX dashgen.instance_intervals_end;  -- (no query reads it: runs ended after t use instance_intervals_ended)
-- The first run started after t (reads only the runs after t). Instance ids are ASCII: compared bytewise
-- (COLLATE "C") instead of through the database locale, probes descend the index faster.
CREATE INDEX instance_intervals_next ON dashgen.instance_intervals (instance_id COLLATE "C", started_at)
    INCLUDE (billed_before, prev_billed_end);

-- refresh_billing (called by every sync for the instances whose runs changed) now also keeps prev_billed_end,
-- first_started_at and the recent runs, in the same two statements.
CREATE OR REPLACE FUNCTION dashgen.refresh_billing(ids text[]) RETURNS void LANGUAGE sql AS $$
    UPDATE dashgen.instance_intervals iv SET billed_before = w.before, prev_billed_end = w.prev
    FROM (SELECT instance_id, started_at,
                 coalesce(sum(closed_s) OVER (PARTITION BY instance_id ORDER BY started_at
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,
                 lag(billed_end) OVER (PARTITION BY instance_id ORDER BY started_at) AS prev
          FROM (SELECT instance_id, started_at, dashgen.billed_end(started_at, ended_at) AS billed_end,
                       coalesce(date_part('epoch', dashgen.billed_end(started_at, ended_at) - started_at)
                                * (ended_at IS NOT NULL)::int, 0) AS closed_s
                FROM dashgen.instance_intervals WHERE instance_id = ANY (ids)) x) w
    WHERE iv.instance_id = w.instance_id AND iv.started_at = w.started_at
      AND (iv.billed_before, iv.prev_billed_end) IS DISTINCT FROM (w.before, w.prev);
    UPDATE dashgen.instances i
    SET billed_closed_s = r.closed_s, closed_until = r.until, running_since = r.since, first_started_at = r.first,
        recent_starts = last.starts, recent_ends = last.ends, recent_before = last.befores
    FROM (SELECT i2.instance_id,
                 coalesce(sum(date_part('epoch', dashgen.billed_end(iv.started_at, iv.ended_at) - iv.started_at))
                          FILTER (WHERE iv.ended_at IS NOT NULL), 0) AS closed_s,
                 max(dashgen.billed_end(iv.started_at, iv.ended_at)) FILTER (WHERE iv.ended_at IS NOT NULL) AS until,
                 max(iv.started_at) FILTER (WHERE iv.ended_at IS NULL) AS since,
                 min(iv.started_at) AS first
          FROM dashgen.instances i2 LEFT JOIN dashgen.instance_intervals iv ON iv.instance_id = i2.instance_id
          WHERE i2.instance_id = ANY (ids) GROUP BY i2.instance_id) r,
    LATERAL (SELECT array_agg(started_at ORDER BY started_at) AS starts, array_agg(ended_at ORDER BY started_at) AS ends,
                    array_agg(billed_before ORDER BY started_at) AS befores
             FROM (SELECT iv.started_at, iv.ended_at, iv.billed_before FROM dashgen.instance_intervals iv
                   WHERE iv.instance_id = r.instance_id ORDER BY iv.started_at DESC LIMIT 32) x) last
    WHERE i.instance_id = r.instance_id
      AND (i.billed_closed_s, i.closed_until, i.running_since, i.first_started_at, i.recent_starts, i.recent_ends,
           i.recent_before)
          IS DISTINCT FROM (r.closed_s, r.until, r.since, r.first, last.starts, last.ends, last.befores);
$$;
SELECT dashgen.refresh_billing(array_agg(instance_id)) FROM dashgen.instances;

-- Billed seconds of an instance up to t: 0 before its first start; after the start of its last run and the end
-- of its last closed one, from its rollups (closed runs, plus the open run up to t); after the oldest of its
-- recent runs, from the last of them started by t (what the runs before it billed, plus its own part up to t,
-- found by binary search in the row: no index probe); else `next_upto`, which the caller probes only then (what
-- the runs before the first run started after t billed, less their part after t).
CREATE FUNCTION dashgen.billed_upto(t timestamptz, first_started_at timestamptz, billed_closed_s double precision,
                                    closed_until timestamptz, running_since timestamptz,
                                    recent_starts timestamptz[], recent_ends timestamptz[],
                                    recent_before double precision[], next_upto double precision)
RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t <= coalesce(first_started_at, 'infinity') THEN 0
                WHEN t < greatest(closed_until, running_since) AND t >= recent_starts[1]
                THEN recent_before[width_bucket(t, recent_starts)] + greatest(0, date_part('epoch', least(t,
                         dashgen.billed_end(recent_starts[width_bucket(t, recent_starts)],
                                            recent_ends[width_bucket(t, recent_starts)]))
                         - recent_starts[width_bucket(t, recent_starts)]))
                ELSE coalesce(next_upto,
                              billed_closed_s - greatest(0, coalesce(date_part('epoch', closed_until - t), 0))
                              + coalesce(date_part('epoch', greatest(interval '0',
                                             least(dashgen.billed_end(running_since, NULL), t) - running_since)), 0))
           END
$$;

DROP FUNCTION dashgen.instance_costs(timestamptz, timestamptz);

-- Per selected instance: its row, price (NULL = unknown), billed seconds inside [win_from, win_to] and to date.
-- `by_runs` computes the range by runs instead of by rows (tests check both agree).
-- By rows, a run restarted within 60 s of an earlier start has that overlap counted once at a window edge
-- falling inside it (by runs: twice, as AWS bills both minimums); the two ways agree everywhere else.
CREATE FUNCTION dashgen.instance_costs(win_from timestamptz, win_to timestamptz, by_runs bool DEFAULT NULL)
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
                THEN coalesce(closed.s, 0) + coalesce(date_part('epoch',  -- the run still going
                         least(win_to, dashgen.billed_end(i.running_since, NULL)) - greatest(win_from, i.running_since))
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
                  - dashgen.billed_upto(win_from, i.first_started_at, i.billed_closed_s, i.closed_until,
                        i.running_since, i.recent_starts, i.recent_ends, i.recent_before,
                        CASE WHEN win_from < greatest(i.closed_until, i.running_since)
                                  AND win_from < i.recent_starts[1] AND win_from > i.first_started_at
                        THEN (SELECT iv.billed_before
                                     - greatest(0, coalesce(date_part('epoch', iv.prev_billed_end - win_from), 0))
                              FROM dashgen.instance_intervals iv
                              WHERE iv.instance_id = i.instance_id COLLATE "C" AND iv.started_at > win_from
                              ORDER BY iv.started_at LIMIT 1) END) END,
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
