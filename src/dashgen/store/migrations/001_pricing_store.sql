-- The pricing store: instance specs and prices, the EC2 inventory, running intervals and experiments.
-- Applied once by dashgen.store.migrate (one transaction), recorded in dashgen.schema_migrations.

CREATE TABLE dashgen.instance_types (
    instance_type text PRIMARY KEY,
    family        text,
    vcpu          int,
    memory_mib    int,
    arch          text,
    burstable     bool,
    gpus          int,
    bare_metal    bool,
    hypervisor    text
);

CREATE TABLE dashgen.instance_prices (
    region           text NOT NULL,
    instance_type    text NOT NULL,
    operating_system text NOT NULL,
    tenancy          text NOT NULL,
    usd_per_hour     numeric CHECK (usd_per_hour IS NULL OR usd_per_hour > 0),  -- NULL = unknown, never 0
    vcpu             int,
    memory_mib       int,
    source           text NOT NULL CHECK (source IN ('aws-price-list-api', 'bundled-snapshot')),
    price_date       date,
    fetched_at       timestamptz NOT NULL,
    PRIMARY KEY (region, instance_type, operating_system, tenancy)
);

CREATE TABLE dashgen.instances (
    instance_id      text PRIMARY KEY,
    region           text NOT NULL,
    instance_type    text NOT NULL,
    name             text,
    tags             jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL,
    launch_time      timestamptz,
    platform         text,
    operating_system text NOT NULL DEFAULT 'Linux',   -- Price List API spelling: Linux, Windows, RHEL, SUSE...
    tenancy          text NOT NULL DEFAULT 'Shared',  -- Price List API spelling: Shared, Dedicated, Host
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL
);
CREATE INDEX instances_tags ON dashgen.instances USING gin (tags jsonb_path_ops);
CREATE INDEX instances_name ON dashgen.instances (name);

CREATE TABLE dashgen.instance_intervals (
    instance_id text NOT NULL REFERENCES dashgen.instances ON DELETE CASCADE,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,  -- NULL: still running
    PRIMARY KEY (instance_id, started_at),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX instance_intervals_open ON dashgen.instance_intervals (instance_id) WHERE ended_at IS NULL;

CREATE TABLE dashgen.experiments (
    name                text PRIMARY KEY,
    tag_key             text NOT NULL,
    tag_value           text NOT NULL,
    budget_usd          numeric NOT NULL,
    deadline            timestamptz NOT NULL,
    progress_namespace  text,
    progress_metric     text,
    progress_dimensions jsonb
);

-- Progress (0-100 %) of an experiment, read from its CloudWatch metric by `dashgen sync`.
CREATE TABLE dashgen.experiment_progress (
    experiment text NOT NULL REFERENCES dashgen.experiments ON DELETE CASCADE,
    at         timestamptz NOT NULL,
    percent    numeric NOT NULL,
    PRIMARY KEY (experiment, at)
);

-- Whether `value` is among the values chosen in a dashboard variable ('__all__' = the variable's All value).
CREATE FUNCTION dashgen.chosen(value text, choices text[])
RETURNS bool LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '__all__' = ANY (choices) OR value = ANY (choices)
$$;

-- Whether an instance passes the dashboard's tag and Name filters.
CREATE FUNCTION dashgen.selected(tags jsonb, name text, tag_key text, tag_values text[], names text[])
RETURNS bool LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT dashgen.chosen(tags ->> tag_key, tag_values) AND dashgen.chosen(name, names)
$$;

-- One row per instance with what its cost needs: the price (NULL = unknown) and where it came from.
CREATE VIEW dashgen.instance_cost_basis AS
SELECT i.instance_id, i.region, i.instance_type, i.name, i.tags, i.state, i.operating_system, i.tenancy,
       p.usd_per_hour, p.source AS price_source, p.price_date
FROM dashgen.instances i
LEFT JOIN dashgen.instance_prices p
       ON p.region = i.region AND p.instance_type = i.instance_type
      AND p.operating_system = i.operating_system AND p.tenancy = i.tenancy;
