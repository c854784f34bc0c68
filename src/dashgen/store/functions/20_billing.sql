-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- The end of what EC2 bills for one run: its end (now() while running), but at least 60 s after its start.
CREATE OR REPLACE FUNCTION dashgen.billed_end(started_at timestamptz, ended_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(coalesce(ended_at, now()), started_at + interval '60 seconds')
$$;

-- Seconds EC2 bills for one run inside the window [win_from, win_to].
CREATE OR REPLACE FUNCTION dashgen.billed_seconds(started_at timestamptz, ended_at timestamptz,
                                       win_from timestamptz, win_to timestamptz)
RETURNS numeric LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(0::numeric, extract(epoch FROM
        least(dashgen.billed_end(started_at, ended_at), win_to) - greatest(started_at, win_from)))
$$;

-- Billed seconds to date of an instance, from its rollups.
CREATE OR REPLACE FUNCTION dashgen.seconds_to_date(billed_closed_s double precision, running_since timestamptz)
RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT billed_closed_s + coalesce(date_part('epoch', dashgen.billed_end(running_since, NULL) - running_since), 0)
$$;

-- The rollups every sync refreshes for the instances whose runs changed (two statements): per run, the billed
-- seconds of the instance's earlier runs and the billed end of the run before it; per instance, the billed
-- seconds of its closed runs, the billed end of the last of them, the start of the run still going (NULL when
-- stopped), the start of its first run and its last 32 runs.
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

-- Billed seconds of an instance up to t: 0 before its first start; after the start of its last run and the end
-- of its last closed one, from its rollups (closed runs, plus the open run up to t); after the oldest of its
-- recent runs, from the last of them started by t (what the runs before it billed, plus its own part up to t,
-- found by binary search in the row: no index probe); else `next_upto`, which the caller probes only then (what
-- the runs before the first run started after t billed, less their part after t).
CREATE OR REPLACE FUNCTION dashgen.billed_upto(t timestamptz, first_started_at timestamptz, billed_closed_s double precision,
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

-- What dashgen.billed_upto(t) counts too many when runs restart within 60 s of a start: it counts each earlier
-- run whole, so the part after t of the 60 s minimum of every run started in (t - 60 s, t] but the last one.
-- (A run j before the last one started by t ended by t, so it bills after t only its minimum's end, s_j + 60 s.)
CREATE OR REPLACE FUNCTION dashgen.restart_overlap_s(id text, t timestamptz) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(x) - max(x), 0)
    FROM (SELECT 60 - date_part('epoch', t - iv.started_at) AS x
          FROM dashgen.instance_intervals iv
          WHERE iv.instance_id = id COLLATE "C" AND iv.started_at > t - interval '60 seconds'
            AND iv.started_at <= t) r
$$;
