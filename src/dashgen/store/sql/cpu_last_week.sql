-- Performance dashboard, "CPU this week vs. last week": last week's hourly CPU average of the selected
-- instances, moved forward by 7 days so that it lies under this week's CloudWatch series in the same panel.
-- Read from the store (`dashgen sync` keeps `pricing.lookback_days`, default 14, of hourly utilisation):
-- CloudWatch queries cannot be time-shifted one by one, only a whole panel can.
-- The selection is the dashboard's (region, Tag, Name, Instance), read from the store as every store panel does.
SELECT u.hour + interval '7 days' AS "time",
       u.instance_id || ' last week' AS metric,
       u.cpu_avg AS value
FROM dashgen.instance_utilisation_hourly u
JOIN dashgen.instances i USING (instance_id)
WHERE u.hour >= $__timeFrom()::timestamptz - interval '7 days'
  AND u.hour < $__timeTo()::timestamptz - interval '7 days'
  AND i.region = ${region:sqlstring}
  AND dashgen.selected(i.tags, i.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
  AND dashgen.chosen(i.instance_id, ARRAY[${instance:sqlstring}])
  AND dashgen.chosen(i.account_id, ARRAY[${account:sqlstring}])
ORDER BY 1, 2
