-- Cost dashboard, "Experiment progress": the stored 0-100 % points of each selected experiment; of the points in
-- one $__interval (Grafana's query interval: the time range over the panel's max data points, about a pixel),
-- the latest. A time series panel draws no more than that: the line is the same, and a month of 5-minute points
-- of many experiments does not travel to the browser (every point when the interval is at most their spacing).
-- (The points in index order, each kept when the next one is in another interval: no sort.)
SELECT "time", metric, value
FROM (SELECT p.at AS "time", p.experiment AS metric, p.percent AS value,
             dashgen.utc_floor(p.at, make_interval(secs => $__interval_ms / 1000.0)) AS bucket,
             lead(dashgen.utc_floor(p.at, make_interval(secs => $__interval_ms / 1000.0)))
                 OVER (PARTITION BY p.experiment ORDER BY p.at) AS next_bucket
      FROM dashgen.experiment_progress p
      WHERE $__timeFilter(p.at)
        AND dashgen.chosen(p.experiment, ARRAY[${experiment:sqlstring}])
        AND dashgen.experiment_in_accounts(p.experiment, ARRAY[${account:sqlstring}])) x
WHERE next_bucket IS DISTINCT FROM bucket
ORDER BY 1, 2
