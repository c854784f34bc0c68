-- The straightforward formulation of sql/rightsizing.sql (every instance paired with every candidate type, the risk
-- per resource row), kept as the reference tests/test_rightsizing_credits.py checks the fast one against: the same
-- rows. Not shipped.
-- dashgen rightsizing: one row per instance, the right size in its family and a cheaper family, with the risk.
-- One implementation, two views: the "Rightsizing" panel of ec2-rightsizing.json embeds this text verbatim
-- and `dashgen rightsize` runs it with the same variables bound as parameters (dashgen.sqlvars).
-- Rule (docs/rightsizing.md, beside Compute Optimizer's):
--   facts       dashgen.instance_types: DescribeInstanceTypes (sync, daily), else the bundled snapshot;
--               an instance whose type has no facts is "not analysed";
--   instances   not terminated (nor shutting down) and seen by the last sync of their region;
--   window      the last lookback_days days of dashgen.instance_utilisation_hourly, only the hours that ran on
--               the current type (a resize starts a new window); at least 30 hours, else "not enough data";
--   peak        the cpu_percentile (default P99.5) of the 5-minute CPU maxima; of the hourly busiest-5-minute
--               network bytes (in or out), EBS operations and bytes, and memory (CloudWatch agent) likewise;
--   target      cpu_threshold x (1 - headroom_pct / 100)   (80 % x (1 - 20 %) = 64 % by default);
--   needed      each peak / target: vCPUs, memory (only when measured, else the current memory: it never
--               shrinks), network Gbit/s against the BASELINE bandwidth, EBS IOPS and MB/s against the EBS
--               baseline; burstable types also: the busiest day's average CPU (in vCPUs) at most their
--               baseline (credits absorb the peaks, the average must not spend more than is earned);
--   kept        GPUs (count, model, memory), Neuron devices (count, model, memory), other accelerators (their
--               utilisation is not measured) and the instance-store size (at least);
--   in family   the smallest type of the same family and architecture meeting all of it (not bare metal);
--   verdict     under-provisioned when the current type does not meet it, over-provisioned when a smaller one
--               does, else right-sized;
--   cheaper     the cheapest type of another family of the same class (a burstable type may also move to a
--               general-purpose m type) meeting all of it, cheaper than the in-family one; migration says when
--               the architecture (x86_64 -> arm64) or the family changes;
--   risk        per resource, its peak / the type's capacity: <= 50 % 0, <= target 1, <= threshold 2, <= 100 %
--               3, above 4; a type's risk is the worst resource's, limited_by names it;
--   credits     an unlimited burstable instance (or one whose mode is unknown) costs now its price plus the surplus
--               credits CloudWatch says it was charged in the window (CPUSurplusCreditsCharged per hour / 60
--               vCPU-hours x its family's credit price, dashgen.credit_prices); standard mode: none. A candidate
--               costs its price plus the surplus the load would be charged on it: max(0, vCPUs x average CPU -
--               its vCPUs x its baseline %) x its family's credit price (none in standard mode, none for other
--               types); one size up names the next size of the family when that costs less than now;
--   saving      ($/hour now - estimated $/hour recommended) x 730 hours a month, credits included. Prices: the
--               instance's region, OS, tenancy.
--   speed       the per-instance aggregates come from dashgen.rightsizing_usage (kept by sync for the config's window
--               and percentile, as of that sync), else dashgen.rightsizing_usage_of computes them from the hours.
WITH params AS (
    SELECT ${cpu_threshold:sqlstring}::numeric * (1 - ${headroom_pct:sqlstring}::numeric / 100) AS target_pct,
           ${cpu_threshold:sqlstring}::numeric AS threshold_pct,
           ${cpu_percentile:sqlstring}::float8 AS percentile,
           ${lookback_days:sqlstring}::int AS lookback_days,
           ${lookback_days:sqlstring}::int * 24 AS window_hours,
           30 AS min_hours
),
latest AS (
    SELECT region, max(last_seen) AS last_seen FROM dashgen.instances GROUP BY region
),
inst AS (
    SELECT c.instance_id, c.name, c.tags, c.region, c.operating_system, c.tenancy, c.instance_type, c.usd_per_hour,
           i.credit_mode AS credit_mode_read
    FROM dashgen.instance_cost_basis c
    JOIN dashgen.instances i USING (instance_id)
    JOIN latest l ON l.region = i.region
    WHERE c.state NOT IN ('terminated', 'shutting-down') AND i.last_seen >= l.last_seen
      AND dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}],
                           ARRAY[${name:sqlstring}])
),
usage AS (  -- per instance, the aggregates of its window (dashgen.rightsizing_usage_of): those sync keeps in
           -- dashgen.rightsizing_usage for the config's window and percentile (as of that sync), else computed now
    SELECT s.instance_id, s.hours, s.n5, s.cpu_avg, s.cpu_max, s.mem_hours, s.mem_peak, s.net_gbps, s.packets_per_s,
           s.ebs_iops, s.ebs_mbps, s.cpu_peak, s.busiest_day_avg, s.surplus_credits
    FROM inst
    CROSS JOIN params
    JOIN dashgen.rightsizing_usage s
      ON s.instance_id = inst.instance_id AND s.instance_type = inst.instance_type
     AND s.lookback_days = params.lookback_days AND s.cpu_percentile = params.percentile
    UNION ALL
    SELECT u.instance_id, u.hours, u.n5, u.cpu_avg, u.cpu_max, u.mem_hours, u.mem_peak, u.net_gbps, u.packets_per_s,
           u.ebs_iops, u.ebs_mbps, u.cpu_peak, u.busiest_day_avg, u.surplus_credits
    FROM params
    CROSS JOIN LATERAL dashgen.rightsizing_usage_of(ARRAY(
        SELECT inst.instance_id FROM inst
        WHERE NOT EXISTS (SELECT FROM dashgen.rightsizing_usage s
                          WHERE s.instance_id = inst.instance_id AND s.instance_type = inst.instance_type
                            AND s.lookback_days = params.lookback_days AND s.cpu_percentile = params.percentile)),
        params.percentile, params.lookback_days, now()) u
),
cur AS (
    SELECT inst.*, t.source AS facts_source, t.family, t.class, t.arch, t.vcpu, t.memory_mib, coalesce(t.burstable, false) AS burstable,
           coalesce(t.gpus, 0) AS gpus, t.gpu_model, t.gpu_memory_mib, coalesce(t.neuron_devices, 0) AS neuron_devices,
           t.neuron_model, t.neuron_memory_mib, coalesce(t.other_accelerators, 0) AS other_accelerators,
           coalesce(t.instance_storage_gb, 0) AS instance_storage_gb,
           t.vcpu IS NOT NULL AND t.memory_mib IS NOT NULL AS has_facts,
           CASE WHEN coalesce(t.burstable, false) THEN coalesce(inst.credit_mode_read, 'unknown') END AS credit_mode,
           cp.usd_per_vcpu_hour AS credit_price,
           -- surplus credits charged now: CloudWatch's per hour of the window, in vCPU-hours (60 credits each), at
           -- the family's price; 0 in standard mode (AWS charges none) and for other types; NULL: price unknown
           CASE WHEN NOT coalesce(t.burstable, false) OR inst.credit_mode_read = 'standard'
                     OR coalesce(u.surplus_credits, 0) = 0 THEN 0
                ELSE (u.surplus_credits / u.hours / 60 * cp.usd_per_vcpu_hour::float8)::numeric END
               AS credit_usd_per_hour,
           coalesce(u.hours, 0) AS hours, u.surplus_credits, u.cpu_avg, u.cpu_peak, u.cpu_max, u.net_gbps, u.packets_per_s,
           u.ebs_iops, u.ebs_mbps,
           u.mem_hours >= params.min_hours AS mem_measured,
           CASE WHEN u.mem_hours >= params.min_hours THEN u.mem_peak END AS mem_peak,
           t.vcpu * u.cpu_peak / 100 AS used_vcpu,
           t.vcpu * u.busiest_day_avg / 100 AS sustained_vcpu,
           t.vcpu * u.cpu_peak / nullif(params.target_pct, 0) AS needed_vcpu,
           CASE WHEN u.mem_hours >= params.min_hours THEN t.memory_mib * u.mem_peak / nullif(params.target_pct, 0)
                ELSE t.memory_mib END AS needed_memory_mib,
           u.net_gbps * 100 / nullif(params.target_pct, 0) AS needed_gbps,
           u.ebs_iops * 100 / nullif(params.target_pct, 0) AS needed_iops,
           u.ebs_mbps * 100 / nullif(params.target_pct, 0) AS needed_mbps,
           t.vcpu IS NOT NULL AND t.memory_mib IS NOT NULL AND coalesce(u.hours, 0) >= params.min_hours
               AND u.cpu_peak IS NOT NULL AS analysable
    FROM inst
    LEFT JOIN dashgen.instance_types t USING (instance_type)
    LEFT JOIN usage u USING (instance_id)
    LEFT JOIN dashgen.credit_prices cp
           ON (cp.region, cp.family, cp.operating_system) = (inst.region, t.family, inst.operating_system)
    CROSS JOIN params
),
pool AS MATERIALIZED (  -- every size of the family; other families of the class up to twice the vCPUs, and for a
                       -- burstable type the non-burstable m types of its architecture with half to twice its
                       -- vCPUs (the prices sync reads: dashgen.rightsize.rightsizing_price_keys)
    SELECT cur.instance_id, t.*
    FROM cur JOIN dashgen.instance_types t ON t.family = cur.family
    WHERE cur.analysable
    UNION ALL
    SELECT cur.instance_id, t.*
    FROM cur
    CROSS JOIN LATERAL (VALUES (cur.class), (CASE WHEN cur.burstable THEN 'm' END)) AS k(class)
    JOIN dashgen.instance_types t
      ON t.class = k.class AND t.family <> cur.family
     AND t.vcpu >= cur.needed_vcpu AND t.vcpu <= 2 * greatest(cur.vcpu, cur.needed_vcpu)
     AND (k.class <> 'm' OR NOT cur.burstable
          OR (NOT coalesce(t.burstable, false) AND t.arch = cur.arch AND 2 * t.vcpu >= cur.vcpu))
    WHERE cur.analysable
),
candidates AS (  -- the pool's types that meet every need, at their estimated cost: the price, plus for a burstable
                 -- type (unless the instance runs in standard mode) the surplus credits the load would be charged:
                 -- max(0, the vCPUs used on average - the type's baseline vCPUs) x its family's credit price
    SELECT cur.instance_id, t.instance_type, t.family, t.arch, t.vcpu, t.memory_mib,
           coalesce(t.burstable, false) AS burstable, p.usd_per_hour,
           p.usd_per_hour + (e.surplus_vcpu * e.price)::numeric AS est_usd_per_hour
    FROM pool t
    JOIN cur USING (instance_id)
    LEFT JOIN dashgen.instance_prices p
      ON p.region = cur.region AND p.instance_type = t.instance_type
     AND p.operating_system = cur.operating_system AND p.tenancy = cur.tenancy
    LEFT JOIN dashgen.credit_prices cp
      ON (cp.region, cp.family, cp.operating_system) = (cur.region, t.family, cur.operating_system)
    CROSS JOIN LATERAL (
        SELECT s.surplus_vcpu, CASE WHEN s.surplus_vcpu = 0 THEN 0 ELSE cp.usd_per_vcpu_hour::float8 END AS price
        FROM (SELECT CASE WHEN NOT coalesce(t.burstable, false) OR cur.credit_mode_read = 'standard' THEN 0
                          ELSE greatest(0, cur.vcpu * cur.cpu_avg / 100 - t.vcpu * t.burst_baseline_pct::float8 / 100)
                     END AS surplus_vcpu) s
    ) e
    WHERE NOT coalesce(t.bare_metal, false)
      AND t.vcpu >= cur.needed_vcpu
      AND t.memory_mib >= cur.needed_memory_mib
      AND coalesce(t.gpus, 0) = cur.gpus AND coalesce(t.gpu_model, '') = coalesce(cur.gpu_model, '')
      AND coalesce(t.gpu_memory_mib, 0) >= coalesce(cur.gpu_memory_mib, 0)
      AND coalesce(t.neuron_devices, 0) = cur.neuron_devices
      AND coalesce(t.neuron_model, '') = coalesce(cur.neuron_model, '')
      AND coalesce(t.neuron_memory_mib, 0) >= coalesce(cur.neuron_memory_mib, 0)
      AND coalesce(t.other_accelerators, 0) = cur.other_accelerators
      AND coalesce(t.instance_storage_gb, 0) >= cur.instance_storage_gb
      AND coalesce(t.network_baseline_gbps, 0) >= coalesce(cur.needed_gbps, 0)
      AND coalesce(t.ebs_baseline_iops, 0) >= coalesce(cur.needed_iops, 0)
      AND coalesce(t.ebs_baseline_mbps, 0) >= coalesce(cur.needed_mbps, 0)
      AND (NOT coalesce(t.burstable, false)
           OR t.vcpu * t.burst_baseline_pct / 100 >= coalesce(cur.sustained_vcpu, 0))
),
in_family AS (
    SELECT DISTINCT ON (c.instance_id) c.*
    FROM candidates c JOIN cur USING (instance_id)
    WHERE c.family = cur.family AND c.arch = cur.arch
    ORDER BY c.instance_id, c.vcpu, c.memory_mib, c.est_usd_per_hour NULLS LAST, c.instance_type
),
cheapest_other AS (  -- the cheapest type of another family; "cheaper" only if below the in-family estimate
    SELECT DISTINCT ON (c.instance_id) c.*
    FROM candidates c
    JOIN cur USING (instance_id)
    WHERE c.family <> cur.family
      AND (cur.burstable OR NOT c.burstable)
      AND c.est_usd_per_hour IS NOT NULL
    ORDER BY c.instance_id, c.est_usd_per_hour, c.vcpu, c.instance_type
),
cheaper AS (
    SELECT o.*
    FROM cheapest_other o
    JOIN cur USING (instance_id)
    LEFT JOIN in_family f USING (instance_id)
    WHERE o.est_usd_per_hour < coalesce(f.est_usd_per_hour, cur.usd_per_hour + cur.credit_usd_per_hour)
),
size_up AS (  -- an unlimited (or unknown-mode) burstable instance: the next size of its family and architecture, at
              -- its estimated cost (as the candidates'), when that is below what the instance costs now
    SELECT u.*
    FROM (SELECT DISTINCT ON (cur.instance_id) cur.instance_id, t.instance_type,
                 p.usd_per_hour + CASE WHEN s.surplus_vcpu = 0 THEN 0
                                       ELSE (s.surplus_vcpu * cp.usd_per_vcpu_hour::float8)::numeric END
                     AS est_usd_per_hour
          FROM cur
          JOIN dashgen.instance_types t
            ON t.family = cur.family AND t.arch = cur.arch AND (t.vcpu, t.memory_mib) > (cur.vcpu, cur.memory_mib)
           AND NOT coalesce(t.bare_metal, false)
          LEFT JOIN dashgen.instance_prices p
            ON p.region = cur.region AND p.instance_type = t.instance_type
           AND p.operating_system = cur.operating_system AND p.tenancy = cur.tenancy
          LEFT JOIN dashgen.credit_prices cp
            ON (cp.region, cp.family, cp.operating_system) = (cur.region, t.family, cur.operating_system)
          CROSS JOIN LATERAL (SELECT greatest(0, cur.vcpu * cur.cpu_avg / 100
                                                 - t.vcpu * t.burst_baseline_pct::float8 / 100) AS surplus_vcpu) s
          WHERE cur.analysable AND cur.burstable AND cur.credit_mode IS DISTINCT FROM 'standard'
            AND cur.credit_usd_per_hour > 0
          ORDER BY cur.instance_id, t.vcpu, t.memory_mib, t.instance_type) u
    JOIN cur USING (instance_id)
    WHERE u.est_usd_per_hour < cur.usd_per_hour + cur.credit_usd_per_hour
),
current_fits AS (
    SELECT DISTINCT c.instance_id FROM candidates c JOIN cur USING (instance_id)
    WHERE c.instance_type = cur.instance_type
),
picked AS (
    SELECT cur.instance_id, k.kind, k.instance_type
    FROM cur
    LEFT JOIN in_family f USING (instance_id)
    LEFT JOIN cheaper ch USING (instance_id)
    CROSS JOIN LATERAL (VALUES ('current', cur.instance_type), ('family', f.instance_type),
                               ('cheaper', ch.instance_type)) AS k(kind, instance_type)
    WHERE cur.analysable AND k.instance_type IS NOT NULL
),
assessed AS (
    SELECT p.instance_id, p.kind, r.resource, r.ratio
    FROM picked p
    JOIN cur USING (instance_id)
    JOIN dashgen.instance_types t ON t.instance_type = p.instance_type
    CROSS JOIN LATERAL (VALUES
        ('CPU', cur.used_vcpu / nullif(t.vcpu, 0)),
        ('memory', cur.memory_mib * cur.mem_peak / 100 / nullif(t.memory_mib, 0)),
        ('network', cur.net_gbps / nullif(t.network_baseline_gbps, 0)),
        ('EBS IOPS', cur.ebs_iops / nullif(t.ebs_baseline_iops, 0)),
        ('EBS throughput', cur.ebs_mbps / nullif(t.ebs_baseline_mbps, 0)),
        ('CPU credits', CASE WHEN t.burstable THEN cur.sustained_vcpu / nullif(t.vcpu * t.burst_baseline_pct / 100, 0) END)
    ) AS r(resource, ratio)
    WHERE r.ratio IS NOT NULL
),
risk AS (
    SELECT DISTINCT ON (a.instance_id, a.kind) a.instance_id, a.kind, a.resource, a.ratio,
           CASE WHEN a.ratio <= 0.5 THEN 0 WHEN a.ratio * 100 <= params.target_pct THEN 1
                WHEN a.ratio * 100 <= params.threshold_pct THEN 2 WHEN a.ratio <= 1 THEN 3 ELSE 4 END AS risk
    FROM assessed a CROSS JOIN params
    ORDER BY a.instance_id, a.kind, a.ratio DESC, a.resource
),
over_target AS (
    SELECT a.instance_id,
           string_agg(CASE WHEN a.resource = 'CPU credits'
                           THEN format('busiest day''s CPU at %s%% of the credit baseline',
                                       round((a.ratio * 100)::numeric))
                           ELSE format('%s at %s%%', a.resource, round((a.ratio * 100)::numeric)) END, ', '
                      ORDER BY a.ratio DESC, a.resource) AS resources
    FROM assessed a CROSS JOIN params
    WHERE a.kind = 'current'
      AND CASE WHEN a.resource = 'CPU credits' THEN a.ratio > 1 ELSE a.ratio * 100 > params.target_pct END
    GROUP BY a.instance_id
)
SELECT cur.instance_id,
       cur.name,
       (SELECT string_agg(key || '=' || value, ', ' ORDER BY key)
          FROM jsonb_each_text(cur.tags) WHERE key <> 'Name') AS tags,
       cur.instance_type,
       cur.vcpu,
       cur.memory_mib,
       CASE WHEN cur.has_facts THEN cur.facts_source END AS facts_source,
       round(cur.usd_per_hour, 4) AS usd_per_hour,
       cur.credit_mode,
       round(cur.credit_usd_per_hour, 4) AS credit_usd_per_hour,
       round(cur.usd_per_hour + cur.credit_usd_per_hour, 4) AS cost_usd_per_hour,
       cur.hours,
       round(100.0 * cur.hours / params.window_hours, 1) AS coverage_pct,
       round(cur.cpu_avg::numeric, 1) AS cpu_avg,
       round(cur.cpu_peak::numeric, 1) AS cpu_peak,
       round(cur.cpu_max::numeric, 1) AS cpu_max,
       round(cur.mem_peak::numeric, 1) AS memory_peak,
       round(cur.net_gbps::numeric, 3) AS network_gbps,
       round(cur.ebs_iops::numeric) AS ebs_iops,
       round(cur.ebs_mbps::numeric, 1) AS ebs_mbps,
       round(cur.needed_vcpu::numeric, 2) AS needed_vcpu,
       CASE WHEN NOT cur.has_facts THEN 'not analysed'
            WHEN cur.hours = 0 THEN 'no data'
            WHEN NOT cur.analysable THEN 'not enough data'
            WHEN cf.instance_id IS NULL THEN 'under-provisioned'
            WHEN f.instance_type <> cur.instance_type THEN 'over-provisioned'
            ELSE 'right-sized' END AS verdict,
       rc.risk AS current_risk,
       f.instance_type AS recommended_type,
       round(f.est_usd_per_hour, 4) AS recommended_usd_per_hour,
       round((cur.usd_per_hour + cur.credit_usd_per_hour - f.est_usd_per_hour) * 730, 2) AS monthly_saving_usd,
       rf.risk,
       rf.resource AS limited_by,
       concat_ws('; ',
           CASE WHEN NOT cur.has_facts
                THEN format('no instance facts for %s (not in DescribeInstanceTypes nor the bundled snapshot)',
                            cur.instance_type) END,
           CASE WHEN cur.has_facts AND NOT cur.analysable
                THEN format('%s h of data on %s in the window, %s needed', cur.hours, cur.instance_type,
                            params.min_hours) END,
           CASE WHEN cur.credit_mode = 'unknown' AND coalesce(cur.surplus_credits, 0) > 0
                THEN 'credit mode unknown (DescribeInstanceCreditSpecifications not read): the surplus credits '
                     'CloudWatch says were charged are counted' END,
           CASE WHEN cur.credit_usd_per_hour > 0
                THEN format('surplus credits now $%s/hour (%s vCPU-hours an hour at $%s)',
                            round(cur.credit_usd_per_hour, 4),
                            round((cur.surplus_credits / cur.hours / 60)::numeric, 2), cur.credit_price)
                WHEN cur.credit_usd_per_hour IS NULL
                THEN format('surplus credits charged, at an unknown price (no %s credit price for %s %s)',
                            cur.family, cur.region, cur.operating_system) END,
           CASE WHEN su.instance_type IS NOT NULL
                THEN format('cheaper one size up: %s at $%s/hour with its surplus credits, $%s/month less',
                            su.instance_type, round(su.est_usd_per_hour, 4),
                            round((cur.usd_per_hour + cur.credit_usd_per_hour - su.est_usd_per_hour) * 730, 2)) END,
           CASE WHEN cur.analysable AND ot.resources IS NOT NULL
                THEN format('on %s: %s (target %s%%)', cur.instance_type, ot.resources,
                            round(params.target_pct, 1)) END,
           CASE WHEN cur.analysable AND f.instance_type IS NULL THEN 'no type of the family meets the load' END,
           CASE WHEN rf.resource IS NOT NULL
                THEN format('limited by %s (%s%% of %s)', rf.resource, round((rf.ratio * 100)::numeric),
                            f.instance_type) END,
           CASE WHEN cur.analysable AND NOT coalesce(cur.mem_measured, false)
                THEN format('memory not measured (kept at %s GiB)', round(cur.memory_mib / 1024.0, 1)) END,
           CASE WHEN cur.gpus > 0 THEN format('GPUs kept: %s x %s', cur.gpus, cur.gpu_model) END,
           CASE WHEN cur.neuron_devices > 0
                THEN format('Neuron devices kept: %s x %s', cur.neuron_devices, cur.neuron_model) END,
           CASE WHEN cur.other_accelerators > 0 THEN format('accelerators kept: %s', cur.other_accelerators) END,
           CASE WHEN cur.instance_storage_gb > 0
                THEN format('instance store kept: %s GB', cur.instance_storage_gb) END
       ) AS reasons,
       ch.instance_type AS cheaper_type,
       round(ch.est_usd_per_hour, 4) AS cheaper_usd_per_hour,
       round((cur.usd_per_hour + cur.credit_usd_per_hour - ch.est_usd_per_hour) * 730, 2) AS cheaper_monthly_saving_usd,
       rch.risk AS cheaper_risk,
       CASE WHEN ch.arch <> cur.arch THEN format('architecture %s -> %s (rebuild for %s)', cur.arch, ch.arch,
                                                 ch.arch)
            WHEN ch.instance_type IS NOT NULL THEN format('family %s -> %s', cur.family, ch.family) END
           AS cheaper_migration,
       su.instance_type AS size_up_type,
       round(su.est_usd_per_hour, 4) AS size_up_usd_per_hour,
       round((cur.usd_per_hour + cur.credit_usd_per_hour - su.est_usd_per_hour) * 730, 2) AS size_up_monthly_saving_usd
FROM cur
CROSS JOIN params
LEFT JOIN in_family f USING (instance_id)
LEFT JOIN cheaper ch USING (instance_id)
LEFT JOIN size_up su USING (instance_id)
LEFT JOIN current_fits cf USING (instance_id)
LEFT JOIN risk rc ON rc.instance_id = cur.instance_id AND rc.kind = 'current'
LEFT JOIN risk rf ON rf.instance_id = cur.instance_id AND rf.kind = 'family'
LEFT JOIN risk rch ON rch.instance_id = cur.instance_id AND rch.kind = 'cheaper'
LEFT JOIN over_target ot ON ot.instance_id = cur.instance_id
ORDER BY monthly_saving_usd DESC NULLS LAST, cheaper_monthly_saving_usd DESC NULLS LAST, cur.instance_id
