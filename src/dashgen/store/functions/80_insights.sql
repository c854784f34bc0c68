-- Definitions (CREATE OR REPLACE), re-applied by dashgen.store.migrate after the migrations whenever a
-- migration or a definition file changed: edit here, never in a landed migration (CONTRIBUTING.md).

-- The CloudWatch side of the dashboards' instance selection: the Metrics Insights WHERE clause that says the
-- store's Tag / Name / Instance selection as CloudWatch resource-tag and InstanceId conditions (why: the
-- header of migration 040).

-- The versions without `accounts` (before migration 070, or 040 applied after 070: CONTRIBUTING.md rule 6)
-- would make a call ambiguous: dropped.
DROP FUNCTION IF EXISTS dashgen.insights_selection(text, text, text[], text[], text[], int);
DROP FUNCTION IF EXISTS dashgen.insights_where(text, text[], text[], text[], int);

-- `value` as a Metrics Insights string literal; NULL for a value one cannot hold as is (a `'`, a `\`, a control
-- character): such a value matches nothing on CloudWatch rather than break the query.
CREATE OR REPLACE FUNCTION dashgen.insights_literal(value text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[^''\\[:cntrl:]]+$' THEN '''' || value || '''' END
$$;

-- The clause for decoded choices; NULL = the variable's All (no condition). Each other filter becomes
-- `(term OR term ...)`, the filters are joined by AND; a filter with no writable term matches no instance
-- (`InstanceId = '-'`). With no filter at all: `WHERE InstanceId != '-'`, true for every instance (a variable's
-- value is never empty). The clause keeps within `budget` characters (1,500 of the 2,048 by default; the tests
-- check the longest query with the worst case): each filter gets an equal share, an unused share passes to the
-- next, every filter keeps at least its first term, the terms past the budget are left out (`kept_*` say which
-- are in: dashgen.insights_selection counts the instances that leaves out).
-- `accounts` (AWS account ids, NULL = every account) is written first, as `AWS.AccountId = '...'`: the label Grafana's
-- own Metrics Insights builder writes for an account (grafana/grafana-cloudwatch-datasource
-- src/language/cloudwatch-sql/SQLGenerator.ts `appendAccountId`), which CloudWatch evaluates in a monitoring
-- account of cross-account observability (AWS docs, "Query components and syntax in CloudWatch Metrics Insights",
-- WHERE: limit a query to one account). Migration 070 dropped the version without it.
CREATE OR REPLACE FUNCTION dashgen.insights_where(tag_key text, tag_values text[], names text[], instances text[],
                                       budget int DEFAULT 1500, accounts text[] DEFAULT NULL, OUT clause text,
                                       OUT kept_tag_values text[], OUT kept_names text[], OUT kept_instances text[],
                                       OUT kept_accounts text[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    tag_label text := CASE WHEN tag_key ~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN 'tag.' || tag_key
                           WHEN tag_key ~ '^[^"\\[:cntrl:]]+$' THEN 'tag."' || tag_key || '"' END;
    labels text[] := ARRAY['AWS.AccountId', tag_label, 'tag.Name', 'InstanceId'];
    choices text[];
    terms text[];
    kept text[];
    parts text[] := ARRAY[]::text[];
    n_groups int := (accounts IS NOT NULL)::int + (tag_values IS NOT NULL)::int + (names IS NOT NULL)::int
                    + (instances IS NOT NULL)::int;
    left_over int := budget;
    share int;
    used int;
    v text;
BEGIN
    FOR i IN 1..4 LOOP
        choices := CASE i WHEN 1 THEN accounts WHEN 2 THEN tag_values WHEN 3 THEN names ELSE instances END;
        CONTINUE WHEN choices IS NULL;
        n_groups := n_groups - 1;
        kept := ARRAY[]::text[];
        terms := ARRAY[]::text[];
        share := greatest(left_over / (n_groups + 1), 0);
        used := 2;  -- the parentheses
        FOREACH v IN ARRAY choices LOOP
            CONTINUE WHEN labels[i] IS NULL OR v IS NULL OR dashgen.insights_literal(v) IS NULL;
            EXIT WHEN cardinality(terms) > 0
                  AND used + length(labels[i] || ' = ' || dashgen.insights_literal(v)) + 4 > share;
            terms := terms || (labels[i] || ' = ' || dashgen.insights_literal(v));
            kept := kept || v;
            used := used + length(terms[cardinality(terms)]) + CASE WHEN cardinality(terms) > 1 THEN 4 ELSE 0 END;
        END LOOP;
        IF cardinality(terms) = 0 THEN
            parts := parts || 'InstanceId = ''-'''::text;
            used := 16;
        ELSE
            parts := parts || ('(' || array_to_string(terms, ' OR ') || ')');
        END IF;
        left_over := left_over - used - 5;  -- ' AND '
        CASE i WHEN 1 THEN kept_accounts := kept; WHEN 2 THEN kept_tag_values := kept; WHEN 3 THEN kept_names := kept;
               ELSE kept_instances := kept; END CASE;
    END LOOP;
    clause := CASE WHEN cardinality(parts) = 0 THEN 'WHERE InstanceId != ''-'''
                   ELSE 'WHERE ' || array_to_string(parts, ' AND ') END;
END
$$;

-- The selection of a dashboard in `region` from its variables as Grafana sends them (arrays of the chosen
-- values, All being whatever dashgen.chosen reads as All; `instances` NULL on a dashboard without an Instance
-- variable; `accounts` NULL: every account): the Metrics Insights clause, how many instances of the store it selects, and how many of those the
-- clause leaves out for want of room. A selection whose instance ids all fit in the budget (about 40) is sent
-- as those ids: it needs nothing more from CloudWatch. A larger one is sent as resource-tag conditions
-- (tag.<key>, tag.Name), which CloudWatch evaluates only with "resource tags for telemetry" turned on for the
-- account (AWS docs, "Resource tags for telemetry"); hand-picked instances then come as ids, as many as fit; an
-- Account choice (not All) then comes as the accounts of the selected instances (dashgen.insights_where). Sent as
-- ids, the selection needs no account term: an instance id is one instance of one account.
CREATE OR REPLACE FUNCTION dashgen.insights_selection(region text, tag_key text, tag_values text[], names text[],
                                           instances text[], budget int DEFAULT 1500, accounts text[] DEFAULT NULL)
RETURNS TABLE (clause text, selected bigint, not_drawn bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH sel AS (
        SELECT i.instance_id, i.tags ->> tag_key AS tag_value, i.name, i.account_id
        FROM dashgen.instances i
        WHERE i.region = insights_selection.region AND dashgen.selected(i.tags, i.name, tag_key, tag_values, names)
          AND (instances IS NULL OR dashgen.chosen(i.instance_id, instances))
          AND (accounts IS NULL OR dashgen.chosen(i.account_id, accounts))
    ), every AS (
        SELECT coalesce(dashgen.chosen(NULL, tag_values), false) AS tags,
               coalesce(dashgen.chosen(NULL, names), false) AS names,
               instances IS NULL OR coalesce(dashgen.chosen(NULL, instances), false) AS instances,
               accounts IS NULL OR coalesce(dashgen.chosen(NULL, accounts), false) AS accounts
    ), by_id AS (
        -- (a term takes 16 characters and more: no more than budget / 16 + 1 ids are worth reading)
        SELECT * FROM dashgen.insights_where(tag_key, NULL, NULL,
                                             ARRAY(SELECT instance_id FROM sel ORDER BY 1 LIMIT budget / 16 + 1),
                                             budget)
    ), by_tag AS (
        SELECT * FROM every, dashgen.insights_where(
            tag_key,
            CASE WHEN every.tags THEN NULL ELSE ARRAY(SELECT DISTINCT tag_value FROM sel ORDER BY 1) END,
            CASE WHEN every.names THEN NULL ELSE ARRAY(SELECT DISTINCT name FROM sel WHERE name IS NOT NULL
                                                       ORDER BY 1) END,
            CASE WHEN every.instances THEN NULL
                 ELSE ARRAY(SELECT instance_id FROM sel ORDER BY 1 LIMIT budget / 16 + 1) END,
            budget,
            CASE WHEN every.accounts THEN NULL
                 ELSE ARRAY(SELECT DISTINCT account_id FROM sel WHERE account_id IS NOT NULL ORDER BY 1) END) w
    ), n AS (
        SELECT count(*) AS selected FROM sel
    )
    SELECT CASE WHEN by_tag.tags AND by_tag.names AND by_tag.instances AND by_tag.accounts THEN by_tag.clause
                WHEN cardinality(by_id.kept_instances) = n.selected THEN by_id.clause
                ELSE by_tag.clause END,
           n.selected,
           CASE WHEN by_tag.tags AND by_tag.names AND by_tag.instances AND by_tag.accounts THEN 0
                WHEN cardinality(by_id.kept_instances) = n.selected THEN 0
                ELSE (SELECT count(*) FROM sel
                       WHERE (by_tag.kept_tag_values IS NOT NULL
                              AND NOT coalesce(sel.tag_value = ANY (by_tag.kept_tag_values), false))
                          OR (by_tag.kept_names IS NOT NULL AND NOT coalesce(sel.name = ANY (by_tag.kept_names), false))
                          OR (by_tag.kept_instances IS NOT NULL AND NOT sel.instance_id = ANY (by_tag.kept_instances))
                          OR (by_tag.kept_accounts IS NOT NULL
                              AND NOT coalesce(sel.account_id = ANY (by_tag.kept_accounts), false)))
           END
    FROM by_id, by_tag, n
$$;
