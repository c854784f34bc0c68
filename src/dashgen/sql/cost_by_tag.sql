-- Cost dashboard, "Cost by tag value": the selected instances grouped by the value of the chosen tag key.
-- A group's cost is unknown (NULL) when one of its instances ran without a known price.
SELECT coalesce(c.tags ->> dashgen.unhex(${tag_key:sqlstring}), '(no tag)') AS "Tag value",
       count(*) AS "Instances",
       count(*) FILTER (WHERE c.usd_per_hour IS NULL) AS "Without price",
       CASE WHEN bool_and(c.usd_per_hour IS NOT NULL OR c.seconds_in_range = 0)
            THEN coalesce(sum(c.seconds_in_range * c.usd_per_hour::float8 / 3600), 0) END AS "Cost in range",
       CASE WHEN bool_and(c.usd_per_hour IS NOT NULL OR c.seconds_to_date = 0)
            THEN coalesce(sum(c.seconds_to_date * c.usd_per_hour::float8 / 3600), 0) END AS "Cost to date"
FROM dashgen.instance_costs($__timeFrom()::timestamptz, $__timeTo()::timestamptz) c
WHERE dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
GROUP BY 1
ORDER BY "Cost in range" DESC NULLS FIRST, 1
