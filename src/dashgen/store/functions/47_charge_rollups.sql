-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- The rollup of the charges beside On-Demand (migration 090, issue 13): per instance and whole UTC day before
-- dashgen.rollup_state.through, the surplus credits of its hours and its Spot runs at the Spot prices
-- (dashgen.charge_pieces clipped to the day). dashgen.extra_charges and dashgen.cumulative_cost read those days from
-- it and the rest from the stored rows; tests/test_charge_rollups.py checks both ways give the same figures.
-- The same days of the fleet's hourly CPU per region (dashgen.cpu_hourly_by_region): the performance dashboard's
-- "CPU this week vs. last week" with every instance selected (sql/cpu_last_week.sql).
-- Kept by:
--   dashgen sync       dashgen.roll_up_extra_charges(now) after its write: the days closed since the last one
--                      (every instance), and `through` moved to 00:00 UTC of the sync (never after now());
--                      the utilisation rows it writes for those days: dashgen.roll_up_extra_charges_of and
--                      dashgen.roll_up_cpu_hours (dashgen.sync.cloudwatch.store_hourly);
--   the triggers below  runs (dashgen.instance_intervals) and Spot prices that change inside the rolled-up days.
-- Before any sync rolled up (no state row) or after a TRUNCATE of what it reads, everything is computed live.

-- Recompute the rows of `ids` (NULL: every instance) for the days in [from_day, to_day) (00:00 UTC), and their
-- totals (dashgen.extra_charges_total).
CREATE OR REPLACE FUNCTION dashgen.roll_up_extra_charges_days(ids text[], from_day timestamptz, to_day timestamptz)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM dashgen.extra_charges_daily r
    WHERE r.day >= from_day AND r.day < to_day AND (ids IS NULL OR r.instance_id IN (SELECT unnest(ids)));
    INSERT INTO dashgen.extra_charges_daily (instance_id, day, credits, spot_usd, spot_known_s, spot_unknown_s)
    SELECT x.instance_id, x.day, sum(x.credits), sum(x.usd), sum(x.known_s), sum(x.unknown_s)
    FROM (SELECT u.instance_id, dashgen.utc_floor(u.hour, '24 hours') AS day, u.cpu_surplus_credits_charged AS credits,
                 0::float8 AS usd, 0::float8 AS known_s, 0::float8 AS unknown_s
          FROM dashgen.instance_utilisation_hourly u
          WHERE u.cpu_surplus_credits_charged > 0 AND u.hour >= from_day AND u.hour < to_day
            AND (ids IS NULL OR u.instance_id IN (SELECT unnest(ids)))
          UNION ALL
          SELECT p.instance_id, d.day, 0, coalesce(p.usd_per_s * o.s, 0),
                 CASE WHEN p.usd_per_s IS NOT NULL THEN o.s ELSE 0 END, CASE WHEN p.usd_per_s IS NULL THEN o.s ELSE 0 END
          FROM dashgen.charge_pieces(from_day, to_day, ids) p
          CROSS JOIN LATERAL generate_series(dashgen.utc_floor(greatest(p.piece_from, from_day), '24 hours'),
                                             least(p.piece_to, to_day) - interval '1 microsecond',
                                             interval '24 hours') d(day)
          CROSS JOIN LATERAL (SELECT date_part('epoch', least(p.piece_to, d.day + interval '24 hours', to_day)
                                                        - greatest(p.piece_from, d.day, from_day)) AS s) o
          WHERE p.kind = 'spot') x
    JOIN dashgen.instances i ON i.instance_id = x.instance_id  -- (a row whose instance is gone: none)
    GROUP BY x.instance_id, x.day
;
    -- and their totals
    DELETE FROM dashgen.extra_charges_total t WHERE ids IS NULL OR t.instance_id IN (SELECT unnest(ids));
    INSERT INTO dashgen.extra_charges_total (instance_id, credits, spot_usd, spot_known_s, spot_unknown_s)
    SELECT r.instance_id, sum(r.credits), sum(r.spot_usd), sum(r.spot_known_s), sum(r.spot_unknown_s)
    FROM dashgen.extra_charges_daily r
    WHERE ids IS NULL OR r.instance_id IN (SELECT unnest(ids))
    GROUP BY r.instance_id
$$;

-- Per instance, recompute its days from the day of its own `from` (a changed run, price or utilisation hour) up
-- to `through`; nothing before any sync rolled up.
CREATE OR REPLACE FUNCTION dashgen.roll_up_extra_charges_of(ids text[], froms timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    upto timestamptz := (SELECT through FROM dashgen.rollup_state);
    day0 timestamptz;
    group_ids text[];
BEGIN
    IF upto IS NULL OR ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    -- one pass per distinct first day (usually one or two): every instance from its own day on
    FOR day0, group_ids IN
        SELECT dashgen.utc_floor(greatest(min(f), '2000-01-01'::timestamptz), '24 hours'), array_agg(DISTINCT id)
        FROM (SELECT id, min(f) AS f FROM unnest(ids, froms) AS t(id, f) WHERE f < upto GROUP BY id) x
        GROUP BY dashgen.utc_floor(greatest(x.f, '2000-01-01'::timestamptz), '24 hours')
    LOOP
        PERFORM dashgen.roll_up_extra_charges_days(group_ids, day0, upto);
    END LOOP;
END;
$$;

-- The fleet's hourly CPU per region (dashgen.cpu_hourly_by_region) for the hours in [from_hour, to_hour), and for
-- `hours` (NULL: none), again from the stored rows.
CREATE OR REPLACE FUNCTION dashgen.roll_up_cpu_hours(from_hour timestamptz, to_hour timestamptz, hours timestamptz[])
RETURNS void LANGUAGE sql AS $$
    DELETE FROM dashgen.cpu_hourly_by_region c
    WHERE (c.hour >= from_hour AND c.hour < to_hour) OR c.hour = ANY (coalesce(hours, '{}'));
    INSERT INTO dashgen.cpu_hourly_by_region (region, hour, instances, cpu_avg_sum, cpu_avg_max)
    SELECT i.region, u.hour, count(*), sum(u.cpu_avg), max(u.cpu_avg)
    FROM dashgen.instance_utilisation_hourly u
    JOIN dashgen.instances i ON i.instance_id = u.instance_id
    WHERE ((u.hour >= from_hour AND u.hour < to_hour) OR u.hour = ANY (coalesce(hours, '{}')))
      AND u.cpu_avg IS NOT NULL
    GROUP BY i.region, u.hour
$$;

-- After a sync's write: roll up the days closed since the last time (every instance) and move `through` to
-- 00:00 UTC of `now` (never after the database's now(): a day is rolled up only once it is over).
CREATE OR REPLACE FUNCTION dashgen.roll_up_extra_charges(now_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    since timestamptz := (SELECT through FROM dashgen.rollup_state);
    upto timestamptz := dashgen.utc_floor(least(now_at, now()), '24 hours');
    first timestamptz;
BEGIN
    IF since IS NOT NULL AND since >= upto THEN
        RETURN;
    END IF;
    IF since IS NULL THEN  -- the first time: from the first day anything is charged
        first := least((SELECT min(started_at) FROM dashgen.instance_intervals),
                       (SELECT min(hour) FROM dashgen.instance_utilisation_hourly
                        WHERE cpu_surplus_credits_charged > 0));
        first := least(first, (SELECT min(hour) FROM dashgen.instance_utilisation_hourly));
        since := dashgen.utc_floor(coalesce(least(first, upto), upto), '24 hours');
        DELETE FROM dashgen.extra_charges_daily;
        DELETE FROM dashgen.extra_charges_total;
        DELETE FROM dashgen.cpu_hourly_by_region;
    END IF;
    IF upto > since THEN
        PERFORM dashgen.roll_up_extra_charges_days(NULL, since, upto);
        PERFORM dashgen.roll_up_cpu_hours(since, upto, NULL);
    END IF;
    INSERT INTO dashgen.rollup_state AS s (through) VALUES (upto)
    ON CONFLICT (singleton) DO UPDATE SET through = excluded.through;
END;
$$;

-- Runs of Spot instances inserted, changed or deleted inside the rolled-up days: their days again.
CREATE OR REPLACE FUNCTION dashgen.extra_charges_on_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dashgen.rollup_state) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM dashgen.roll_up_extra_charges_of(array_agg(r.instance_id), array_agg(r.started_at))
        FROM new_runs r JOIN dashgen.instances i ON i.instance_id = r.instance_id AND i.lifecycle = 'spot';
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM dashgen.roll_up_extra_charges_of(array_agg(r.instance_id), array_agg(r.started_at))
        FROM (SELECT instance_id, started_at FROM new_runs UNION ALL SELECT instance_id, started_at FROM old_runs) r
        JOIN dashgen.instances i ON i.instance_id = r.instance_id AND i.lifecycle = 'spot';
    ELSE
        PERFORM dashgen.roll_up_extra_charges_of(array_agg(r.instance_id), array_agg(r.started_at))
        FROM old_runs r JOIN dashgen.instances i ON i.instance_id = r.instance_id AND i.lifecycle = 'spot';
    END IF;
    RETURN NULL;
END;
$$;

-- Spot prices inserted, changed or deleted: the Spot instances of their AZ, type and product description again,
-- from the earliest change (a price applies from its time until the next change).
CREATE OR REPLACE FUNCTION dashgen.extra_charges_on_spot_prices() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM dashgen.rollup_state) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM dashgen.roll_up_extra_charges_of(array_agg(i.instance_id), array_agg(k.since))
        FROM (SELECT availability_zone, instance_type, product_description, min(at) AS since FROM new_prices
              GROUP BY 1, 2, 3) k
        JOIN dashgen.instances i ON (i.availability_zone, i.instance_type, coalesce(i.platform, 'Linux/UNIX'))
                                  = (k.availability_zone, k.instance_type, k.product_description)
                                AND i.lifecycle = 'spot';
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM dashgen.roll_up_extra_charges_of(array_agg(i.instance_id), array_agg(k.since))
        FROM (SELECT availability_zone, instance_type, product_description, min(at) AS since
              FROM (SELECT * FROM new_prices UNION ALL SELECT * FROM old_prices) c GROUP BY 1, 2, 3) k
        JOIN dashgen.instances i ON (i.availability_zone, i.instance_type, coalesce(i.platform, 'Linux/UNIX'))
                                  = (k.availability_zone, k.instance_type, k.product_description)
                                AND i.lifecycle = 'spot';
    ELSE
        PERFORM dashgen.roll_up_extra_charges_of(array_agg(i.instance_id), array_agg(k.since))
        FROM (SELECT availability_zone, instance_type, product_description, min(at) AS since FROM old_prices
              GROUP BY 1, 2, 3) k
        JOIN dashgen.instances i ON (i.availability_zone, i.instance_type, coalesce(i.platform, 'Linux/UNIX'))
                                  = (k.availability_zone, k.instance_type, k.product_description)
                                AND i.lifecycle = 'spot';
    END IF;
    RETURN NULL;
END;
$$;

-- A TRUNCATE of what the rollup reads: no rollup until the next sync (everything computed live).
CREATE OR REPLACE FUNCTION dashgen.extra_charges_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM dashgen.rollup_state;
    DELETE FROM dashgen.extra_charges_daily;
    DELETE FROM dashgen.extra_charges_total;
    DELETE FROM dashgen.cpu_hourly_by_region;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER extra_charges_runs_insert AFTER INSERT ON dashgen.instance_intervals
    REFERENCING NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_on_runs();
CREATE OR REPLACE TRIGGER extra_charges_runs_update AFTER UPDATE ON dashgen.instance_intervals
    REFERENCING NEW TABLE AS new_runs OLD TABLE AS old_runs
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_on_runs();
CREATE OR REPLACE TRIGGER extra_charges_runs_delete AFTER DELETE ON dashgen.instance_intervals
    REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_on_runs();
CREATE OR REPLACE TRIGGER extra_charges_spot_insert AFTER INSERT ON dashgen.spot_prices
    REFERENCING NEW TABLE AS new_prices FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_on_spot_prices();
CREATE OR REPLACE TRIGGER extra_charges_spot_update AFTER UPDATE ON dashgen.spot_prices
    REFERENCING NEW TABLE AS new_prices OLD TABLE AS old_prices
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_on_spot_prices();
CREATE OR REPLACE TRIGGER extra_charges_spot_delete AFTER DELETE ON dashgen.spot_prices
    REFERENCING OLD TABLE AS old_prices FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_on_spot_prices();
CREATE OR REPLACE TRIGGER extra_charges_runs_truncate AFTER TRUNCATE ON dashgen.instance_intervals
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_forget();
CREATE OR REPLACE TRIGGER extra_charges_spot_truncate AFTER TRUNCATE ON dashgen.spot_prices
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_forget();
CREATE OR REPLACE TRIGGER extra_charges_utilisation_truncate AFTER TRUNCATE ON dashgen.instance_utilisation_hourly
    FOR EACH STATEMENT EXECUTE FUNCTION dashgen.extra_charges_forget();
