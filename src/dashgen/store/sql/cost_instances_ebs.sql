-- Cost dashboard, "Cost per instance", second query: GiB of EBS attached to each selected instance and their storage
-- cost in the time range (dashgen.ebs_costs, migration 005; NULL = a volume's price is unknown, never zero; no
-- volume: 0). Grafana joins it to the first query (cost_instances.sql) on "Instance" (transformation joinByField):
-- two queries that each stay fast instead of one that does both.
SELECT i.instance_id AS "Instance",
       coalesce(e.gib, 0) AS "EBS GiB",
       CASE WHEN e.instance_id IS NULL THEN 0 ELSE e.usd_in_range END AS "EBS storage in range"
FROM dashgen.instances i
LEFT JOIN dashgen.ebs_costs($__timeFrom()::timestamptz, $__timeTo()::timestamptz) e ON e.instance_id = i.instance_id
WHERE dashgen.selected(i.tags, i.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
  AND dashgen.chosen(i.account_id, ARRAY[${account:sqlstring}])
