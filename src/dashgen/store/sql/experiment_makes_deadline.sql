-- Cost dashboard, "Makes deadline": one series per experiment, 1 = ETA before the deadline, 0 = after,
-- NULL = unknown (no ETA: no progress metric, one point, stalled or falling progress; see docs/cost.md).
SELECT now() AS "time", name AS metric, makes_deadline::int AS value
FROM dashgen.experiment_status
WHERE dashgen.chosen(name, ARRAY[${experiment:sqlstring}])
  AND dashgen.experiment_in_accounts(name, ARRAY[${account:sqlstring}])
ORDER BY name
