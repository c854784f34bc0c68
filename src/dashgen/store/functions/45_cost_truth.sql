-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).
-- Issue 12 (cost truth, migration 060's tables): Spot pieces, surplus-credit charges, the per-instance charge basis,
-- cost totals and the reconciliation with billed cost (first defined in migration 061).

-- Pieces of charges overlapping [win_from, win_to] (not clipped to it), each a span and its rate in USD per second
-- (NULL = unknown, never 0):
--   'credits'  an hour in which a burstable instance was charged surplus credits (CloudWatch
--              CPUSurplusCreditsCharged, Sum): credits / 60 vCPU-hours x the family's credit price, spread over
--              that hour. A standard-mode instance never has any (AWS does not charge it); an instance whose mode is
--              unknown has those CloudWatch says were charged.
--   'spot'     a run of a Spot instance split at each Spot price change of its AZ, type and product description:
--              the Spot price (it replaces the On-Demand rate for that time); the part of a run before the first
--              known price is unknown.
CREATE OR REPLACE FUNCTION dashgen.charge_pieces(win_from timestamptz, win_to timestamptz)
RETURNS TABLE (instance_id text, kind text, piece_from timestamptz, piece_to timestamptz, usd_per_s double precision,
               credits double precision)
LANGUAGE sql STABLE AS $$
    WITH spot_runs AS MATERIALIZED (
        SELECT i.instance_id, i.availability_zone AS az, i.instance_type, coalesce(i.platform, 'Linux/UNIX') AS pd,
               iv.started_at AS f, dashgen.billed_end(iv.started_at, iv.ended_at) AS t
        FROM dashgen.instances i
        JOIN dashgen.instance_intervals iv ON iv.instance_id = i.instance_id
        WHERE i.lifecycle = 'spot' AND iv.started_at < win_to
          AND dashgen.billed_end(iv.started_at, iv.ended_at) > win_from
    ), spot_pieces AS (  -- per run (two index probes): the price in effect at its start, then every change in it
        SELECT r.instance_id, greatest(r.f, s.at) AS f, least(r.t, s.next_at) AS t, s.usd_per_hour
        FROM spot_runs r,
        LATERAL (SELECT max(p.at) AS at FROM dashgen.spot_prices p
                 WHERE (p.availability_zone, p.instance_type, p.product_description) = (r.az, r.instance_type, r.pd)
                   AND p.at <= r.f) first,
        LATERAL (SELECT p.at, p.usd_per_hour, lead(p.at, 1, 'infinity') OVER (ORDER BY p.at) AS next_at
                 FROM dashgen.spot_prices p
                 WHERE (p.availability_zone, p.instance_type, p.product_description) = (r.az, r.instance_type, r.pd)
                   AND p.at >= coalesce(first.at, '-infinity') AND p.at < r.t) s
        UNION ALL  -- before the first price dashgen knows: unknown
        SELECT r.instance_id, r.f, least(r.t, coalesce(next.at, 'infinity')), NULL
        FROM spot_runs r,
        LATERAL (SELECT min(p.at) AS at FROM dashgen.spot_prices p
                 WHERE (p.availability_zone, p.instance_type, p.product_description) = (r.az, r.instance_type, r.pd))
            next
        WHERE coalesce(next.at, 'infinity') > r.f
    ), pieces AS (
        SELECT u.instance_id, 'credits'::text AS kind, u.hour AS f, u.hour + interval '1 hour' AS t,
               u.cpu_surplus_credits_charged / 60 * cp.usd_per_vcpu_hour::float8 / 3600 AS usd_per_s,
               u.cpu_surplus_credits_charged AS credits
        FROM dashgen.instance_utilisation_hourly u
        JOIN dashgen.instances i ON i.instance_id = u.instance_id
        LEFT JOIN dashgen.credit_prices cp
               ON (cp.region, cp.family, cp.operating_system)
                = (i.region, split_part(i.instance_type, '.', 1), i.operating_system)
        WHERE u.cpu_surplus_credits_charged > 0 AND i.credit_mode IS DISTINCT FROM 'standard'
          AND u.hour < win_to AND u.hour + interval '1 hour' > win_from
        UNION ALL
        SELECT instance_id, 'spot', f, t, usd_per_hour::float8 / 3600, NULL FROM spot_pieces WHERE t > f
    )
    SELECT instance_id, kind, f, t, usd_per_s, credits FROM pieces WHERE f < win_to AND t > win_from
$$;

-- Per instance with charges beside On-Demand in [win_from, win_to]: surplus credits (count and USD) and the Spot
-- cost of its runs there (USD at the Spot prices; NULL = a price is unknown). The same rule as charge_pieces,
-- computed set-wise for speed (10,000 instances, Spot runs over 30 days: see bench/sync.py):
--   Spot  C(x) = the integral of a key's Spot price from its first known price to x (per price change: the sum
--         over the changes before it of price x duration, then price x the time since); a run clipped to the
--         range costs C(end) - C(start), both found by one sort of run ends and price changes per key (an as-of
--         join); a run starting before the first known price is unknown;
--   credits  the hours' credits x the share of the hour in the range, summed per instance, x the credit price.
CREATE OR REPLACE FUNCTION dashgen.extra_charges(win_from timestamptz, win_to timestamptz)
RETURNS TABLE (instance_id text, credits double precision, credit_usd double precision, spot_usd double precision)
LANGUAGE sql STABLE AS $$
    WITH credit AS (
        SELECT u.instance_id,
               sum(u.cpu_surplus_credits_charged * greatest(0, date_part('epoch',
                   least(u.hour + interval '1 hour', win_to) - greatest(u.hour, win_from))) / 3600) AS credits
        FROM dashgen.instance_utilisation_hourly u
        WHERE u.cpu_surplus_credits_charged > 0 AND u.hour < win_to AND u.hour + interval '1 hour' > win_from
        GROUP BY u.instance_id
    ), credit_usd AS (
        SELECT c.instance_id, c.credits,
               c.credits / 60 * cp.usd_per_vcpu_hour::float8 AS usd
        FROM credit c
        JOIN dashgen.instances i ON i.instance_id = c.instance_id
        LEFT JOIN dashgen.credit_prices cp
               ON (cp.region, cp.family, cp.operating_system)
                = (i.region, split_part(i.instance_type, '.', 1), i.operating_system)
        WHERE i.credit_mode IS DISTINCT FROM 'standard'
    ), runs AS (  -- Spot runs clipped to the range
        SELECT row_number() OVER () AS run, i.instance_id, i.availability_zone AS az, i.instance_type,
               coalesce(i.platform, 'Linux/UNIX') AS pd,
               greatest(iv.started_at, win_from) AS f, least(dashgen.billed_end(iv.started_at, iv.ended_at), win_to) AS t
        FROM dashgen.instances i
        JOIN dashgen.instance_intervals iv ON iv.instance_id = i.instance_id
        WHERE i.lifecycle = 'spot' AND iv.started_at < win_to
          AND dashgen.billed_end(iv.started_at, iv.ended_at) > win_from
    ), segs AS (  -- each price change with C at it (USD x seconds / 3600 = USD)
        SELECT p.availability_zone AS az, p.instance_type, p.product_description AS pd, p.at, p.usd_per_hour,
               coalesce(sum(p.usd_per_hour::float8 * date_part('epoch', p.next_at - p.at) / 3600)
                        OVER (PARTITION BY p.availability_zone, p.instance_type, p.product_description ORDER BY p.at
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS c_at
        FROM (SELECT p.*, lead(p.at) OVER (PARTITION BY p.availability_zone, p.instance_type, p.product_description
                                           ORDER BY p.at) AS next_at
              FROM dashgen.spot_prices p
              WHERE (p.availability_zone, p.instance_type, p.product_description) IN
                    (SELECT az, instance_type, pd FROM runs)) p
    ), points AS (  -- run ends and price changes in time order per key (a change at x applies at x): grp numbers
                    -- the price changes, so each run end shares its grp with the change in effect (grp 0: none)
        SELECT e.*, count(e.seg_at) OVER (PARTITION BY az, instance_type, pd ORDER BY x, seg_at IS NULL
                                          ROWS UNBOUNDED PRECEDING) AS grp
        FROM (SELECT az, instance_type, pd, f AS x, run, 0 AS which, NULL::timestamptz AS seg_at,
                     NULL::numeric AS usd_per_hour, NULL::float8 AS c_at FROM runs
              UNION ALL SELECT az, instance_type, pd, t, run, 1, NULL, NULL, NULL FROM runs
              UNION ALL SELECT az, instance_type, pd, at, NULL, NULL, at, usd_per_hour, c_at FROM segs) e
    ), c AS (  -- C at each run end (NULL: before the first known price)
        SELECT run, which,
               first_value(c_at) OVER g + first_value(usd_per_hour::float8) OVER g
                   * date_part('epoch', x - first_value(seg_at) OVER g) / 3600 AS c
        FROM points
        WINDOW g AS (PARTITION BY az, instance_type, pd, grp ORDER BY x, seg_at IS NULL)
    ), spot AS (
        SELECT r.instance_id,
               CASE WHEN bool_and(cs.c IS NOT NULL) THEN sum(ct.c - cs.c) END AS usd
        FROM runs r
        JOIN c cs ON cs.run = r.run AND cs.which = 0
        JOIN c ct ON ct.run = r.run AND ct.which = 1
        GROUP BY r.instance_id
    )
    SELECT coalesce(cu.instance_id, sp.instance_id), coalesce(cu.credits, 0),
           CASE WHEN cu.instance_id IS NULL THEN 0 ELSE cu.usd END, sp.usd
    FROM credit_usd cu FULL JOIN spot sp ON sp.instance_id = cu.instance_id
$$;

-- Per instance: what it is charged beside On-Demand x time, now: its purchase option, credit mode ('standard',
-- 'unlimited', 'unknown'; NULL = not burstable), the Spot price in effect (Spot instances) and the surplus
-- credits of its last stored hour as USD per hour (unlimited or unknown mode; NULL = price unknown).
CREATE OR REPLACE VIEW dashgen.instance_charge_basis AS
SELECT i.instance_id, i.lifecycle,
       CASE WHEN split_part(i.instance_type, '.', 1) IN ('t2', 't3', 't3a', 't4g')
            THEN coalesce(i.credit_mode, 'unknown') END AS credit_mode,
       spot.usd_per_hour AS spot_usd_per_hour, spot.at AS spot_price_at,
       cp.usd_per_vcpu_hour AS credit_usd_per_vcpu_hour, cp.source AS credit_price_source,
       CASE WHEN i.credit_mode = 'standard' OR last.credits IS NULL OR last.credits = 0 THEN 0
            ELSE last.credits / 60 * cp.usd_per_vcpu_hour::float8 END AS credit_usd_per_hour_recent,
       i.account_id
FROM dashgen.instances i
LEFT JOIN LATERAL (SELECT p.usd_per_hour, p.at FROM dashgen.spot_prices p
                   WHERE i.lifecycle = 'spot' AND p.availability_zone = i.availability_zone
                     AND p.instance_type = i.instance_type
                     AND p.product_description = coalesce(i.platform, 'Linux/UNIX')
                   ORDER BY p.at DESC LIMIT 1) spot ON true
LEFT JOIN dashgen.credit_prices cp
       ON (cp.region, cp.family, cp.operating_system)
        = (i.region, split_part(i.instance_type, '.', 1), i.operating_system)
LEFT JOIN LATERAL (SELECT u.cpu_surplus_credits_charged AS credits FROM dashgen.instance_utilisation_hourly u
                   WHERE split_part(i.instance_type, '.', 1) IN ('t2', 't3', 't3a', 't4g')
                     AND u.instance_id = i.instance_id AND u.cpu_surplus_credits_charged IS NOT NULL
                   ORDER BY u.hour DESC LIMIT 1) last ON true;

-- The version without account_id (before migration 070, or a 061 applied after 070: CONTRIBUTING.md rule 6)
-- cannot be replaced (its result columns differ): dropped first.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc
               WHERE oid = to_regprocedure('dashgen.instance_cost_totals(timestamptz, timestamptz)')
                 AND NOT 'account_id' = ANY (proargnames)) THEN
        DROP FUNCTION dashgen.instance_cost_totals(timestamptz, timestamptz);
    END IF;
END $$;

-- Every cost figure of an instance in [win_from, win_to] and to date: dashgen.instance_costs (On-Demand price x
-- billed seconds) with the Spot price instead of On-Demand for Spot instances, plus surplus credits.
--   compute_usd  Spot: the sum of its pieces at each Spot price; else billed seconds x the On-Demand price
--                (no run in the range: 0, even at an unknown price);
--   credit_usd   surplus credits charged (0 for standard mode and non-burstable types);
--   usd          compute_usd + credit_usd (NULL when either is unknown);
--   account_id   the instance's AWS account (NULL = not known yet; migration 070 dropped the version without it).
CREATE OR REPLACE FUNCTION dashgen.instance_cost_totals(win_from timestamptz, win_to timestamptz)
RETURNS TABLE (instance_id text, region text, instance_type text, name text, tags jsonb, tags_label text,
               state text, usd_per_hour numeric, price_source text, price_date date,
               seconds_in_range double precision, seconds_to_date double precision, running bool,
               lifecycle text, credit_mode text, spot_usd_per_hour numeric,
               credits_in_range double precision, credit_usd_in_range double precision,
               credit_usd_to_date double precision, compute_usd_in_range double precision,
               compute_usd_to_date double precision, usd_in_range double precision, usd_to_date double precision,
               account_id text)
LANGUAGE sql STABLE AS $$
    WITH c AS (SELECT * FROM dashgen.instance_costs(win_from, win_to)),
    figures AS (
        SELECT c.*, b.lifecycle, b.credit_mode, b.spot_usd_per_hour, b.account_id,
               coalesce(r.credits, 0) AS credits_in_range,
               CASE WHEN r.instance_id IS NULL THEN 0 ELSE r.credit_usd END AS credit_usd_in_range,
               CASE WHEN a.instance_id IS NULL THEN 0 ELSE a.credit_usd END AS credit_usd_to_date,
               CASE WHEN c.seconds_in_range = 0 THEN 0
                    WHEN b.lifecycle = 'spot' THEN r.spot_usd
                    ELSE c.seconds_in_range * c.usd_per_hour::float8 / 3600 END AS compute_usd_in_range,
               CASE WHEN c.seconds_to_date = 0 THEN 0
                    WHEN b.lifecycle = 'spot' THEN a.spot_usd
                    ELSE c.seconds_to_date * c.usd_per_hour::float8 / 3600 END AS compute_usd_to_date
        FROM c
        JOIN dashgen.instance_charge_basis b ON b.instance_id = c.instance_id
        LEFT JOIN dashgen.extra_charges(win_from, win_to) r ON r.instance_id = c.instance_id
        LEFT JOIN dashgen.extra_charges('-infinity', 'infinity') a ON a.instance_id = c.instance_id
    )
    SELECT instance_id, region, instance_type, name, tags, tags_label, state, usd_per_hour, price_source, price_date,
           seconds_in_range, seconds_to_date, running, lifecycle, credit_mode, spot_usd_per_hour, credits_in_range,
           credit_usd_in_range, credit_usd_to_date, compute_usd_in_range, compute_usd_to_date,
           compute_usd_in_range + credit_usd_in_range, compute_usd_to_date + credit_usd_to_date, account_id
    FROM figures
$$;

-- Estimated (dashgen's figure, dashgen.instance_cost_totals) beside billed (AWS's CUR, dashgen.billed_costs) per
-- instance, over the part of [win_from, win_to] the billed data covers: up to the end of the last line item AWS
-- delivered (billed_through, the same for every instance); the hours after it stay estimated only.
--   billed_usd              effective cost after Savings Plans and RIs (a line item partly in the range: prorated);
--   list_usd                the same line items' unblended cost (the rate card);
--   difference_pct          100 x (billed - estimated) / estimated (NULL when the estimate is unknown or 0);
--   effective_usd_per_hour  billed / the hours dashgen saw it run in that part (the rate actually paid).
-- An instance in the range without any billed line item has billed NULL (not in this CUR: another account?).
CREATE OR REPLACE FUNCTION dashgen.reconciliation(win_from timestamptz, win_to timestamptz)
RETURNS TABLE (instance_id text, billed_through timestamptz, estimated_usd double precision,
               billed_usd double precision, list_usd double precision, hours double precision,
               difference_pct double precision, effective_usd_per_hour double precision)
LANGUAGE sql STABLE AS $$
    WITH covered AS (  -- no row when nothing billed reaches into the range: no estimate computed either
        SELECT win_from AS f, least(win_to, max(b.usage_end)) AS t, max(b.usage_end) AS through
        FROM dashgen.billed_costs b
        HAVING max(b.usage_end) > win_from
    ), est AS (
        SELECT c.instance_id, c.usd_in_range, c.seconds_in_range
        FROM covered, dashgen.instance_cost_totals(covered.f, covered.t) c
        WHERE covered.t > covered.f AND c.seconds_in_range > 0
    ), billed AS (
        SELECT b.instance_id, sum(b.billed_usd::float8 * o.frac) AS billed, sum(b.list_usd::float8 * o.frac) AS list
        FROM covered
        JOIN dashgen.billed_costs b ON b.usage_start < covered.t AND b.usage_end > covered.f,
        LATERAL (SELECT date_part('epoch', least(b.usage_end, covered.t) - greatest(b.usage_start, covered.f))
                        / date_part('epoch', b.usage_end - b.usage_start) AS frac) o
        GROUP BY b.instance_id
    )
    SELECT coalesce(e.instance_id, b.instance_id), (SELECT through FROM covered), e.usd_in_range, b.billed, b.list,
           coalesce(e.seconds_in_range, 0) / 3600,
           100 * (b.billed - e.usd_in_range) / nullif(e.usd_in_range, 0),
           b.billed / nullif(e.seconds_in_range / 3600, 0)
    FROM est e FULL JOIN billed b ON b.instance_id = e.instance_id
$$;
