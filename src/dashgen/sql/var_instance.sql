SELECT instance_id FROM dashgen.instances WHERE region = ${region:sqlstring} AND dashgen.selected(tags, name, ${tag_key:sqlstring}, ARRAY[${tag_value:sqlstring}], ARRAY[${name:sqlstring}]) ORDER BY 1
