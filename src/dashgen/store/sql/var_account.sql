SELECT account_id AS __text, dashgen.hex(account_id) AS __value FROM (SELECT DISTINCT account_id FROM dashgen.instances WHERE account_id IS NOT NULL) a ORDER BY 1
