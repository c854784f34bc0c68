-- Rightsizing at fleet scale (issue 13): per instance, what sql/rightsizing.sql sizes on, aggregated over its window
-- by `dashgen sync` (dashgen.rightsizing_usage_of, store/functions/65_rightsizing_usage.sql) for the config's
-- pricing.lookback_days and rightsizing.cpu_percentile, as of that sync: refreshed for the instances whose
-- utilisation the sync wrote, whose type changed, whose oldest counted hour left the window, or that have no row.
-- The panel and `dashgen rightsize` read it instead of every stored hour; for another window or percentile (a
-- dashboard variable) they compute the same aggregates from the hours. Derived data: rebuilt by the next sync.
CREATE TABLE dashgen.rightsizing_usage (
    instance_id      text             NOT NULL,
    lookback_days    int              NOT NULL,
    cpu_percentile   double precision NOT NULL,  -- percent (99.5)
    instance_type    text             NOT NULL,  -- the type whose hours these are (the instance's type then)
    window_from      timestamptz      NOT NULL,  -- hours from here on (the sync's time - lookback_days)
    refreshed_at     timestamptz      NOT NULL,  -- the sync's time
    first_hour       timestamptz,                -- the oldest and newest hours counted (NULL: none)
    last_hour        timestamptz,
    hours            bigint           NOT NULL,  -- hours with 5-minute CPU data on instance_type in the window
    n5               bigint,                     -- 5-minute CPU maxima in them
    cpu_avg          double precision,           -- mean of the hourly CPU averages, percent
    cpu_max          double precision,
    cpu_peak         double precision,           -- the percentile of the 5-minute CPU maxima
    busiest_day_avg  double precision,           -- the highest daily mean of the hourly CPU averages (UTC days)
    mem_hours        bigint,
    mem_peak         double precision,           -- the percentile of the hourly memory-used maxima
    net_gbps         double precision,           -- the percentile of the busiest 5 minutes, in or out, Gbit/s
    packets_per_s    double precision,
    ebs_iops         double precision,
    ebs_mbps         double precision,
    surplus_credits  double precision,           -- CPUSurplusCreditsCharged summed over those hours
    PRIMARY KEY (instance_id, lookback_days, cpu_percentile)
);
