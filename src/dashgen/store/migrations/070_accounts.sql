-- Several AWS accounts in one store (issue 13, "Accounts and regions at once"): `dashgen sync` reads every
-- (account, region) pair of `[aws] accounts` and stores the account with each instance and volume.
--
-- The key stays `instance_id` (and `volume_id`): EC2 gives every instance an id of its own, never reused, in
-- every account and region (AWS: "resource IDs ... are unique"), so the runs, utilisation, billed costs and the
-- cost pages keep joining on it alone. The account is an attribute: which pair the instance was last seen in.
-- Should AWS ever give the same id in two accounts, the sync that sees both writes the one it read last and says
-- so in one line (docs/configuration.md, "Accounts").
--
-- NULL = not known yet: rows stored before this migration get their account at the next sync that sees them.
-- Until then they are counted under the dashboards' All only, and a pair that answers for their region may close
-- their runs when they are gone (as before this migration; a wrong close is re-opened by the next sync that
-- sees them running).
ALTER TABLE dashgen.instances ADD COLUMN account_id text;
ALTER TABLE dashgen.volumes ADD COLUMN account_id text;
CREATE INDEX instances_account ON dashgen.instances (account_id, region);

-- The cost-event rollups (migration 003) group by account too, so the cumulative-cost panel keeps reading whole
-- hours and days from them under an account filter ('' = unknown, as the instances' NULL). The rows already
-- there are all of unknown accounts, as every instance is until its next sync; the triggers (store definitions,
-- 30_cost_events.sql) move an instance's events to its account's group when the sync sets it.
ALTER TABLE dashgen.cost_events_hourly ADD COLUMN account_id text NOT NULL DEFAULT '';
ALTER TABLE dashgen.cost_events_daily ADD COLUMN account_id text NOT NULL DEFAULT '';
ALTER TABLE dashgen.cost_events_hourly DROP CONSTRAINT cost_events_hourly_pkey;
ALTER TABLE dashgen.cost_events_hourly
    ADD PRIMARY KEY (bucket, region, instance_type, operating_system, tenancy, tags, account_id);
ALTER TABLE dashgen.cost_events_daily DROP CONSTRAINT cost_events_daily_pkey;
ALTER TABLE dashgen.cost_events_daily
    ADD PRIMARY KEY (bucket, region, instance_type, operating_system, tenancy, tags, account_id);

-- Definitions whose arguments or result columns change (CONTRIBUTING.md, rule 3): the definition files re-create
-- them, in this same transaction, with the account (an `accounts` filter, an `account_id` column).
DROP FUNCTION IF EXISTS dashgen.instance_cost_totals(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS dashgen.cumulative_cost(timestamptz, timestamptz, double precision, text, text[], text[]);
DROP FUNCTION IF EXISTS dashgen.insights_selection(text, text, text[], text[], text[], int);
DROP FUNCTION IF EXISTS dashgen.insights_where(text, text[], text[], text[], int);
