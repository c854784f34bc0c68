SELECT clause FROM dashgen.insights_selection(${region:sqlstring}, dashgen.unhex(${tag_key:sqlstring}), ARRAY[${tag_value:sqlstring}]::text[], ARRAY[${name:sqlstring}]::text[], NULL)
