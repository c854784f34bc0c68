-- dashgen rightsizing: one row per instance, the right size in its family and a cheaper family, with the risk.
-- One implementation, two views: the "Rightsizing" panel of ec2-rightsizing.json embeds this text verbatim
-- and `dashgen rightsize` runs it with the same variables bound as parameters (dashgen.sqlvars).
-- Rule (docs/rightsizing.md, beside Compute Optimizer's):
--   facts       dashgen.instance_types: DescribeInstanceTypes (sync, daily), else the bundled snapshot;
--               an instance whose type has no facts is "not analysed";
--   instances   not terminated (nor shutting down) and seen by the last sync of their (account, region);
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
latest AS (  -- per (account, region) pair: the last sync that read it (migration 070)
    SELECT account_id, region, max(last_seen) AS last_seen FROM dashgen.instances GROUP BY account_id, region
),
inst AS (
    SELECT c.instance_id, c.name, c.tags, c.region, c.operating_system, c.tenancy, c.instance_type, c.usd_per_hour,
           i.credit_mode AS credit_mode_read, i.tags_label
    FROM dashgen.instance_cost_basis c
    JOIN dashgen.instances i USING (instance_id)
    JOIN latest l ON l.region = i.region AND l.account_id IS NOT DISTINCT FROM i.account_id
    WHERE c.state NOT IN ('terminated', 'shutting-down') AND i.last_seen >= l.last_seen
      AND dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}],
                           ARRAY[${name:sqlstring}])
      AND dashgen.chosen(c.account_id, ARRAY[${account:sqlstring}])
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
caps AS MATERIALIZED (  -- every capacity value a need is compared with, sorted for width_bucket: negated (the count of
                       -- values at least a need), and the halved vCPUs (the upper bound of other families)
    SELECT array_agg(DISTINCT -t.vcpu::float8 ORDER BY -t.vcpu::float8) AS vcpu,
           array_agg(DISTINCT t.vcpu::float8 / 2 ORDER BY t.vcpu::float8 / 2) AS half_vcpu,
           array_agg(DISTINCT -t.memory_mib::float8 ORDER BY -t.memory_mib::float8) AS memory,
           array_agg(DISTINCT -coalesce(t.network_baseline_gbps, 0)::float8
                     ORDER BY -coalesce(t.network_baseline_gbps, 0)::float8) AS gbps,
           array_agg(DISTINCT -coalesce(t.ebs_baseline_iops, 0)::float8
                     ORDER BY -coalesce(t.ebs_baseline_iops, 0)::float8) AS iops,
           array_agg(DISTINCT -coalesce(t.ebs_baseline_mbps, 0)::float8
                     ORDER BY -coalesce(t.ebs_baseline_mbps, 0)::float8) AS mbps,
           array_agg(DISTINCT -(t.vcpu * t.burst_baseline_pct / 100)::float8
                     ORDER BY -(t.vcpu * t.burst_baseline_pct / 100)::float8)
               FILTER (WHERE t.burstable AND t.burst_baseline_pct IS NOT NULL) AS baseline
    FROM dashgen.instance_types t
    WHERE t.vcpu IS NOT NULL AND t.memory_mib IS NOT NULL
),
needs AS MATERIALIZED (  -- each need replaced by the smallest capacity value that meets it (NULL: none does), the
                         -- upper bound by the largest half within it: exactly the same types meet them, and the
                         -- instances of a type, region, OS and tenancy with the same such needs share one search
    SELECT n.*, dense_rank() OVER (ORDER BY n.instance_type, n.region, n.operating_system, n.tenancy, n.k) AS search
    FROM (
    SELECT cur.instance_id, cur.instance_type, cur.region, cur.operating_system, cur.tenancy,
           ARRAY[-caps.vcpu[nullif(width_bucket(-cur.needed_vcpu, caps.vcpu), 0)],
                 caps.half_vcpu[nullif(width_bucket(greatest(cur.vcpu, cur.needed_vcpu), caps.half_vcpu), 0)],
                 -caps.memory[nullif(width_bucket(-cur.needed_memory_mib, caps.memory), 0)],
                 -caps.gbps[nullif(width_bucket(-coalesce(cur.needed_gbps, 0), caps.gbps), 0)],
                 -caps.iops[nullif(width_bucket(-coalesce(cur.needed_iops, 0), caps.iops), 0)],
                 -caps.mbps[nullif(width_bucket(-coalesce(cur.needed_mbps, 0), caps.mbps), 0)],
                 -caps.baseline[nullif(width_bucket(-coalesce(cur.sustained_vcpu, 0), caps.baseline), 0)]
           ] AS k  -- vCPUs, half the most vCPUs of another family, memory, Gbit/s, IOPS, MB/s, baseline vCPUs
    FROM cur CROSS JOIN caps
    WHERE cur.analysable
    ) n
),
searches AS MATERIALIZED (  -- each distinct search (numbered 1..n) with the facts of its current type
    SELECT DISTINCT ON (d.search) d.search, d.instance_type, d.region, d.operating_system, d.tenancy, d.k, c.family, c.class, c.arch, coalesce(c.burstable, false) AS burstable,
           c.vcpu AS cur_vcpu, coalesce(c.gpus, 0) AS gpus, coalesce(c.gpu_model, '') AS gpu_model,
           coalesce(c.gpu_memory_mib, 0) AS gpu_memory_mib, coalesce(c.neuron_devices, 0) AS neuron_devices,
           coalesce(c.neuron_model, '') AS neuron_model, coalesce(c.neuron_memory_mib, 0) AS neuron_memory_mib,
           coalesce(c.other_accelerators, 0) AS other_accelerators, coalesce(c.instance_storage_gb, 0) AS storage_gb
    FROM needs d
    JOIN dashgen.instance_types c USING (instance_type)
    ORDER BY d.search
),
candidates AS MATERIALIZED (  -- the types that meet every need of a search: every size of the family; other families
                              -- of the class up to twice the vCPUs, and for a burstable type the non-burstable m
                              -- types of its architecture with half to twice its vCPUs (the prices sync reads:
                              -- dashgen.rightsizing.collect.rightsizing_price_keys)
    SELECT s.search, t.instance_type, t.family, t.arch, t.vcpu, t.memory_mib, coalesce(t.burstable, false) AS burstable,
           p.usd_per_hour
    FROM searches s
    JOIN dashgen.instance_types t ON t.class = ANY (ARRAY[s.class, CASE WHEN s.burstable THEN 'm' END])
    LEFT JOIN dashgen.instance_prices p
      ON p.region = s.region AND p.instance_type = t.instance_type
     AND p.operating_system = s.operating_system AND p.tenancy = s.tenancy
    WHERE (t.family = s.family
           OR (t.family <> s.family AND t.vcpu::float8 / 2 <= s.k[2]
               AND (t.class <> 'm' OR NOT s.burstable
                    OR (NOT coalesce(t.burstable, false) AND t.arch = s.arch AND 2 * t.vcpu >= s.cur_vcpu))))
      AND NOT coalesce(t.bare_metal, false)
      AND t.vcpu >= s.k[1]
      AND t.memory_mib >= s.k[3]
      AND coalesce(t.gpus, 0) = s.gpus AND coalesce(t.gpu_model, '') = s.gpu_model
      AND coalesce(t.gpu_memory_mib, 0) >= s.gpu_memory_mib
      AND coalesce(t.neuron_devices, 0) = s.neuron_devices
      AND coalesce(t.neuron_model, '') = s.neuron_model
      AND coalesce(t.neuron_memory_mib, 0) >= s.neuron_memory_mib
      AND coalesce(t.other_accelerators, 0) = s.other_accelerators
      AND coalesce(t.instance_storage_gb, 0) >= s.storage_gb
      AND coalesce(t.network_baseline_gbps, 0) >= s.k[4]
      AND coalesce(t.ebs_baseline_iops, 0) >= s.k[5]
      AND coalesce(t.ebs_baseline_mbps, 0) >= s.k[6]
      AND (NOT coalesce(t.burstable, false) OR t.vcpu * t.burst_baseline_pct / 100 >= s.k[7])
),
search_family AS MATERIALIZED (  -- per search: the smallest type of the family and architecture meeting it
    SELECT DISTINCT ON (c.search) c.*
    FROM candidates c JOIN searches s USING (search)
    WHERE c.family = s.family AND c.arch = s.arch
    ORDER BY c.search, c.vcpu, c.memory_mib, c.usd_per_hour NULLS LAST, c.instance_type
),
search_other AS MATERIALIZED (  -- per search: the cheapest type of another family
    SELECT DISTINCT ON (c.search) c.*
    FROM candidates c JOIN searches s USING (search)
    WHERE c.family <> s.family AND (s.burstable OR NOT c.burstable) AND c.usd_per_hour IS NOT NULL
    ORDER BY c.search, c.usd_per_hour, c.vcpu, c.instance_type
),
found AS MATERIALIZED (  -- the searches' answers as arrays indexed by search number (a lookup per instance)
    SELECT array_agg(f.instance_type ORDER BY s.search) AS family_type,
           array_agg(f.usd_per_hour ORDER BY s.search) AS family_usd,
           array_agg(o.instance_type ORDER BY s.search) AS other_type,
           array_agg(o.usd_per_hour ORDER BY s.search) AS other_usd,
           array_agg(fits.search IS NOT NULL ORDER BY s.search) AS current_fits
    FROM searches s
    LEFT JOIN search_family f USING (search)
    LEFT JOIN search_other o USING (search)
    LEFT JOIN (SELECT DISTINCT c.search FROM candidates c JOIN searches s2 USING (search)
               WHERE c.instance_type = s2.instance_type) fits USING (search)
),
chosen AS MATERIALIZED (  -- back to the instances, each option at the instance's estimated cost: the price plus (a
                          -- burstable type, not in standard mode) the surplus the load would be charged on it:
                          -- max(0, the vCPUs used on average - its baseline vCPUs) x its family's credit price. A
                          -- burstable candidate's baseline covers the busiest day, so it is charged none: choosing
                          -- by price is choosing by estimated cost
    SELECT n.instance_id, k.kind, t.instance_type, t.family, t.arch, k.usd_per_hour,
           k.usd_per_hour + CASE WHEN e.surplus_vcpu = 0 THEN 0
                                 ELSE (e.surplus_vcpu * cp.usd_per_vcpu_hour::float8)::numeric END AS est_usd_per_hour
    FROM needs n
    CROSS JOIN found r
    JOIN cur ON cur.instance_id = n.instance_id
    CROSS JOIN LATERAL (VALUES ('family', r.family_type[n.search], r.family_usd[n.search]),
                               ('other', r.other_type[n.search], r.other_usd[n.search]),
                               ('current', CASE WHEN r.current_fits[n.search] THEN cur.instance_type END, NULL))
        AS k(kind, instance_type, usd_per_hour)
    JOIN dashgen.instance_types t ON t.instance_type = k.instance_type
    LEFT JOIN dashgen.credit_prices cp
      ON (cp.region, cp.family, cp.operating_system) = (cur.region, t.family, cur.operating_system)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN NOT coalesce(t.burstable, false) OR cur.credit_mode_read = 'standard' THEN 0
                    ELSE greatest(0, cur.vcpu * cur.cpu_avg / 100 - t.vcpu * t.burst_baseline_pct::float8 / 100)
               END AS surplus_vcpu
    ) e
),
in_family AS (SELECT * FROM chosen WHERE kind = 'family'),
cheaper AS (  -- the cheapest type of another family, when below the in-family estimate (else the cost now)
    SELECT o.*
    FROM chosen o
    JOIN cur USING (instance_id)
    LEFT JOIN in_family f USING (instance_id)
    WHERE o.kind = 'other'
      AND o.est_usd_per_hour < coalesce(f.est_usd_per_hour, cur.usd_per_hour + cur.credit_usd_per_hour)
),
current_fits AS (SELECT instance_id FROM chosen WHERE kind = 'current'),
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
assessed AS (  -- per resource, the peak / the type's capacity, for the current type, the recommendation and the
               -- cheaper option; the worst one (ties: by name) gives the risk and limited_by
    SELECT r.*,
           greatest(r.cpu, r.credits, r.iops, r.mbps, r.memory, r.network) AS ratio,
           CASE greatest(r.cpu, r.credits, r.iops, r.mbps, r.memory, r.network)
                WHEN r.cpu THEN 'CPU' WHEN r.credits THEN 'CPU credits' WHEN r.iops THEN 'EBS IOPS'
                WHEN r.mbps THEN 'EBS throughput' WHEN r.memory THEN 'memory' WHEN r.network THEN 'network' END
               AS resource
    FROM (SELECT cur.instance_id, k.kind,
                 cur.used_vcpu / nullif(t.vcpu, 0) AS cpu,
                 cur.memory_mib * cur.mem_peak / 100 / nullif(t.memory_mib, 0) AS memory,
                 cur.net_gbps / nullif(t.network_baseline_gbps, 0) AS network,
                 cur.ebs_iops / nullif(t.ebs_baseline_iops, 0) AS iops,
                 cur.ebs_mbps / nullif(t.ebs_baseline_mbps, 0) AS mbps,
                 CASE WHEN t.burstable THEN cur.sustained_vcpu / nullif(t.vcpu * t.burst_baseline_pct / 100, 0) END
                     AS credits
          FROM cur
          LEFT JOIN in_family f USING (instance_id)
          LEFT JOIN cheaper ch USING (instance_id)
          CROSS JOIN LATERAL (VALUES ('current', cur.instance_type), ('family', f.instance_type),
                                     ('cheaper', ch.instance_type)) AS k(kind, instance_type)
          JOIN dashgen.instance_types t ON t.instance_type = k.instance_type
          WHERE cur.analysable) r
),
risk AS (
    SELECT a.instance_id, a.kind, a.resource, a.ratio,
           CASE WHEN a.ratio IS NULL THEN NULL WHEN a.ratio <= 0.5 THEN 0 WHEN a.ratio * 100 <= params.target_pct THEN 1
                WHEN a.ratio * 100 <= params.threshold_pct THEN 2 WHEN a.ratio <= 1 THEN 3 ELSE 4 END AS risk
    FROM assessed a CROSS JOIN params
    WHERE a.ratio IS NOT NULL
),
over_target AS (  -- the resources of the current type above the target (CPU credits: above the baseline)
    SELECT a.instance_id,
           (SELECT string_agg(CASE WHEN v.resource = 'CPU credits'
                                   THEN format('busiest day''s CPU at %s%% of the credit baseline',
                                               round((v.ratio * 100)::numeric))
                                   ELSE format('%s at %s%%', v.resource, round((v.ratio * 100)::numeric)) END, ', '
                              ORDER BY v.ratio DESC, v.resource)
            FROM (VALUES ('CPU', a.cpu), ('CPU credits', a.credits), ('EBS IOPS', a.iops),
                         ('EBS throughput', a.mbps), ('memory', a.memory), ('network', a.network)) AS v(resource, ratio)
            WHERE CASE WHEN v.resource = 'CPU credits' THEN v.ratio > 1 ELSE v.ratio * 100 > params.target_pct END
           ) AS resources
    FROM assessed a CROSS JOIN params
    WHERE a.kind = 'current' AND (a.credits > 1 OR a.ratio * 100 > params.target_pct)
)
SELECT cur.instance_id,
       cur.name,
       cur.tags_label AS tags,  -- "key=value, ..." without Name, stored by sync (dashgen.tags_label)
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
