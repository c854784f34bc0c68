-- Cost dashboard, "Experiment progress": the stored 0-100 % points of each selected experiment; of the points in
-- one $__interval (Grafana's query interval: the time range over the panel's max data points, about a pixel),
-- the latest. A time series panel draws no more than that: the line is the same, and a month of 5-minute points
-- of many experiments does not travel to the browser (every point when the interval is at most their spacing).
SELECT "time", metric, value
FROM (SELECT DISTINCT ON (p.experiment, dashgen.utc_floor(p.at, make_interval(secs => $__interval_ms / 1000.0)))
             p.at AS "time", p.experiment AS metric, p.percent AS value
      FROM dashgen.experiment_progress p
      WHERE $__timeFilter(p.at)
        AND dashgen.chosen(p.experiment, ARRAY[${experiment:sqlstring}])
      ORDER BY p.experiment, dashgen.utc_floor(p.at, make_interval(secs => $__interval_ms / 1000.0)), p.at DESC) x
ORDER BY 1, 2
