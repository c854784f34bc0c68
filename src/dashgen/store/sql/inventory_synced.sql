-- Every dashboard, "Inventory synced": when `dashgen sync` last saw the instances of the store (the Tag, Name
-- and Instance choices come from it), as epoch milliseconds for Grafana's "from now" unit.
SELECT extract(epoch FROM max(last_seen)) * 1000 AS "Inventory synced"
FROM dashgen.instances
