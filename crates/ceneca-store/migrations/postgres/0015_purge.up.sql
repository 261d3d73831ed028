-- Purge (issue 14): rows in the bin longer than `retention.purge_after_days` are deleted
-- for good by maintenance. These indexes find them without reading the live rows (the
-- bin is small beside them), and find the sync conflicts that copied a purged row's
-- values, which go with it. The references set to NULL when what they name is deleted
-- get indexes too: without one, every message deleted read every message (a reply's
-- `parent_id`), and a thread of 20,000 held the writer for 45 s.
CREATE INDEX organizations__purge ON organizations (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces__purge ON workspaces (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX projects__purge ON projects (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX threads__purge ON threads (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX documents__purge ON documents (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX messages__purge ON messages (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX sync_conflicts__entity_id ON sync_conflicts (entity_id);
CREATE INDEX messages__parent_id ON messages (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX ai_interactions__thread_id ON ai_interactions (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX ai_interactions__message_id ON ai_interactions (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX orchestration_step_results__interaction_id ON orchestration_step_results (interaction_id) WHERE interaction_id IS NOT NULL;
