-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Per instance with volumes: GiB attached now, and the storage cost inside [win_from, win_to] in USD (NULL when
-- a volume that existed in the range has no known price).
CREATE OR REPLACE FUNCTION dashgen.ebs_costs(win_from timestamptz, win_to timestamptz)
RETURNS TABLE (instance_id text, gib bigint, usd_in_range double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT v.instance_id, coalesce(sum(v.size_gib) FILTER (WHERE v.gone_at IS NULL), 0),
           CASE WHEN bool_and(p.usd_per_gb_month IS NOT NULL OR s.seconds = 0)
                THEN coalesce(sum(v.size_gib * p.usd_per_gb_month::float8 * s.seconds / (730 * 3600)), 0) END
    FROM dashgen.volumes v
    LEFT JOIN dashgen.ebs_prices p ON (p.region, p.volume_type) = (v.region, v.volume_type),
    LATERAL (SELECT greatest(0, date_part('epoch', least(win_to, coalesce(v.gone_at, now()))
                                                   - greatest(win_from, coalesce(v.created_at, v.first_seen))))
             AS seconds) s
    WHERE v.instance_id IS NOT NULL
    GROUP BY v.instance_id
$$;
