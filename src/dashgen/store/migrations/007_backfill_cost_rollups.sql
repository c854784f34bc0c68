-- The cost-event rollups of migration 003 are kept by triggers from then on, but 003 did not add the runs a
-- store already had: a store synced before 003 showed a cumulative cost of 0 for them (negative once such a run
-- closed). Rebuild both rollups from every run, as the triggers would have built them (on a store whose
-- rollups are right, this writes the same rows again).
TRUNCATE dashgen.cost_events_hourly, dashgen.cost_events_daily;
DO $$
BEGIN
    EXECUTE dashgen.cost_events_sql(
        'SELECT iv.started_at, iv.ended_at, 1 AS weight, i.region, i.instance_type, i.operating_system, i.tenancy,
                i.tags - ''Name'' AS tags
         FROM dashgen.instance_intervals iv JOIN dashgen.instances i ON i.instance_id = iv.instance_id');
END $$;
SELECT dashgen.cost_events_prune();
