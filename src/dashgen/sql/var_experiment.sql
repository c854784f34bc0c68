SELECT name FROM dashgen.experiments ORDER BY 1
