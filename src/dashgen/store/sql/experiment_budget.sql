-- Cost dashboard, "Budget and deadline": every selected experiment (dashgen.experiment_status, migration 020;
-- definitions in docs/cost.md). NULL = unknown, shown as "unknown".
-- "In config": no once the experiment left dashgen.toml (sync keeps it, migration 030, until forget-experiment).
SELECT name AS "Experiment", instances AS "Instances", running AS "Running",
       budget_usd AS "Budget", spent_usd AS "Spent", budget_left_usd AS "Budget left",
       burn_usd_per_hour AS "Burn rate (USD/h)", deadline AS "Deadline",
       projected_at_deadline_usd AS "Projected at deadline",
       progress_percent AS "Progress", pace_percent_per_hour AS "Pace", eta AS "ETA",
       projected_to_finish_usd AS "Projected cost to finish",
       fits_budget AS "Fits budget", makes_deadline AS "Makes deadline",
       (SELECT CASE WHEN e.removed_from_config_at IS NULL THEN 'yes' ELSE 'no, since '
                    || to_char(e.removed_from_config_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' END
        FROM dashgen.experiments e WHERE e.name = experiment_status.name) AS "In config"
FROM dashgen.experiment_status
WHERE dashgen.chosen(name, ARRAY[${experiment:sqlstring}])
  AND dashgen.experiment_in_accounts(name, ARRAY[${account:sqlstring}])
ORDER BY name
