-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Per selected instance: its row, price (NULL = unknown), billed seconds inside [win_from, win_to] and to date.
-- `by_runs` computes the range by runs instead of by rows (tests check both agree). By rows: billed seconds up
-- to win_to less up to win_from (dashgen.billed_upto), less restart_overlap_s at each end of the range, called
-- only when a run started within 60 s before that end had another start within 60 s before it (the row's last
-- 32 starts tell; before them, always): a run restarted within 60 s of an earlier start bills both 60-second
-- minimums at their own times, as by runs, the cumulative panel and dashgen.billed_seconds do.
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
