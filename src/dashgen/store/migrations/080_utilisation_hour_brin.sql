-- Fleet-scale sync write (issue 13): the btree on instance_utilisation_hourly (hour) cost about 6 s of the
-- 10,000-instance first sync's write (3.35 M rows COPYed in instance order: every insert lands on a random leaf;
-- bench/scale.py, docs/benchmarks.md). Every reader of the table selects by instance (the primary key
-- (instance_id, hour)) or surplus credits (the partial index of migration 060), except a time range over all
-- instances (the performance dashboard's "CPU this week vs. last week" with every instance selected): a BRIN
-- index on hour serves that range for the hours steady-state syncs append in time order, at almost no cost
-- to the write.
DROP INDEX dashgen.instance_utilisation_hourly_hour;
CREATE INDEX instance_utilisation_hourly_hour_brin ON dashgen.instance_utilisation_hourly
    USING brin (hour) WITH (autosummarize = on);
