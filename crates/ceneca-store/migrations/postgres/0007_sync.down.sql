-- Reverts 0007.
DROP TABLE sync_conflicts;
DROP INDEX sync_events__entity_id;
ALTER TABLE sync_events DROP COLUMN payload;
