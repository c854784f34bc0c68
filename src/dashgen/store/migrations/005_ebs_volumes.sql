-- EBS volumes and their storage cost (issue 4, optional part): what `dashgen sync` read from describe_volumes,
-- the Price List API's USD per GB-month of each volume type in use, and the storage cost per instance.
-- A volume's cost goes to the instance it is attached to at the last sync, at its current size, from its
-- creation (else the first sync that saw it) until the sync that no longer saw it (else now). EBS bills
-- provisioned storage per GB-month, prorated by the second; a month here is 730 hours (AWS's calculator).

CREATE TABLE dashgen.volumes (
    volume_id   text PRIMARY KEY,
    region      text NOT NULL,
    volume_type text NOT NULL,         -- the Price List API's volumeApiName: gp3, gp2, io1, io2, st1, sc1, standard
    size_gib    int NOT NULL CHECK (size_gib >= 0),
    instance_id text,                  -- attached to (NULL: available)
    created_at  timestamptz,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    gone_at     timestamptz            -- deleted: the first sync that no longer saw it in a region that answered
);
CREATE INDEX volumes_instance ON dashgen.volumes (instance_id) WHERE instance_id IS NOT NULL;

CREATE TABLE dashgen.ebs_prices (
    region           text NOT NULL,
    volume_type      text NOT NULL,
    usd_per_gb_month numeric CHECK (usd_per_gb_month IS NULL OR usd_per_gb_month > 0),  -- NULL = unknown, never 0
    source           text NOT NULL CHECK (source IN ('aws-price-list-api')),
    price_date       date,
    fetched_at       timestamptz NOT NULL,
    PRIMARY KEY (region, volume_type)
);

-- Per instance with volumes: GiB attached now, and the storage cost inside [win_from, win_to] in USD (NULL when
-- a volume that existed in the range has no known price).
CREATE FUNCTION dashgen.ebs_costs(win_from timestamptz, win_to timestamptz)
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
