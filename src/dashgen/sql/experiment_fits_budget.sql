-- Cost dashboard, "Fits budget": one series per experiment, 1 = fits, 0 = does not, NULL = unknown.
SELECT now() AS "time", name AS metric, fits_budget::int AS value
FROM dashgen.experiment_status
WHERE dashgen.chosen(name, ARRAY[${experiment:sqlstring}])
ORDER BY name
