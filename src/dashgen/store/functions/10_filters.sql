-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- Dashboard variables on the pricing store carry their values hex-encoded: Grafana rewrites what it interpolates
-- into a panel's SQL (see migration 045 for where), lowercase hex digits pass unchanged. The All value stays the
-- sentinel '__all__' (dashgen.sqlvars.STORE_ALL), which no hex string can be.

-- The value a dashboard variable holds for `value` (UTF-8 bytes as lowercase hex; '' for '').
CREATE OR REPLACE FUNCTION dashgen.hex(value text)
RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(convert_to(value, 'UTF8'), 'hex')
$$;

-- The text behind a variable value; NULL (matches nothing) for anything that is not the hex of UTF-8 text,
-- e.g. a value typed into the variable's box: never an error that would break the panel.
CREATE OR REPLACE FUNCTION dashgen.unhex(value text)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN convert_from(decode(value, 'hex'), 'UTF8');
EXCEPTION WHEN invalid_parameter_value OR character_not_in_repertoire OR untranslatable_character THEN
    RETURN NULL;
END
$$;

-- Whether `value` is among the values chosen in a dashboard variable: '__all__' = the variable's All value,
-- any other choice is dashgen.hex of a value (a choice that is not matches nothing). STABLE like dashgen.hex,
-- so that both functions stay inlined into the queries that call them.
CREATE OR REPLACE FUNCTION dashgen.chosen(value text, choices text[])
RETURNS bool LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '__all__' = ANY (choices) OR dashgen.hex(value) = ANY (choices)
$$;

-- Whether an instance passes the dashboard's tag and Name filters (`tag_key` is the decoded key).
CREATE OR REPLACE FUNCTION dashgen.selected(tags jsonb, name text, tag_key text, tag_values text[], names text[])
RETURNS bool LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT dashgen.chosen(tags ->> tag_key, tag_values) AND dashgen.chosen(name, names)
$$;

-- One row per instance with what its cost needs: the price (NULL = unknown) and where it came from; its AWS
-- account (NULL = not known yet, migration 070).
CREATE OR REPLACE VIEW dashgen.instance_cost_basis AS
SELECT i.instance_id, i.region, i.instance_type, i.name, i.tags, i.state, i.operating_system, i.tenancy,
       p.usd_per_hour, p.source AS price_source, p.price_date, i.account_id
FROM dashgen.instances i
LEFT JOIN dashgen.instance_prices p
       ON p.region = i.region AND p.instance_type = i.instance_type
      AND p.operating_system = i.operating_system AND p.tenancy = i.tenancy;
