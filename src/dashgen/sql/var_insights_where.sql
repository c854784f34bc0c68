SELECT clause FROM dashgen.insights_selection(${region:sqlstring}, ${tag_key:sqlstring}, ARRAY[${tag_value:sqlstring}]::text[], ARRAY[${name:sqlstring}]::text[], ARRAY[${instance:sqlstring}]::text[])
