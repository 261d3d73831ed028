DROP INDEX sync_conflicts__entity_id;
DROP INDEX messages__purge;
DROP INDEX documents__purge;
DROP INDEX threads__purge;
DROP INDEX projects__purge;
DROP INDEX workspaces__purge;
DROP INDEX organizations__purge;
