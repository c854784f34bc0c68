-- Cost dashboard, "Cumulative cost": cost since the start of the time range, per tag value and in total
-- ("(all selected)"), at Grafana's interval resolution at the edges of the range and hourly inside it.
-- Instances without a known price are left out; the Account filter applies to the rollups too (migration 070). dashgen.cumulative_cost (migration 003) reads whole hours
-- from the hourly rollup and the partial hours at the edges from the runs, so every point is exact.
SELECT "time", metric, value
FROM dashgen.cumulative_cost($__timeFrom()::timestamptz, $__timeTo()::timestamptz,
                             greatest($__interval_ms / 1000.0, 60)::float8, dashgen.unhex(${tag_key:sqlstring}),
                             ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}], ARRAY[${account:sqlstring}])
ORDER BY 1, 2
