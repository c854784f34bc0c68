-- Performance dashboard, "Instances selected": how many instances of the store the region, Account, Tag, Name
-- and Instance choices select, and how many of them the CloudWatch panels leave out because the Metrics Insights
-- clause has no room for them (a hand-picked list longer than about 40 instances: dashgen.insights_where).
SELECT selected AS "Selected", not_drawn AS "Not drawn"
FROM dashgen.insights_selection(${region:sqlstring}, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}]::text[],
                                ARRAY[${name:sqlstring}]::text[], ARRAY[${instance:sqlstring}]::text[],
                                accounts => ARRAY[${account:sqlstring}]::text[])
