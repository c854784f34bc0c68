SELECT name AS __text, dashgen.hex(name) AS __value FROM dashgen.experiments WHERE dashgen.experiment_in_accounts(name, ARRAY[${account:sqlstring}]) ORDER BY 1
