-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Budget and deadline with the charges beside On-Demand: the view of 020_budget_definitions.sql (its rules and comments), with spend
-- = each member's cost to date at its Spot prices (Spot instances) plus surplus credits, and the burn rate = the Spot
-- price in effect (else On-Demand) plus the credits of the last stored hour, per running member.
CREATE OR REPLACE VIEW dashgen.experiment_status AS
WITH members0 AS (
    SELECT e.name, i.instance_id, p.usd_per_hour, dashgen.seconds_to_date(i.billed_closed_s, i.running_since) AS seconds,
           i.running_since IS NOT NULL AS running
    FROM dashgen.experiments e
    JOIN dashgen.instances i ON i.tags @> jsonb_build_object(e.tag_key, e.tag_value)
    LEFT JOIN dashgen.instance_prices p
           ON (p.region, p.instance_type, p.operating_system, p.tenancy)
            = (i.region, i.instance_type, i.operating_system, i.tenancy)
), members AS (  -- issue 12: a Spot instance at its Spot prices, plus surplus credits (migration 061)
    SELECT m.*,
           CASE WHEN m.seconds = 0 THEN 0
                WHEN b.lifecycle = 'spot' THEN x.spot_usd
                ELSE m.seconds * m.usd_per_hour::float8 / 3600 END
           + CASE WHEN x.instance_id IS NULL THEN 0 ELSE x.credit_usd END AS cost_usd,
           (CASE WHEN b.lifecycle = 'spot' THEN b.spot_usd_per_hour ELSE m.usd_per_hour END
            + b.credit_usd_per_hour_recent::numeric) AS burn
    FROM members0 m
    JOIN dashgen.instance_charge_basis b ON b.instance_id = m.instance_id
    LEFT JOIN dashgen.extra_charges('-infinity', 'infinity') x ON x.instance_id = m.instance_id
), spend AS (
    SELECT e.name, e.budget_usd, e.deadline,
           count(m.name) AS instances,
           count(*) FILTER (WHERE m.running) AS running,
           -- no members: bool_and over the one NULL row is NULL, so IS NOT FALSE: nothing spent, nothing burning
           CASE WHEN bool_and(m.cost_usd IS NOT NULL) FILTER (WHERE m.name IS NOT NULL) IS NOT FALSE
                THEN round(coalesce(sum(m.cost_usd), 0)::numeric, 6) END AS spent_usd,
           CASE WHEN bool_and(m.burn IS NOT NULL OR NOT m.running) IS NOT FALSE
                THEN coalesce(sum(m.burn) FILTER (WHERE m.running), 0) END AS burn_usd_per_hour
    FROM dashgen.experiments e
    LEFT JOIN members m ON m.name = e.name
    GROUP BY e.name, e.budget_usd, e.deadline
), ranked AS (
    SELECT p.experiment AS name, p.at, p.percent,
           row_number() OVER (PARTITION BY p.experiment ORDER BY p.at DESC) AS nth
    FROM dashgen.experiment_progress p
), latest AS (
    SELECT name, max(at) FILTER (WHERE nth = 1) AS last_at, max(percent) FILTER (WHERE nth = 1) AS percent,
           max(at) FILTER (WHERE nth = 2) AS second_at,
           max(at) FILTER (WHERE percent < 100) AS below_at  -- the last point below 100 %
    FROM ranked GROUP BY name
), progress AS (
    SELECT l.name, l.last_at, l.percent,
           min(r.at) FILTER (WHERE l.percent >= 100 AND r.at > coalesce(l.below_at, '-infinity')) AS done_at,
           -- percent per second, x in seconds from the latest point (small numbers: no precision lost)
           regr_slope(r.percent::float8, date_part('epoch', r.at - l.last_at))
               FILTER (WHERE r.at >= CASE WHEN l.second_at IS NULL THEN l.last_at
                                          ELSE least(l.last_at - interval '1 hour', l.second_at) END) AS pace
    FROM latest l JOIN ranked r ON r.name = l.name
    GROUP BY l.name, l.last_at, l.percent
), eta AS (
    SELECT s.*, p.last_at, p.percent, p.pace, p.done_at,
           CASE WHEN p.done_at IS NOT NULL THEN p.done_at
                WHEN p.pace > 0  -- (nested CASE: the division and make_interval only run when they can)
                THEN CASE WHEN 100 - p.percent::float8 <= p.pace * (100 * 365.25 * 86400)
                          THEN p.last_at + make_interval(secs => (100 - p.percent::float8) / p.pace) END
           END AS eta
    FROM spend s LEFT JOIN progress p ON p.name = s.name
), projected AS (
    SELECT eta.*,
           spent_usd + burn_usd_per_hour * greatest(0, extract(epoch FROM deadline - now())) / 3600
               AS projected_at_deadline_usd,
           CASE WHEN done_at IS NOT NULL THEN spent_usd
                WHEN eta >= now() THEN spent_usd + burn_usd_per_hour * extract(epoch FROM eta - now()) / 3600
           END AS projected_to_finish_usd
    FROM eta
)
SELECT name, instances, running, budget_usd, spent_usd, budget_usd - spent_usd AS budget_left_usd,
       burn_usd_per_hour, deadline, projected_at_deadline_usd, percent AS progress_percent, eta,
       projected_to_finish_usd,
       CASE WHEN eta IS NOT NULL AND (done_at IS NOT NULL OR eta >= now()) THEN projected_to_finish_usd <= budget_usd
            ELSE projected_at_deadline_usd <= budget_usd END AS fits_budget,
       CASE WHEN eta IS NOT NULL THEN eta <= deadline
            WHEN last_at > deadline THEN false END AS makes_deadline,
       pace * 3600 AS pace_percent_per_hour
FROM projected;

-- Whether experiment `name` has a member (an instance with its tag) in one of the accounts chosen in the
-- dashboards' Account variable ('__all__' = All: every experiment, members or not). The budget, spend and
-- progress stay the whole experiment's: a budget is the experiment's, whichever accounts its instances run in.
CREATE OR REPLACE FUNCTION dashgen.experiment_in_accounts(name text, accounts text[])
RETURNS bool LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '__all__' = ANY (accounts) OR EXISTS (
        SELECT 1 FROM dashgen.experiments e
        JOIN dashgen.instances i ON i.tags @> jsonb_build_object(e.tag_key, e.tag_value)
        WHERE e.name = experiment_in_accounts.name AND dashgen.hex(i.account_id) = ANY (accounts))
$$;
