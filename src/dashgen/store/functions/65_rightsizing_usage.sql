-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).
-- Rightsizing's per-instance aggregates (issue 16's rule, issue 13's speed): one implementation for the table
-- sync keeps (dashgen.rightsizing_usage, migration 065) and for sql/rightsizing.sql when the dashboard asks for
-- another window or percentile than the one kept.

-- Per instance of `ids` (its current type in dashgen.instances): over the hours of [as_of - days, as_of] it ran on
-- that type with 5-minute CPU data, the aggregates the rule sizes on (`percentile` in percent: 99.5):
--   cpu_peak   percentile_cont of the n5 five-minute CPU maxima, computed as PostgreSQL does (pos = p x (n5 - 1),
--              interpolated between ranks floor(pos) and ceil(pos)) but sorting only the values of the hours that
--              can hold those ranks: counted from the top they are within the first n5 - floor(pos) values, hence
--              within the n5 - floor(pos) hours with the highest 5-minute maximum (each has one value that high);
--   busiest_day_avg  the highest mean of the hourly averages over a UTC day;
--   memory, network, packets, EBS  the percentile of the hourly (busiest-5-minute) values;
--   surplus_credits  CloudWatch CPUSurplusCreditsCharged summed over those hours.
-- Every instance of `ids` has a row (hours 0 when none).
CREATE OR REPLACE FUNCTION dashgen.rightsizing_usage_of(ids text[], percentile double precision, days int,
                                                        as_of timestamptz)
RETURNS TABLE (instance_id text, instance_type text, window_from timestamptz, first_hour timestamptz,
               last_hour timestamptz, hours bigint, n5 bigint, cpu_avg double precision, cpu_max double precision,
               cpu_peak double precision, busiest_day_avg double precision, mem_hours bigint,
               mem_peak double precision, net_gbps double precision, packets_per_s double precision,
               ebs_iops double precision, ebs_mbps double precision, surplus_credits double precision)
LANGUAGE sql STABLE AS $$
    SELECT i.instance_id, i.instance_type, w.since, a.first_hour, a.last_hour, a.hours, a.n5, a.cpu_avg, a.cpu_max,
           c.cpu_peak, d.busiest_day_avg, a.mem_hours, a.mem_peak, a.net_gbps, a.packets_per_s, a.ebs_iops,
           a.ebs_mbps, a.surplus_credits
    FROM dashgen.instances i
    CROSS JOIN LATERAL (SELECT as_of - make_interval(days => days) AS since, percentile / 100 AS pctl) w
    CROSS JOIN LATERAL (
        SELECT count(*) AS hours, min(h.hour) AS first_hour, max(h.hour) AS last_hour,
               sum(h.cpu_count_5m)::bigint AS n5,
               avg(h.cpu_avg) AS cpu_avg,
               max(h.cpu_max) AS cpu_max,
               count(h.mem_used_max) AS mem_hours,
               percentile_cont(w.pctl) WITHIN GROUP (ORDER BY h.mem_used_max) AS mem_peak,
               percentile_cont(w.pctl) WITHIN GROUP (ORDER BY greatest(h.network_in_max_5m, h.network_out_max_5m))
                   * 8 / 300 / 1e9 AS net_gbps,
               percentile_cont(w.pctl) WITHIN GROUP (ORDER BY h.packets_max_5m) / 300 AS packets_per_s,
               percentile_cont(w.pctl) WITHIN GROUP (ORDER BY h.ebs_ops_max_5m) / 300 AS ebs_iops,
               percentile_cont(w.pctl) WITHIN GROUP (ORDER BY h.ebs_bytes_max_5m) / 300 / 1e6 AS ebs_mbps,
               sum(h.cpu_surplus_credits_charged) AS surplus_credits
        FROM dashgen.instance_utilisation_hourly h
        WHERE h.instance_id = i.instance_id AND h.instance_type = i.instance_type
          AND h.hour >= w.since AND h.hour <= as_of AND h.cpu_max_5m IS NOT NULL
    ) a
    CROSS JOIN LATERAL (
        SELECT CASE WHEN a.n5 > 0
                    THEN top[a.n5 - floor(q.pos)::int]
                         + (q.pos - floor(q.pos)) * (top[a.n5 - ceil(q.pos)::int] - top[a.n5 - floor(q.pos)::int])
               END AS cpu_peak
        FROM (SELECT w.pctl * (a.n5 - 1) AS pos) q
        CROSS JOIN LATERAL (
            SELECT array_agg(v::float8 ORDER BY v DESC) AS top
            FROM (SELECT h.cpu_max_5m
                  FROM dashgen.instance_utilisation_hourly h
                  WHERE h.instance_id = i.instance_id AND h.instance_type = i.instance_type
                    AND h.hour >= w.since AND h.hour <= as_of AND h.cpu_max_5m IS NOT NULL
                  ORDER BY h.cpu_peak_5m DESC
                  LIMIT greatest(a.n5 - floor(q.pos), 0)) hh
            CROSS JOIN LATERAL unnest(hh.cpu_max_5m) AS v
            WHERE v IS NOT NULL
        ) t
    ) c
    CROSS JOIN LATERAL (
        SELECT max(day_avg) AS busiest_day_avg
        FROM (SELECT avg(h.cpu_avg) AS day_avg
              FROM dashgen.instance_utilisation_hourly h
              WHERE h.instance_id = i.instance_id AND h.instance_type = i.instance_type
                AND h.hour >= w.since AND h.hour <= as_of AND h.cpu_max_5m IS NOT NULL
              GROUP BY date_trunc('day', h.hour, 'UTC')) per_day
    ) d
    WHERE i.instance_id = ANY (ids)
$$;
