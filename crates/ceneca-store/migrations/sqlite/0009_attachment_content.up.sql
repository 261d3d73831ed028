-- Attachment content (issue 13): the server stores the file and sets what describes it.
-- A row is created before its content arrives, so `sha256` is NULL until then, the size
-- 0 and the type unknown. SQLite cannot drop a NOT NULL in place: the table is rebuilt.
CREATE TABLE attachments_new (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
    document_id TEXT REFERENCES documents (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL DEFAULT 'application/octet-stream',
    size_bytes INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    sha256 TEXT,
    storage_key TEXT,
    thumbnail TEXT,
    encrypted INTEGER NOT NULL DEFAULT 0
) STRICT;
-- What a client asserted before is not the server's word: rows keep their metadata, but
-- no storage key (the server never stored their bytes).
INSERT INTO attachments_new (id, created_at, updated_at, workspace_id, message_id, document_id,
    file_name, mime_type, size_bytes, sha256, storage_key, thumbnail, encrypted)
SELECT id, created_at, updated_at, workspace_id, message_id, document_id,
    file_name, mime_type, size_bytes, sha256, NULL, thumbnail, encrypted
FROM attachments;
DROP TABLE attachments;
ALTER TABLE attachments_new RENAME TO attachments;
CREATE INDEX attachments__workspace_id__created_at ON attachments (workspace_id, created_at);
CREATE INDEX attachments__message_id ON attachments (message_id);
CREATE INDEX attachments__document_id ON attachments (document_id);
-- Which rows hold a blob: its reference count, and the orphan sweep's question.
CREATE INDEX attachments__storage_key ON attachments (storage_key) WHERE storage_key IS NOT NULL;
