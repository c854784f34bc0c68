-- Cost dashboard, "Estimated vs billed (CUR)": per selected instance, dashgen's estimate beside what AWS billed
-- (`dashgen sync --cur`: CUR 2.0 line items, effective cost after Savings Plans and RIs) over the part of the time
-- range AWS has delivered ("Billed through"); later hours stay estimated. dashgen.reconciliation (migration 061).
SELECT r.instance_id AS "Instance",
       i.name AS "Name",
       i.instance_type AS "Type",
       i.lifecycle AS "Purchase",
       r.hours AS "Hours billed",
       r.estimated_usd AS "Estimated",
       r.billed_usd AS "Billed",
       r.difference_pct AS "Difference",
       r.list_usd AS "Billed before discounts",
       r.effective_usd_per_hour AS "Effective USD/hour",
       r.billed_through AS "Billed through"
FROM dashgen.reconciliation($__timeFrom()::timestamptz, $__timeTo()::timestamptz) r
JOIN dashgen.instances i ON i.instance_id = r.instance_id
WHERE dashgen.selected(i.tags, i.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
  AND dashgen.chosen(i.account_id, ARRAY[${account:sqlstring}])
ORDER BY abs(r.difference_pct) DESC NULLS FIRST, 1
