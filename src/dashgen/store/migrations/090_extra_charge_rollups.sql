-- Rollups of the charges beside On-Demand (issue 12) for the panels' speed (issue 13), as 003/004 are for
-- On-Demand: per instance and whole UTC day before `rollup_state.through`, what dashgen.charge_pieces gives
-- in that day. Kept by `dashgen sync` (dashgen.roll_up_extra_charges, store/functions/47_charge_rollups.sql);
-- the days from `through` on, and a store no sync has rolled up yet (no state row), are computed from the stored
-- rows at every query. Prices that may change (credit prices, On-Demand) are applied when read, not stored here.
CREATE TABLE dashgen.extra_charges_daily (
    instance_id     text NOT NULL REFERENCES dashgen.instances ON DELETE CASCADE,
    day             timestamptz NOT NULL,     -- 00:00 UTC
    credits         double precision NOT NULL DEFAULT 0,  -- CPUSurplusCreditsCharged of its hours that day
    spot_usd        double precision NOT NULL DEFAULT 0,  -- its Spot runs that day at the known Spot prices
    spot_known_s    double precision NOT NULL DEFAULT 0,  -- seconds of those runs at a known Spot price
    spot_unknown_s  double precision NOT NULL DEFAULT 0,  -- seconds before the first known price (unknown)
    PRIMARY KEY (instance_id, day)
);
CREATE INDEX extra_charges_daily_day ON dashgen.extra_charges_daily (day);

-- The same per instance over every rolled-up day (the figures "to date" read one row per instance).
CREATE TABLE dashgen.extra_charges_total (
    instance_id     text PRIMARY KEY REFERENCES dashgen.instances ON DELETE CASCADE,
    credits         double precision NOT NULL DEFAULT 0,
    spot_usd        double precision NOT NULL DEFAULT 0,
    spot_known_s    double precision NOT NULL DEFAULT 0,
    spot_unknown_s  double precision NOT NULL DEFAULT 0
);

-- The fleet's hourly CPU per region (the performance dashboard's "CPU this week vs. last week" with every instance
-- of a region selected): the instances with a stored hourly average, its sum and its highest, per hour before
-- `through`.
CREATE TABLE dashgen.cpu_hourly_by_region (
    region       text NOT NULL,
    hour         timestamptz NOT NULL,
    instances    int NOT NULL,
    cpu_avg_sum  double precision NOT NULL,
    cpu_avg_max  double precision NOT NULL,
    PRIMARY KEY (region, hour)
);

-- One row: both rollups hold every day before `through` (00:00 UTC of the last sync that rolled them up).
CREATE TABLE dashgen.rollup_state (
    singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
    through   timestamptz NOT NULL
);

-- The hours charged surplus credits, by hour: the part of a range after the rolled-up days (dashgen.extra_charges).
CREATE INDEX instance_utilisation_hourly_credit_hours ON dashgen.instance_utilisation_hourly (hour)
    INCLUDE (instance_id, cpu_surplus_credits_charged) WHERE cpu_surplus_credits_charged > 0;

-- The Spot instances (a few of the fleet): the runs whose charges are read from the rows.
CREATE INDEX instances_spot ON dashgen.instances (instance_id) WHERE lifecycle = 'spot';

-- The surplus credits of each burstable instance's hours by time, with their value (NULL for other types): the
-- burn rate's last stored hour (dashgen.instance_charge_basis, one probe per instance) reads the index only. It
-- serves the hours charged (> 0) of migration 060's index as well, which it replaces.
CREATE INDEX instance_utilisation_hourly_credits_stored ON dashgen.instance_utilisation_hourly (instance_id, hour)
    INCLUDE (cpu_surplus_credits_charged) WHERE cpu_surplus_credits_charged IS NOT NULL;
DROP INDEX dashgen.instance_utilisation_hourly_credits;
