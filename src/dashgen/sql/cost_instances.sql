-- Cost dashboard, "Cost per instance": USD per hour, running hours and cost in the dashboard's time range, cost to date.
-- An unknown price gives NULL (shown as "unknown") for an instance that ran, never zero dollars. Billing: dashgen.instance_costs (migration 004).
-- The panel's second query (cost_instances_ebs.sql) adds the EBS columns, joined on "Instance" by Grafana.
SELECT c.instance_id AS "Instance",
       c.name AS "Name",
       c.instance_type AS "Type",
       c.region AS "Region",
       c.state AS "State",
       c.tags_label AS "Tags",
       c.usd_per_hour AS "USD/hour",
       c.seconds_in_range / 3600 AS "Hours in range",
       CASE WHEN c.seconds_in_range = 0 THEN 0  -- did not run: 0 USD even at an unknown price (as cost_by_tag.sql)
            ELSE c.seconds_in_range * c.usd_per_hour::float8 / 3600 END AS "Cost in range",
       CASE WHEN c.seconds_to_date = 0 THEN 0 ELSE c.seconds_to_date * c.usd_per_hour::float8 / 3600 END
           AS "Cost to date",
       c.price_source AS "Price source",
       c.price_date AS "Price date"
FROM dashgen.instance_costs($__timeFrom()::timestamptz, $__timeTo()::timestamptz) c
WHERE dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
-- no ORDER BY: the table panel sorts by "Cost in range" itself, and sorting 10,000 rows here took 40 ms
