-- An experiment is never deleted by `dashgen sync` (issue 10, point 4): one that is no longer in the config
-- (or a sync run without the config) is kept, with its stored progress, and marked here; it is shown as such
-- (the cost dashboard's "Budget and deadline" table, `dashgen rightsize --experiment`, the sync's output)
-- until `dashgen db forget-experiment NAME` removes it. Back in the config: the mark is cleared.
ALTER TABLE dashgen.experiments ADD COLUMN removed_from_config_at timestamptz;  -- NULL: in the config
COMMENT ON COLUMN dashgen.experiments.removed_from_config_at IS
    'the first sync whose config no longer had this experiment (NULL: in the config); kept until forget-experiment';
