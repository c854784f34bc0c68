-- Rightsizing (issue 5): per instance and hour, what CloudWatch GetMetricData reported.
-- Written by dashgen.utilisation (idempotent upsert on (instance_id, hour)); read by sql/rightsizing.sql
-- and sql/experiment_comparison.sql. NULL = CloudWatch had no datapoint for that statistic and hour.
CREATE TABLE dashgen.instance_utilisation_hourly (
    instance_id            text        NOT NULL,
    hour                   timestamptz NOT NULL,
    cpu_avg                double precision,   -- CPUUtilization Average, percent
    cpu_max                double precision,   -- CPUUtilization Maximum, percent
    cpu_p95                double precision,   -- CPUUtilization p95 of the hour, percent
    network_in_bytes       double precision,   -- NetworkIn Sum over the hour
    network_out_bytes      double precision,   -- NetworkOut Sum over the hour
    cpu_credit_balance_min double precision,   -- CPUCreditBalance Minimum (burstable types only)
    progress_pct           double precision,   -- the experiment's progress metric, Maximum (0-100), if any
    PRIMARY KEY (instance_id, hour)
);

CREATE INDEX instance_utilisation_hourly_hour ON dashgen.instance_utilisation_hourly (hour);
