-- dashgen rightsizing: one row per instance, the right size in its family and a cheaper family.
-- One implementation, two views: the "Rightsizing" panel of ec2-rightsizing.json embeds this text verbatim
-- and `dashgen rightsize` runs it with the same variables bound as parameters (dashgen.sqlvars).
-- Rule (docs/rightsizing.md):
--   window      the last lookback_days days of dashgen.instance_utilisation_hourly;
--   CPU p95     the 95th percentile of the hourly p95 CPU over the window;
--   target      cpu_threshold x (1 - headroom_pct / 100)   (80 % x (1 - 20 %) = 64 % by default);
--   needed      vCPU x CPU p95 / target;
--   in family   the smallest type of the same family and architecture (not bare metal, no fewer GPUs) with
--               vCPU >= needed and at least the current memory per vCPU (memory is not measured: keep the ratio);
--   verdict     under-provisioned when needed > vCPU, over-provisioned when the in-family type has fewer vCPUs,
--               else right-sized ("no data" without utilisation in the window);
--   cheaper     the cheapest type of another family of the same class (leading letters: t, m, c, r...; e.g. the
--               Graviton one) with vCPU >= needed, memory >= the in-family type's, the same rules, burstable
--               only if the current type is, and a lower $/hour than the in-family type;
--   saving      ($/hour now - $/hour recommended) x 730 hours a month. Prices: the instance's region, OS, tenancy.
WITH params AS (
    SELECT ${cpu_threshold:sqlstring}::numeric * (1 - ${headroom_pct:sqlstring}::numeric / 100) AS target_pct,
           now() - make_interval(days => ${lookback_days:sqlstring}::int) AS since
),
usage AS (
    SELECT u.instance_id,
           count(*) AS hours,
           avg(u.cpu_avg) AS cpu_avg,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY u.cpu_p95) AS cpu_p95,
           max(u.cpu_max) AS cpu_max
    FROM dashgen.instance_utilisation_hourly u, params
    WHERE u.hour >= params.since
    GROUP BY u.instance_id
),
cur AS (
    SELECT c.instance_id, c.name, c.tags, c.region, c.operating_system, c.tenancy, c.instance_type,
           t.family, t.arch, t.vcpu, t.memory_mib, coalesce(t.burstable, false) AS burstable,
           coalesce(t.gpus, 0) AS gpus, c.usd_per_hour, coalesce(u.hours, 0) AS hours,
           u.cpu_avg, u.cpu_p95, u.cpu_max,
           t.vcpu * u.cpu_p95 / nullif(params.target_pct, 0) AS needed_vcpu
    FROM dashgen.instance_cost_basis c
    JOIN dashgen.instance_types t USING (instance_type)
    LEFT JOIN usage u USING (instance_id)
    CROSS JOIN params
    WHERE (c.state <> 'terminated' OR u.hours > 0)
      AND dashgen.selected(c.tags, c.name, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}],
                           ARRAY[${name:sqlstring}])
),
candidates AS (
    SELECT cur.instance_id, t.instance_type, t.family, t.arch, t.vcpu, t.memory_mib,
           coalesce(t.burstable, false) AS burstable, p.usd_per_hour
    FROM cur
    JOIN dashgen.instance_types t
      ON t.vcpu >= cur.needed_vcpu
     AND t.memory_mib::numeric / t.vcpu >= cur.memory_mib::numeric / cur.vcpu
     AND NOT coalesce(t.bare_metal, false)
     AND coalesce(t.gpus, 0) >= cur.gpus
    LEFT JOIN dashgen.instance_prices p
      ON p.region = cur.region AND p.instance_type = t.instance_type
     AND p.operating_system = cur.operating_system AND p.tenancy = cur.tenancy
),
in_family AS (
    SELECT DISTINCT ON (c.instance_id) c.*
    FROM candidates c JOIN cur USING (instance_id)
    WHERE c.family = cur.family AND c.arch = cur.arch
    ORDER BY c.instance_id, c.vcpu, c.memory_mib, c.usd_per_hour NULLS LAST, c.instance_type
),
cheaper AS (
    SELECT DISTINCT ON (c.instance_id) c.*
    FROM candidates c
    JOIN cur USING (instance_id)
    LEFT JOIN in_family f USING (instance_id)
    WHERE c.family <> cur.family
      AND substring(c.family FROM '^[a-z]+') = substring(cur.family FROM '^[a-z]+')
      AND c.memory_mib >= coalesce(f.memory_mib, cur.memory_mib)
      AND (cur.burstable OR NOT c.burstable)
      AND c.usd_per_hour < coalesce(f.usd_per_hour, cur.usd_per_hour)
    ORDER BY c.instance_id, c.usd_per_hour, c.vcpu, c.instance_type
)
SELECT cur.instance_id,
       cur.name,
       (SELECT string_agg(key || '=' || value, ', ' ORDER BY key)
          FROM jsonb_each_text(cur.tags) WHERE key <> 'Name') AS tags,
       cur.instance_type,
       cur.vcpu,
       cur.memory_mib,
       round(cur.usd_per_hour, 4) AS usd_per_hour,
       cur.hours,
       round(cur.cpu_avg::numeric, 1) AS cpu_avg,
       round(cur.cpu_p95::numeric, 1) AS cpu_p95,
       round(cur.cpu_max::numeric, 1) AS cpu_max,
       round(cur.needed_vcpu::numeric, 2) AS needed_vcpu,
       CASE WHEN cur.cpu_p95 IS NULL THEN 'no data'
            WHEN cur.needed_vcpu > cur.vcpu THEN 'under-provisioned'
            WHEN f.vcpu < cur.vcpu THEN 'over-provisioned'
            ELSE 'right-sized' END AS verdict,
       f.instance_type AS recommended_type,
       round(f.usd_per_hour, 4) AS recommended_usd_per_hour,
       round((cur.usd_per_hour - f.usd_per_hour) * 730, 2) AS monthly_saving_usd,
       ch.instance_type AS cheaper_type,
       round(ch.usd_per_hour, 4) AS cheaper_usd_per_hour,
       round((cur.usd_per_hour - ch.usd_per_hour) * 730, 2) AS cheaper_monthly_saving_usd
FROM cur
LEFT JOIN in_family f USING (instance_id)
LEFT JOIN cheaper ch USING (instance_id)
ORDER BY monthly_saving_usd DESC NULLS LAST, cheaper_monthly_saving_usd DESC NULLS LAST, cur.instance_id
