-- Cost dashboard, "Cost per instance": USD per hour, running hours and cost in the dashboard's time range, cost to date.
-- An unknown price gives NULL (shown as "unknown"), never zero dollars. Billing: dashgen.billed_seconds (migration 002).
SELECT b.instance_id AS "Instance",
       b.name AS "Name",
       b.instance_type AS "Type",
       b.region AS "Region",
       b.state AS "State",
       (b.tags - 'Name')::text AS "Tags",
       b.usd_per_hour AS "USD/hour",
       round((coalesce(c.seconds_in_range, 0) / 3600)::numeric, 4) AS "Hours in range",
       round((coalesce(c.seconds_in_range, 0) * b.usd_per_hour::float8 / 3600)::numeric, 6) AS "Cost in range",
       round((coalesce(c.seconds_to_date, 0) * b.usd_per_hour::float8 / 3600)::numeric, 6) AS "Cost to date",
       b.price_source AS "Price source",
       b.price_date AS "Price date"
FROM dashgen.instance_cost_basis b
LEFT JOIN dashgen.instance_costs($__timeFrom()::timestamptz, $__timeTo()::timestamptz) c
       ON c.instance_id = b.instance_id
WHERE dashgen.selected(b.tags, b.name, ${tag_key:sqlstring}, ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
-- no ORDER BY: the table panel sorts by "Cost in range" itself, and sorting 10,000 rows here took 40 ms
