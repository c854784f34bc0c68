-- Cost dashboard, "Fits budget": one series per experiment, 1 = fits, 0 = does not, NULL = unknown (a price is
-- unknown). Projected cost to finish, else (no ETA) projected at the deadline, against the budget: docs/cost.md.
SELECT now() AS "time", name AS metric, fits_budget::int AS value
FROM dashgen.experiment_status
WHERE dashgen.chosen(name, ARRAY[${experiment:sqlstring}])
  AND dashgen.experiment_in_accounts(name, ARRAY[${account:sqlstring}])
ORDER BY name
