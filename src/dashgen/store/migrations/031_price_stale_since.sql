-- A transient Price List API failure keeps the last known price (issue 10, point 5): the row keeps its value,
-- source and fetched_at, and says since when the API could not confirm it. Cleared by the next sync that reads
-- the price again. Only API prices become stale: a price never read from the API is replaced as before.
ALTER TABLE dashgen.instance_prices ADD COLUMN stale_since timestamptz;  -- NULL: confirmed by the last sync that asked
COMMENT ON COLUMN dashgen.instance_prices.stale_since IS
    'the first sync that could not read this price from the Price List API (NULL: confirmed); the value is the last known';
