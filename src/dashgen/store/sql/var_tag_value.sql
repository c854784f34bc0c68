SELECT v AS __text, dashgen.hex(v) AS __value FROM (SELECT DISTINCT tags ->> dashgen.unhex(${tag_key:sqlstring}) AS v FROM dashgen.instances) t WHERE v IS NOT NULL ORDER BY 1
