-- dashgen experiment comparison: the instances of one experiment side by side, cheapest on-time run first.
-- One implementation, two views: the "Experiment comparison" panel of ec2-rightsizing.json embeds this text
-- and `dashgen rightsize --experiment NAME` runs it with the variable bound as a parameter (dashgen.sqlvars).
--   members        instances whose tag tag_key = tag_value (dashgen.experiments);
--   running hours  billed time of all their running intervals (per second, 60 s minimum per start);
--   cost so far    running hours x the instance's $/hour (a Spot instance: at its Spot prices), plus the surplus
--                  CPU credits charged (NULL when a price is unknown);
--   CPU p95        95th percentile of the hourly p95 CPU over all stored hours;
--   progress       highest value (0-100) of the experiment's progress metric for the instance
--                  (CloudWatch dimensions: the experiment's, plus InstanceId), collected by `dashgen sync`;
--   per percent    running hours / progress and cost so far / progress (unknown at 0 % or below);
--   finish         when progress reached 100 (hour it was seen), else now + hours per percent x the rest
--                  (unknown without progress above 0 %, or over a century away);
--   projected cost cost per percent x 100;
--   outcome        "cheapest on time": the lowest projected cost among runs that finish by the deadline;
--                  "on time" / "late" for the others, "no progress" without a progress value.
WITH e AS (
    SELECT * FROM dashgen.experiments WHERE dashgen.hex(name) = ${experiment:sqlstring}
),
members AS (
    SELECT c.instance_id, c.name, c.instance_type, c.usd_per_hour, t.vcpu, t.memory_mib,
           e.name AS experiment, e.deadline, e.budget_usd,
           -- Spot runs at their Spot prices, surplus CPU credits (dashgen.extra_charges, migration 061)
           b.lifecycle, x.spot_usd::numeric AS spot_usd,
           CASE WHEN x.instance_id IS NULL THEN 0 ELSE x.credit_usd::numeric END AS credit_usd
    FROM dashgen.instance_cost_basis c
    JOIN e ON c.tags ->> e.tag_key = e.tag_value
          AND dashgen.chosen(c.account_id, ARRAY[${account:sqlstring}])
    JOIN dashgen.instance_types t USING (instance_type)
    JOIN dashgen.instance_charge_basis b USING (instance_id)
    LEFT JOIN dashgen.extra_charges('-infinity', 'infinity') x USING (instance_id)
),
run AS (
    SELECT iv.instance_id,
           min(iv.started_at) AS started_at,
           bool_or(iv.ended_at IS NULL) AS running,
           sum(dashgen.billed_seconds(iv.started_at, iv.ended_at, '-infinity', 'infinity')) / 3600 AS hours
    FROM dashgen.instance_intervals iv
    WHERE iv.instance_id IN (SELECT instance_id FROM members)
    GROUP BY iv.instance_id
),
usage AS (
    SELECT u.instance_id,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY u.cpu_p95) AS cpu_p95,
           max(u.progress_pct) AS progress_pct,
           min(u.hour) FILTER (WHERE u.progress_pct >= 100) + interval '1 hour' AS finished_at
    FROM dashgen.instance_utilisation_hourly u
    WHERE u.instance_id IN (SELECT instance_id FROM members)
    GROUP BY u.instance_id
),
measured AS (
    SELECT m.*, r.started_at, coalesce(r.hours, 0) AS hours, u.cpu_p95, u.progress_pct,
           (CASE WHEN coalesce(r.hours, 0) = 0 THEN 0 WHEN m.lifecycle = 'spot' THEN m.spot_usd
                 ELSE coalesce(r.hours, 0) * m.usd_per_hour END + m.credit_usd) AS cost_usd,
           CASE WHEN u.progress_pct > 0 THEN coalesce(r.hours, 0) / u.progress_pct END AS hours_per_pct,
           CASE WHEN u.progress_pct > 0
                THEN (CASE WHEN coalesce(r.hours, 0) = 0 THEN 0 WHEN m.lifecycle = 'spot' THEN m.spot_usd
                           ELSE coalesce(r.hours, 0) * m.usd_per_hour END + m.credit_usd) / u.progress_pct
           END AS usd_per_pct,
           -- no progress (<= 0 %) or a finish over a century away: unknown (no make_interval overflow)
           coalesce(u.finished_at,
                    CASE WHEN u.progress_pct > 0
                              AND coalesce(r.hours, 0) * (100 - u.progress_pct) <= u.progress_pct * 876600
                         THEN now() + make_interval(secs => (coalesce(r.hours, 0) / u.progress_pct
                                                             * (100 - u.progress_pct) * 3600)::double precision)
                    END) AS finish_at
    FROM members m
    LEFT JOIN run r USING (instance_id)
    LEFT JOIN usage u USING (instance_id)
),
judged AS (
    SELECT measured.*,
           usd_per_pct * 100 AS projected_cost_usd,
           CASE WHEN finish_at IS NULL THEN NULL ELSE finish_at <= deadline END AS on_time
    FROM measured
)
SELECT experiment,
       instance_id,
       name,
       instance_type,
       vcpu,
       round(usd_per_hour, 4) AS usd_per_hour,
       round(hours::numeric, 2) AS running_hours,
       round(cost_usd::numeric, 2) AS cost_usd,
       round(cpu_p95::numeric, 1) AS cpu_p95,
       round(progress_pct::numeric, 1) AS progress_pct,
       round(hours_per_pct::numeric, 3) AS hours_per_pct,
       round(usd_per_pct::numeric, 4) AS usd_per_pct,
       finish_at,
       deadline,
       round(projected_cost_usd::numeric, 2) AS projected_cost_usd,
       budget_usd,
       CASE WHEN on_time IS NULL THEN 'no progress'
            WHEN NOT on_time THEN 'late'
            WHEN projected_cost_usd IS NOT NULL AND projected_cost_usd = min(projected_cost_usd)
                 FILTER (WHERE on_time) OVER () THEN 'cheapest on time'
            ELSE 'on time' END AS outcome
FROM judged
ORDER BY on_time DESC NULLS LAST, projected_cost_usd NULLS LAST, instance_id
