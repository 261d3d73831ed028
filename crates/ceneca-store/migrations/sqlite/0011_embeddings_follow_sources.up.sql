-- Embeddings follow their source (issue 13): a message, document or attachment removed for
-- good takes its embeddings with it, whatever removed it (a delete, a foreign key's
-- cascade, a purge), in the same transaction; the vector outbox triggers then take them
-- out of the index. The storage counters lose what the embeddings took. (A source in the
-- bin keeps its embeddings: searches hide them while the source cannot be read, and a
-- restore shows them again.)
CREATE TRIGGER messages_embeddings_follow AFTER DELETE ON messages BEGIN
    UPDATE storage_usage SET
        row_count = row_count - (SELECT COUNT(*) FROM embedding_records
            WHERE collection = 'messages' AND source_id = old.id),
        bytes = bytes - (SELECT COALESCE(SUM(length(vector)), 0) FROM embedding_records
            WHERE collection = 'messages' AND source_id = old.id)
    WHERE workspace_id = old.workspace_id AND category = 'embeddings';
    DELETE FROM embedding_records WHERE collection = 'messages' AND source_id = old.id;
END;
CREATE TRIGGER documents_embeddings_follow AFTER DELETE ON documents BEGIN
    UPDATE storage_usage SET
        row_count = row_count - (SELECT COUNT(*) FROM embedding_records
            WHERE collection = 'documents' AND source_id = old.id),
        bytes = bytes - (SELECT COALESCE(SUM(length(vector)), 0) FROM embedding_records
            WHERE collection = 'documents' AND source_id = old.id)
    WHERE workspace_id = old.workspace_id AND category = 'embeddings';
    DELETE FROM embedding_records WHERE collection = 'documents' AND source_id = old.id;
END;
CREATE TRIGGER attachments_embeddings_follow AFTER DELETE ON attachments BEGIN
    UPDATE storage_usage SET
        row_count = row_count - (SELECT COUNT(*) FROM embedding_records
            WHERE collection = 'attachments' AND source_id = old.id),
        bytes = bytes - (SELECT COALESCE(SUM(length(vector)), 0) FROM embedding_records
            WHERE collection = 'attachments' AND source_id = old.id)
    WHERE workspace_id = old.workspace_id AND category = 'embeddings';
    DELETE FROM embedding_records WHERE collection = 'attachments' AND source_id = old.id;
END;
