SELECT name AS __text, dashgen.hex(name) AS __value FROM dashgen.experiments ORDER BY 1
