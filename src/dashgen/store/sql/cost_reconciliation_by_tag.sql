-- Cost dashboard, "Estimated vs billed by tag value": dashgen.reconciliation (migration 061) summed per value of
-- the chosen tag key, over the part of the time range AWS has billed. Unknown (NULL) when one instance's estimate
-- or bill is.
SELECT coalesce(i.tags ->> dashgen.unhex(${tag_key:sqlstring}), '(no tag)') AS "Tag value",
       count(*) AS "Instances",
       sum(r.hours) AS "Hours billed",
       CASE WHEN bool_and(r.estimated_usd IS NOT NULL) THEN sum(r.estimated_usd) END AS "Estimated",
       CASE WHEN bool_and(r.billed_usd IS NOT NULL) THEN sum(r.billed_usd) END AS "Billed",
       CASE WHEN bool_and(r.estimated_usd IS NOT NULL AND r.billed_usd IS NOT NULL)
            THEN 100 * (sum(r.billed_usd) - sum(r.estimated_usd)) / nullif(sum(r.estimated_usd), 0) END
           AS "Difference",
       CASE WHEN bool_and(r.billed_usd IS NOT NULL) THEN sum(r.billed_usd) / nullif(sum(r.hours), 0) END
           AS "Effective USD/hour",
       max(r.billed_through) AS "Billed through"
FROM dashgen.reconciliation($__timeFrom()::timestamptz, $__timeTo()::timestamptz) r
JOIN dashgen.instances i ON i.instance_id = r.instance_id
WHERE dashgen.selected(i.tags, i.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
  AND dashgen.chosen(i.account_id, ARRAY[${account:sqlstring}])
GROUP BY 1
ORDER BY 1
