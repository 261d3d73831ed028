DROP INDEX attachments__storage_key;
CREATE TABLE attachments_old (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
    document_id TEXT REFERENCES documents (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    sha256 TEXT NOT NULL,
    storage_key TEXT,
    thumbnail TEXT,
    encrypted INTEGER NOT NULL DEFAULT 0
) STRICT;
-- Rows still waiting for their content have no hash to keep: they go.
INSERT INTO attachments_old SELECT id, created_at, updated_at, workspace_id, message_id,
    document_id, file_name, mime_type, size_bytes, sha256, storage_key, thumbnail, encrypted
FROM attachments WHERE sha256 IS NOT NULL;
DROP TABLE attachments;
ALTER TABLE attachments_old RENAME TO attachments;
CREATE INDEX attachments__workspace_id__created_at ON attachments (workspace_id, created_at);
CREATE INDEX attachments__message_id ON attachments (message_id);
CREATE INDEX attachments__document_id ON attachments (document_id);
