-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Per experiment: spend to date, burn rate now, projections against budget and deadline, progress and ETA.
-- NULL = unknown (an instance without a price ran; no progress metric), never $0.
CREATE OR REPLACE VIEW dashgen.experiment_status AS
WITH members AS (
    SELECT e.name, p.usd_per_hour, dashgen.seconds_to_date(i.billed_closed_s, i.running_since) AS seconds,
           i.running_since IS NOT NULL AS running
    FROM dashgen.experiments e
    JOIN dashgen.instances i ON i.tags @> jsonb_build_object(e.tag_key, e.tag_value)
    LEFT JOIN dashgen.instance_prices p
           ON (p.region, p.instance_type, p.operating_system, p.tenancy)
            = (i.region, i.instance_type, i.operating_system, i.tenancy)
), spend AS (
    SELECT e.name, e.budget_usd, e.deadline,
           count(m.name) AS instances,
           count(*) FILTER (WHERE m.running) AS running,
           CASE WHEN bool_and(m.usd_per_hour IS NOT NULL OR m.seconds = 0) IS NOT FALSE
                THEN round(coalesce(sum(m.seconds * m.usd_per_hour::float8 / 3600), 0)::numeric, 6) END AS spent_usd,
           CASE WHEN bool_and(m.usd_per_hour IS NOT NULL OR NOT m.running) IS NOT FALSE
                THEN coalesce(sum(m.usd_per_hour) FILTER (WHERE m.running), 0) END AS burn_usd_per_hour
    FROM dashgen.experiments e
    LEFT JOIN members m ON m.name = e.name
    GROUP BY e.name, e.budget_usd, e.deadline
), progress AS (
    SELECT p.experiment AS name,
           max(p.at) AS last_at,
           (array_agg(p.percent ORDER BY p.at DESC))[1] AS percent,
           min(p.at) FILTER (WHERE p.percent >= 100) AS done_at,
           regr_slope(p.percent, extract(epoch FROM p.at)) AS percent_per_second
    FROM dashgen.experiment_progress p
    GROUP BY p.experiment
), eta AS (
    SELECT s.*, p.percent,
           CASE WHEN p.done_at IS NOT NULL THEN p.done_at
                WHEN p.percent_per_second > 0
                THEN p.last_at + make_interval(secs => ((100 - p.percent) / p.percent_per_second)::float8)
           END AS eta
    FROM spend s LEFT JOIN progress p ON p.name = s.name
), projected AS (
    SELECT eta.*,
           spent_usd + burn_usd_per_hour * greatest(0, extract(epoch FROM deadline - now())) / 3600
               AS projected_at_deadline_usd,
           spent_usd + burn_usd_per_hour * greatest(0, extract(epoch FROM eta.eta - now())) / 3600
               AS projected_to_finish_usd
    FROM eta
)
SELECT name, instances, running, budget_usd, spent_usd, budget_usd - spent_usd AS budget_left_usd,
       burn_usd_per_hour, deadline, projected_at_deadline_usd, percent AS progress_percent, eta,
       projected_to_finish_usd,
       coalesce(projected_to_finish_usd, projected_at_deadline_usd) <= budget_usd AS fits_budget,
       eta <= deadline AS makes_deadline
FROM projected;
