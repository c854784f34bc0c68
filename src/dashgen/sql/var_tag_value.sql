SELECT DISTINCT tags ->> ${tag_key:sqlstring} FROM dashgen.instances WHERE tags ->> ${tag_key:sqlstring} IS NOT NULL ORDER BY 1
