-- Replayable change log (issue 12): each change carries the new values of the fields it
-- wrote (`payload`), so a replica can apply it; a row's field clocks are folded from its
-- changes, found by `entity_id`. Conflicts are recorded, never dropped.
ALTER TABLE sync_events ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';
CREATE INDEX sync_events__entity_id ON sync_events (entity_id);

CREATE TABLE sync_conflicts (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    device_id TEXT REFERENCES devices (id) ON DELETE SET NULL,
    workspace_id TEXT REFERENCES workspaces (id) ON DELETE CASCADE,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('concurrent_edit', 'edit_lost_to_delete', 'unique_key')),
    change_id TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    lost_values TEXT NOT NULL DEFAULT '{}',
    winner_change_id TEXT NOT NULL,
    winner_hlc INTEGER NOT NULL
) STRICT;
CREATE INDEX sync_conflicts__workspace_id__created_at ON sync_conflicts (workspace_id, created_at);
CREATE INDEX sync_conflicts__user_id__created_at ON sync_conflicts (user_id, created_at);
