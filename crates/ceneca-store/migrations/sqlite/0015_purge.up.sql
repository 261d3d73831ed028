-- Purge (issue 14): rows in the bin longer than `retention.purge_after_days` are deleted
-- for good by maintenance. These indexes find them without reading the live rows (the
-- bin is small beside them), and find the sync conflicts that copied a purged row's
-- values, which go with it.
CREATE INDEX organizations__purge ON organizations (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces__purge ON workspaces (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX projects__purge ON projects (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX threads__purge ON threads (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX documents__purge ON documents (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX messages__purge ON messages (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX sync_conflicts__entity_id ON sync_conflicts (entity_id);
