-- Cost dashboard, "Cost per instance": USD per hour (On-Demand, and the Spot price in effect for Spot instances),
-- running hours, surplus CPU credits, cost in the dashboard's time range and to date.
-- An unknown price gives NULL (shown as "unknown") for an instance that ran, never zero dollars. Every figure:
-- dashgen.instance_cost_totals (migration 061: billed seconds x On-Demand, or the Spot pieces; plus surplus credits;
-- an instance that did not run in the range costs 0 there even at an unknown price; docs/cost.md).
-- The panel's second query (cost_instances_ebs.sql) adds the EBS columns, joined on "Instance" by Grafana.
SELECT c.instance_id AS "Instance",
       c.name AS "Name",
       c.instance_type AS "Type",
       c.region AS "Region",
       c.account_id AS "Account",
       c.state AS "State",
       c.tags_label AS "Tags",
       c.lifecycle AS "Purchase",
       c.usd_per_hour AS "USD/hour",
       c.spot_usd_per_hour AS "Spot USD/hour",
       c.seconds_in_range / 3600 AS "Hours in range",
       c.credit_mode AS "Credit mode",
       c.credit_usd_in_range AS "Credits in range",
       c.usd_in_range AS "Cost in range",
       c.usd_to_date AS "Cost to date",
       c.price_source AS "Price source",
       c.price_date AS "Price date"
FROM dashgen.instance_cost_totals($__timeFrom()::timestamptz, $__timeTo()::timestamptz) c
WHERE dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
  AND dashgen.chosen(c.account_id, ARRAY[${account:sqlstring}])
-- no ORDER BY: the table panel sorts by "Cost in range" itself, and sorting 10,000 rows here took 40 ms
