-- Rightsizing on every resource (issue 16): what an instance type offers, from EC2 DescribeInstanceTypes
-- (dashgen.instance_facts, refreshed daily by `dashgen sync`), else from the bundled snapshot (the offline
-- fallback, `source` says which). NULL = unknown; the rule never recommends a type whose facts it lacks.
ALTER TABLE dashgen.instance_types
    ADD COLUMN gpu_model             text,     -- GpuInfo.Gpus[].Name (distinct, '+'-joined)
    ADD COLUMN gpu_memory_mib        int,      -- GpuInfo.TotalGpuMemoryInMiB
    ADD COLUMN neuron_devices        int,      -- NeuronInfo.NeuronDevices[].Count (Trainium, Inferentia)
    ADD COLUMN neuron_model          text,     -- NeuronInfo.NeuronDevices[].Name
    ADD COLUMN neuron_memory_mib     int,      -- NeuronInfo.TotalNeuronDeviceMemoryInMiB
    ADD COLUMN other_accelerators    int,      -- FPGAs, media accelerators, Inferentia 1 without NeuronInfo
    ADD COLUMN network_performance   text,     -- NetworkInfo.NetworkPerformance ("Up to 12.5 Gigabit")
    ADD COLUMN network_baseline_gbps numeric,  -- sum of NetworkInfo.NetworkCards[].BaselineBandwidthInGbps
    ADD COLUMN network_peak_gbps     numeric,  -- sum of NetworkInfo.NetworkCards[].PeakBandwidthInGbps
    ADD COLUMN ebs_baseline_mbps     numeric,  -- EbsInfo.EbsOptimizedInfo.BaselineThroughputInMBps (MB/s)
    ADD COLUMN ebs_max_mbps          numeric,  -- EbsInfo.EbsOptimizedInfo.MaximumThroughputInMBps
    ADD COLUMN ebs_baseline_iops     int,      -- EbsInfo.EbsOptimizedInfo.BaselineIops
    ADD COLUMN ebs_max_iops          int,      -- EbsInfo.EbsOptimizedInfo.MaximumIops
    ADD COLUMN instance_storage_gb   int,      -- InstanceStorageInfo.TotalSizeInGB (0: EBS only)
    ADD COLUMN burst_baseline_pct    numeric,  -- burstable: baseline utilisation per vCPU (T-instance credit table)
    ADD COLUMN burst_credits_per_hour numeric, -- burstable: CPU credits earned per hour (same table)
    ADD COLUMN source                text NOT NULL DEFAULT 'bundled-snapshot'
        CHECK (source IN ('aws-describe-instance-types', 'bundled-snapshot')),
    ADD COLUMN fetched_at            timestamptz,  -- when DescribeInstanceTypes said so (NULL: bundled)
    -- the class a cheaper family must share: the family's leading letters ('m7i' -> 'm', 'inf2' -> 'inf')
    ADD COLUMN class                 text GENERATED ALWAYS AS (substring(family FROM '^[a-z]+')) STORED;
CREATE INDEX instance_types_family ON dashgen.instance_types (family);
CREATE INDEX instance_types_class ON dashgen.instance_types (class, vcpu);

-- Per hour, what the rule sizes on (5-minute resolution, as Compute Optimizer), and the type the hour ran on:
-- a resize starts a new window. NULL instance_type = not known (written before this migration, or an hour
-- before the current launch of an instance new to the store); such hours are not counted.
ALTER TABLE dashgen.instance_utilisation_hourly
    ADD COLUMN instance_type      text,
    ADD COLUMN cpu_max_5m         real[],            -- the hour's twelve 5-minute CPUUtilization Maxima (NULL: none)
    ADD COLUMN cpu_peak_5m        real,              -- the largest of them, and how many there are (written with
    ADD COLUMN cpu_count_5m       smallint,          -- the array: the percentile reads only the top hours)
    ADD COLUMN mem_used_max       double precision,  -- CWAgent mem_used_percent Maximum (NULL: not measured)
    ADD COLUMN network_in_max_5m  double precision,  -- NetworkIn bytes in the hour's busiest 5 minutes
    ADD COLUMN network_out_max_5m double precision,  -- NetworkOut bytes in the hour's busiest 5 minutes
    ADD COLUMN packets_max_5m     double precision,  -- NetworkPacketsIn + Out in the busiest 5 minutes
    ADD COLUMN ebs_ops_max_5m     double precision,  -- EBSReadOps + EBSWriteOps in the busiest 5 minutes
    ADD COLUMN ebs_bytes_max_5m   double precision;  -- EBSReadBytes + EBSWriteBytes in the busiest 5 minutes
