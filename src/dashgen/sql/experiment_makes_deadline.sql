-- Cost dashboard, "Makes deadline": one series per experiment, 1 = ETA before the deadline, 0 = after,
-- NULL = unknown (no progress metric, or no progress yet).
SELECT now() AS "time", name AS metric, makes_deadline::int AS value
FROM dashgen.experiment_status
WHERE dashgen.chosen(name, ARRAY[${experiment:sqlstring}])
ORDER BY name
