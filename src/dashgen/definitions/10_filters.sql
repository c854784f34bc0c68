-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Whether `value` is among the values chosen in a dashboard variable ('__all__' = the variable's All value).
CREATE OR REPLACE FUNCTION dashgen.chosen(value text, choices text[])
RETURNS bool LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '__all__' = ANY (choices) OR value = ANY (choices)
$$;

-- Whether an instance passes the dashboard's tag and Name filters.
CREATE OR REPLACE FUNCTION dashgen.selected(tags jsonb, name text, tag_key text, tag_values text[], names text[])
RETURNS bool LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT dashgen.chosen(tags ->> tag_key, tag_values) AND dashgen.chosen(name, names)
$$;

-- One row per instance with what its cost needs: the price (NULL = unknown) and where it came from.
CREATE OR REPLACE VIEW dashgen.instance_cost_basis AS
SELECT i.instance_id, i.region, i.instance_type, i.name, i.tags, i.state, i.operating_system, i.tenancy,
       p.usd_per_hour, p.source AS price_source, p.price_date
FROM dashgen.instances i
LEFT JOIN dashgen.instance_prices p
       ON p.region = i.region AND p.instance_type = i.instance_type
      AND p.operating_system = i.operating_system AND p.tenancy = i.tenancy;
