-- Cost dashboard, "Cost by tag value": the selected instances grouped by the value of the chosen tag key.
-- A group's cost is unknown (NULL) when one of its instances has an unknown cost (dashgen.instance_cost_totals,
-- migration 061: On-Demand or Spot, plus surplus credits; an instance that did not run in the range costs 0 there).
SELECT coalesce(c.tags ->> dashgen.unhex(${tag_key:sqlstring}), '(no tag)') AS "Tag value",
       count(*) AS "Instances",
       count(*) FILTER (WHERE c.usd_per_hour IS NULL) AS "Without price",
       coalesce(sum(c.credit_usd_in_range), 0) AS "Credits in range",
       CASE WHEN bool_and(c.usd_in_range IS NOT NULL) THEN coalesce(sum(c.usd_in_range), 0) END AS "Cost in range",
       CASE WHEN bool_and(c.usd_to_date IS NOT NULL) THEN coalesce(sum(c.usd_to_date), 0) END AS "Cost to date"
FROM dashgen.instance_cost_totals($__timeFrom()::timestamptz, $__timeTo()::timestamptz) c
WHERE dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
  AND dashgen.chosen(c.account_id, ARRAY[${account:sqlstring}])
GROUP BY 1
ORDER BY "Cost in range" DESC NULLS FIRST, 1
