-- Performance dashboard, "CPU this week vs. last week": last week's hourly CPU average of the selected
-- instances, moved forward by 7 days so that it lies under this week's CloudWatch series in the same panel.
-- Read from the store (`dashgen sync` keeps `pricing.lookback_days`, default 14, of hourly utilisation):
-- CloudWatch queries cannot be time-shifted one by one, only a whole panel can.
-- The selection is the dashboard's (region, Tag, Name, Instance, Account), read from the store as every store panel does.
-- Up to 20 selected instances: one dashed series per instance (what a reader can match against its solid line).
-- More: two series for the whole selection, its mean and its highest hourly average (a time series panel draws
-- every series it gets: thousands of dashed lines, each one every row to the browser, say nothing); with every
-- instance of the region selected they come from the hourly rollup `dashgen sync` keeps
-- (dashgen.cpu_hourly_by_region, store/functions/47_charge_rollups.sql) for the hours before its last day.
WITH sel AS MATERIALIZED (
    SELECT i.instance_id
    FROM dashgen.instances i
    WHERE i.region = ${region:sqlstring}
      AND dashgen.selected(i.tags, i.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
      AND dashgen.chosen(i.instance_id, ARRAY[${instance:sqlstring}])
      AND dashgen.chosen(i.account_id, ARRAY[${account:sqlstring}])
), w AS MATERIALIZED (
    SELECT $__timeFrom()::timestamptz - interval '7 days' AS f, $__timeTo()::timestamptz - interval '7 days' AS t,
           (SELECT count(*) FROM sel) AS n,
           '__all__' = ANY (ARRAY[${tag_value:sqlstring}]) AND '__all__' = ANY (ARRAY[${name:sqlstring}])
               AND '__all__' = ANY (ARRAY[${instance:sqlstring}])
               AND '__all__' = ANY (ARRAY[${account:sqlstring}]) AS whole_region,
           coalesce((SELECT s.through FROM dashgen.rollup_state s), '-infinity') AS through
), hourly AS (  -- more than 20: per hour, the count, sum and highest of the selection's averages
    SELECT c.hour, c.instances AS k, c.cpu_avg_sum AS total, c.cpu_avg_max AS highest
    FROM w JOIN dashgen.cpu_hourly_by_region c
      ON c.region = ${region:sqlstring} AND c.hour >= w.f AND c.hour < least(w.t, w.through)
    WHERE w.n > 20 AND w.whole_region
    UNION ALL
    SELECT u.hour, count(*), sum(u.cpu_avg), max(u.cpu_avg)
    FROM w JOIN dashgen.instance_utilisation_hourly u
      ON u.hour >= CASE WHEN w.whole_region THEN greatest(w.f, w.through) ELSE w.f END AND u.hour < w.t
    JOIN sel ON sel.instance_id = u.instance_id
    WHERE w.n > 20 AND u.cpu_avg IS NOT NULL
    GROUP BY u.hour
)
SELECT u.hour + interval '7 days' AS "time",
       u.instance_id || ' last week' AS metric,
       u.cpu_avg AS value
FROM w JOIN dashgen.instance_utilisation_hourly u ON u.hour >= w.f AND u.hour < w.t
JOIN sel ON sel.instance_id = u.instance_id
WHERE w.n <= 20
UNION ALL
SELECT h.hour + interval '7 days', s.metric, s.value
FROM w, hourly h,
     LATERAL (VALUES ('mean of ' || w.n || ' selected last week', h.total / h.k),
                     ('highest of ' || w.n || ' selected last week', h.highest)) s(metric, value)
ORDER BY 1, 2
