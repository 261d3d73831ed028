-- Storage statistics (issue 13): what each workspace stores, by category, kept by every
-- write (ceneca_domain::storage says what counts and how; rows in the bin do not). Filled
-- here from the data, as `ceneca storage reconcile` recounts it.
CREATE TABLE storage_usage (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    category TEXT NOT NULL CHECK (category IN ('messages', 'documents', 'attachments', 'embeddings', 'metadata')),
    row_count INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, category)
) STRICT;
INSERT INTO storage_usage (workspace_id, category, row_count, bytes)
SELECT workspace_id, category, COUNT(*), SUM(size) FROM (
    SELECT workspace_id, 'messages' AS category, COALESCE(length(CAST(content AS BLOB)), 0) AS size FROM messages WHERE deleted_at IS NULL
    UNION ALL
    SELECT workspace_id, 'documents' AS category, COALESCE(length(CAST(title AS BLOB)), 0) + COALESCE(length(CAST(body AS BLOB)), 0) AS size FROM documents WHERE deleted_at IS NULL
    UNION ALL
    SELECT workspace_id, 'attachments' AS category, COALESCE(length(CAST(file_name AS BLOB)), 0) + COALESCE(size_bytes, 0) AS size FROM attachments
    UNION ALL
    SELECT workspace_id, 'embeddings' AS category, COALESCE(length(CAST(vector AS BLOB)), 0) AS size FROM embedding_records
    UNION ALL
    SELECT workspace_id, 'metadata' AS category, COALESCE(length(CAST(title AS BLOB)), 0) AS size FROM threads WHERE deleted_at IS NULL
    UNION ALL
    SELECT workspace_id, 'metadata' AS category, COALESCE(length(CAST(name AS BLOB)), 0) + COALESCE(length(CAST(description AS BLOB)), 0) AS size FROM projects WHERE deleted_at IS NULL
) sized GROUP BY workspace_id, category;
