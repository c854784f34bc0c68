-- Cost dashboard, "Experiment progress": the stored 0-100 % points of each selected experiment.
SELECT p.at AS "time", p.experiment AS metric, p.percent AS value
FROM dashgen.experiment_progress p
WHERE $__timeFilter(p.at)
  AND dashgen.chosen(p.experiment, ARRAY[${experiment:sqlstring}])
  AND dashgen.experiment_in_accounts(p.experiment, ARRAY[${account:sqlstring}])
ORDER BY 1, 2
