-- Cost dashboard, "Budget and deadline": every selected experiment (dashgen.experiment_status, migration 020;
-- definitions in docs/cost.md). NULL = unknown, shown as "unknown".
SELECT name AS "Experiment", instances AS "Instances", running AS "Running",
       budget_usd AS "Budget", spent_usd AS "Spent", budget_left_usd AS "Budget left",
       burn_usd_per_hour AS "Burn rate (USD/h)", deadline AS "Deadline",
       projected_at_deadline_usd AS "Projected at deadline",
       progress_percent AS "Progress", pace_percent_per_hour AS "Pace", eta AS "ETA",
       projected_to_finish_usd AS "Projected cost to finish",
       fits_budget AS "Fits budget", makes_deadline AS "Makes deadline"
FROM dashgen.experiment_status
WHERE dashgen.chosen(name, ARRAY[${experiment:sqlstring}])
ORDER BY name
