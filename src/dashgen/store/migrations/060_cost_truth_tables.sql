-- Cost that matches the bill (issue 12), the tables: T-instance surplus credits, Spot prices, billed cost (CUR).
-- Functions and views that read them: 061_cost_truth_functions.sql.

-- What `dashgen sync` reads beside the inventory: the purchase option (DescribeInstances InstanceLifecycle:
-- 'spot', 'scheduled', 'capacity-block'; absent = On-Demand), the Availability Zone (Spot prices are per AZ) and,
-- for burstable types, DescribeInstanceCreditSpecifications' CpuCredits ('standard' | 'unlimited';
-- NULL = not burstable, or not readable: unknown).
ALTER TABLE dashgen.instances
    ADD COLUMN lifecycle text NOT NULL DEFAULT 'on-demand',
    ADD COLUMN availability_zone text,
    ADD COLUMN credit_mode text CHECK (credit_mode IN ('standard', 'unlimited')),
    ADD COLUMN credit_mode_at timestamptz;  -- the sync that read credit_mode

-- CloudWatch AWS/EC2 CPUSurplusCreditsCharged, Sum over the hour: surplus credits AWS charged that hour
-- (1 credit = 1 vCPU-minute; charged at the credit price per vCPU-hour).
ALTER TABLE dashgen.instance_utilisation_hourly ADD COLUMN cpu_surplus_credits_charged double precision;
CREATE INDEX instance_utilisation_hourly_credits ON dashgen.instance_utilisation_hourly (instance_id, hour)
    INCLUDE (cpu_surplus_credits_charged) WHERE cpu_surplus_credits_charged > 0;

-- USD per vCPU-hour of surplus credits, per region, burstable family (t2, t3, t3a, t4g) and operating system:
-- from the Price List API (productFamily "CPU Credits", usagetype [REGION-]CPUCredits:<family>) or the bundled
-- fallback (source 'bundled-fallback', us-east-1 Linux only). NULL = unknown, never 0.
CREATE TABLE dashgen.credit_prices (
    region               text NOT NULL,
    family               text NOT NULL,
    operating_system     text NOT NULL,
    usd_per_vcpu_hour    numeric CHECK (usd_per_vcpu_hour IS NULL OR usd_per_vcpu_hour > 0),
    source               text NOT NULL CHECK (source IN ('aws-price-list-api', 'bundled-fallback')),
    price_date           date,
    fetched_at           timestamptz NOT NULL,
    PRIMARY KEY (region, family, operating_system)
);

-- DescribeSpotPriceHistory: the Spot price of a type in an AZ for a product description (the instance's
-- PlatformDetails: 'Linux/UNIX', 'Windows', 'Red Hat Enterprise Linux', 'SUSE Linux'), from `at` until the next
-- row of the same key.
CREATE TABLE dashgen.spot_prices (
    availability_zone   text NOT NULL,
    instance_type       text NOT NULL,
    product_description text NOT NULL,
    at                  timestamptz NOT NULL,
    usd_per_hour        numeric NOT NULL CHECK (usd_per_hour >= 0),
    region              text NOT NULL,
    PRIMARY KEY (availability_zone, instance_type, product_description, at)
);

-- Billed cost per instance and line-item span, read by `dashgen sync --cur s3://...` from AWS's CUR 2.0 / Data
-- Exports Parquet files: the usage line items of EC2 instances (line_item_resource_id = the instance id), summed per
-- instance and line_item_usage_start_date (hourly exports: one row an hour).
--   list_usd     sum of line_item_unblended_cost: the rate card (On-Demand, Spot, CPU credits; a Savings-Plan-covered
--                line at its On-Demand cost);
--   billed_usd   what was paid after Savings Plans and Reserved Instances: savings_plan_savings_plan_effective_cost
--                for SavingsPlanCoveredUsage, reservation_effective_cost for DiscountedUsage, else the unblended cost.
CREATE TABLE dashgen.billed_costs (
    instance_id   text NOT NULL,
    usage_start   timestamptz NOT NULL,
    usage_end     timestamptz NOT NULL CHECK (usage_end > usage_start),
    list_usd      numeric NOT NULL,
    billed_usd    numeric NOT NULL,
    line_items    int NOT NULL,
    pricing_terms text,           -- the distinct pricing_term values of its line items ('OnDemand', 'Spot', ...)
    loaded_at     timestamptz NOT NULL,
    PRIMARY KEY (instance_id, usage_start)
);
CREATE INDEX billed_costs_end ON dashgen.billed_costs (usage_end);
