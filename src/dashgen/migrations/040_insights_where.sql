-- The CloudWatch side of the dashboards' instance selection (issue 15, defects 1 and 2).
--
-- The Tag / Name / Instance variables of the three dashboards come from the pricing store, so they mean the
-- same instances everywhere, untagged and unnamed ones included under All. The CloudWatch panels cannot list
-- those instances: Grafana sends a multi-value dimension as one SEARCH expression with an OR list, and
-- MetricDataQuery.Expression holds at most 2,048 characters (about 75 instance ids). They run Metrics Insights
-- instead (`SELECT ... FROM SCHEMA("AWS/EC2", InstanceId) <clause> GROUP BY InstanceId ORDER BY ... LIMIT 500`),
-- whose size does not grow with the fleet: the clause below says the selection as CloudWatch resource-tag and
-- InstanceId conditions (`tag.team = 'ml'`, AWS docs "Query components and syntax in CloudWatch Metrics
-- Insights", alarm example `WHERE tag.Environment = 'Prod'`). A hidden dashboard variable holds it
-- (sql/var_insights_where*.sql) and Grafana inserts it into each query as is (format `raw`).
--
-- Arguments are decoded values; NULL = the variable's All (no condition). Each non-All filter becomes
-- `(term OR term ...)`, the filters are joined by AND. A value a Metrics Insights string literal cannot hold as
-- is (a `'`, a `\`, a control character) is left out: it matches nothing on CloudWatch, and a filter left with
-- no term matches no instance (`InstanceId = '-'`), never a broken query. With no filter at all the clause is
-- `WHERE InstanceId != '-'` (true for every instance: a variable's value is never empty). The clause keeps
-- within `budget` characters (default 1,500 of the 2,048; the test checks the worst case): each filter gets an
-- equal share, an unused share passes to the next, every filter keeps at least one term, and the terms past
-- the budget (the last instances of a long hand-picked list, say) are dropped.
CREATE FUNCTION dashgen.insights_literal(value text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[^''\\[:cntrl:]]+$' THEN '''' || value || '''' END
$$;

CREATE FUNCTION dashgen.insights_where(tag_key text, tag_values text[], names text[], instances text[],
                                       budget int DEFAULT 1500)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    tag_label text := CASE WHEN tag_key ~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN 'tag.' || tag_key
                           WHEN tag_key ~ '^[^"\\[:cntrl:]]+$' THEN 'tag."' || tag_key || '"' END;
    terms text[];
    kept text[];
    parts text[] := ARRAY[]::text[];
    n_groups int := 0;
    left_over int := budget;
    share int;
    used int;
    t text;
BEGIN
    n_groups := (tag_values IS NOT NULL)::int + (names IS NOT NULL)::int + (instances IS NOT NULL)::int;
    FOR i IN 1..3 LOOP
        terms := CASE i
            WHEN 1 THEN CASE WHEN tag_values IS NULL THEN NULL
                             WHEN tag_label IS NULL THEN ARRAY[]::text[]
                             ELSE ARRAY(SELECT tag_label || ' = ' || dashgen.insights_literal(v)
                                        FROM unnest(tag_values) WITH ORDINALITY u(v, o)
                                        WHERE dashgen.insights_literal(v) IS NOT NULL ORDER BY o) END
            WHEN 2 THEN CASE WHEN names IS NULL THEN NULL
                             ELSE ARRAY(SELECT 'tag.Name = ' || dashgen.insights_literal(v)
                                        FROM unnest(names) WITH ORDINALITY u(v, o)
                                        WHERE dashgen.insights_literal(v) IS NOT NULL ORDER BY o) END
            ELSE CASE WHEN instances IS NULL THEN NULL
                      ELSE ARRAY(SELECT 'InstanceId = ' || dashgen.insights_literal(v)
                                 FROM unnest(instances) WITH ORDINALITY u(v, o)
                                 WHERE dashgen.insights_literal(v) IS NOT NULL ORDER BY o) END
        END;
        CONTINUE WHEN terms IS NULL;
        IF cardinality(terms) = 0 THEN
            parts := parts || 'InstanceId = ''-'''::text;
            n_groups := n_groups - 1;
            CONTINUE;
        END IF;
        share := greatest(left_over / greatest(n_groups, 1), 0);
        kept := ARRAY[]::text[];
        used := 2;  -- the parentheses
        FOREACH t IN ARRAY terms LOOP
            EXIT WHEN cardinality(kept) > 0 AND used + length(t) + 4 > share;
            kept := kept || t;
            used := used + length(t) + CASE WHEN cardinality(kept) > 1 THEN 4 ELSE 0 END;
        END LOOP;
        parts := parts || ('(' || array_to_string(kept, ' OR ') || ')');
        left_over := left_over - used - 5;  -- ' AND '
        n_groups := n_groups - 1;
    END LOOP;
    IF cardinality(parts) = 0 THEN
        RETURN 'WHERE InstanceId != ''-''';
    END IF;
    RETURN 'WHERE ' || array_to_string(parts, ' AND ');
END
$$;
