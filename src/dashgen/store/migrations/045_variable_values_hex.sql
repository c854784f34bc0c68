-- Dashboard variables on the pricing store carry their values hex-encoded (issue 15, defect 3).
--
-- Grafana rewrites what it interpolates into a panel's SQL: the `sqlstring` format turns `"` into `\"`
-- (grafana/scenes formatRegistry.ts, sqlStringFormatter), and the PostgreSQL backend then runs its macro pass
-- over the whole text, values included (grafana/grafana pkg/tsdb/grafana-postgresql-datasource/macros.go:
-- every `$name(...)` is a macro, an unknown one fails the query; sqleng Interpolate replaces `$__interval`,
-- `$__interval_ms`, `$__unixEpochFrom()`, `$__unixEpochTo()` anywhere). So the variable queries (sql/var_*.sql)
-- give each option its real text (`__text`) and, as its value (`__value`), dashgen.hex(text): lowercase hex
-- digits, which neither pass changes. The SQL compares dashgen.hex(column) with the values, or decodes a single
-- value with dashgen.unhex. The All value stays the sentinel '__all__' (dashgen.sqlvars.STORE_ALL), which no
-- hex string can be: a real tag value `__all__` is '5f5f616c6c5f5f' and selects only itself.

-- The value a dashboard variable holds for `value` (UTF-8 bytes as lowercase hex; '' for '').
CREATE FUNCTION dashgen.hex(value text)
RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(convert_to(value, 'UTF8'), 'hex')
$$;

-- The text behind a variable value; NULL (matches nothing) for anything that is not the hex of UTF-8 text,
-- e.g. a value typed into the variable's box: never an error that would break the panel.
CREATE FUNCTION dashgen.unhex(value text)
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
