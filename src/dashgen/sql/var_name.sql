SELECT DISTINCT name FROM dashgen.instances WHERE name IS NOT NULL AND dashgen.selected(tags, name, ${tag_key:sqlstring}, ARRAY[${tag_value:sqlstring}], ARRAY['__all__']) ORDER BY 1
