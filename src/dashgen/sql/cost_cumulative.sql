-- Cost dashboard, "Cumulative cost": cost since the start of the time range, per tag value and in total,
-- at Grafana's interval resolution. Each billed run adds +rate at its start and -rate at its end; the cost at t is
-- t * (sum of rates so far) - (sum of rate * time so far). Instances without a known price are left out.
WITH w AS (
    SELECT $__timeFrom()::timestamptz AS t0, $__timeTo()::timestamptz AS t1,
           greatest($__interval_ms / 1000.0, 60)::float8 AS step
), runs AS (
    SELECT coalesce(b.tags ->> ${tag_key:sqlstring}, '(no tag)') AS tag, (b.usd_per_hour / 3600)::float8 AS rate,
           greatest(iv.started_at, w.t0) AS s,
           least(dashgen.billed_end(iv.started_at, iv.ended_at), w.t1) AS e
    FROM w
    JOIN dashgen.instance_intervals iv
      ON iv.started_at < w.t1 AND coalesce(iv.ended_at, 'infinity') > w.t0 - interval '60 seconds'
    JOIN dashgen.instance_cost_basis b ON b.instance_id = iv.instance_id
    WHERE b.usd_per_hour IS NOT NULL
      AND dashgen.selected(b.tags, b.name, ${tag_key:sqlstring}, ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}])
), events AS (
    SELECT tag, date_part('epoch', s) AS at, rate FROM runs WHERE e > s
    UNION ALL
    SELECT tag, date_part('epoch', e), -rate FROM runs WHERE e > s
), per_tag AS (
    SELECT ev.tag AS series, ceil((ev.at - date_part('epoch', w.t0)) / w.step)::int AS k,
           sum(ev.rate) AS r, sum(ev.rate * ev.at) AS q
    FROM events ev, w
    GROUP BY 1, 2
), agg AS (
    SELECT series, k, r, q FROM per_tag
    UNION ALL
    SELECT '(all selected)', k, sum(r), sum(q) FROM per_tag GROUP BY k
), points AS (  -- the cost is linear between buckets with events: those buckets, the start and the end suffice
    SELECT series, k, sum(r) AS r, sum(q) AS q
    FROM (SELECT series, k, r, q FROM agg
          UNION ALL
          SELECT a.series, e.k, 0, 0
          FROM (SELECT DISTINCT series FROM agg) a, w, LATERAL (VALUES (0), (ceil(date_part('epoch', w.t1 - w.t0) / w.step)::int)) e(k)) x
    GROUP BY 1, 2
)
SELECT least(w.t0 + make_interval(secs => p.k * w.step), w.t1) AS "time", p.series AS metric,
       date_part('epoch', least(w.t0 + make_interval(secs => p.k * w.step), w.t1)) * sum(p.r) OVER win
           - sum(p.q) OVER win AS value
FROM points p, w
WINDOW win AS (PARTITION BY p.series ORDER BY p.k)
ORDER BY 1, 2
