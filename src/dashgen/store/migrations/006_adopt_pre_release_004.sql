-- Stores migrated by a pre-release dashgen (before checksums, November 2026) may hold any of the earlier texts of
-- migration 004 (first named 004_instance_costs_by_runs; dashgen.store.migrate adopts that name as
-- 004_instance_costs_by_rows). This brings every one of them to the shape of the shipped 004: the columns it
-- adds, its indexes and none of the functions those texts had and it has not. On a store made by the shipped
-- 004 it changes nothing. The functions themselves are re-applied from dashgen/store_definitions/ after this.

ALTER TABLE dashgen.instances
    ADD COLUMN IF NOT EXISTS first_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS recent_starts timestamptz[],
    ADD COLUMN IF NOT EXISTS recent_ends timestamptz[],
    ADD COLUMN IF NOT EXISTS recent_before double precision[];
ALTER TABLE dashgen.instance_intervals ADD COLUMN IF NOT EXISTS prev_billed_end timestamptz;

DROP INDEX IF EXISTS dashgen.instance_intervals_probe;
DROP INDEX IF EXISTS dashgen.instance_intervals_end;
DO $$
BEGIN
    IF coalesce(pg_get_indexdef(to_regclass('dashgen.instance_intervals_next')), '') NOT LIKE
       '%(instance_id COLLATE "C", started_at) INCLUDE (billed_before, prev_billed_end)' THEN
        DROP INDEX IF EXISTS dashgen.instance_intervals_next;
        CREATE INDEX instance_intervals_next ON dashgen.instance_intervals (instance_id COLLATE "C", started_at)
            INCLUDE (billed_before, prev_billed_end);
    END IF;
END $$;

-- Functions of the earlier texts that the shipped 004 does not have (other argument lists of billed_upto;
-- refresh_run_rollups, the old refresh_billing under another name).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'dashgen'::regnamespace
               AND (p.proname = 'refresh_run_rollups'
                    OR (p.proname = 'billed_upto' AND pg_get_function_identity_arguments(p.oid) <>
                        't timestamp with time zone, first_started_at timestamp with time zone, '
                        'billed_closed_s double precision, closed_until timestamp with time zone, '
                        'running_since timestamp with time zone, recent_starts timestamp with time zone[], '
                        'recent_ends timestamp with time zone[], recent_before double precision[], '
                        'next_upto double precision'))
    LOOP
        EXECUTE format('DROP FUNCTION %s', f);
    END LOOP;
END $$;

-- The per-instance rollups of the shipped 004 (the earlier texts kept fewer), by its refresh_billing (as of this
-- migration; dashgen/store_definitions/20_billing.sql holds the current one). Only rows that differ are written.
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
