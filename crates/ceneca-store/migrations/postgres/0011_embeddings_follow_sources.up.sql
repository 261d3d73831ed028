-- Embeddings follow their source (issue 13): a message, document or attachment removed for
-- good takes its embeddings with it, whatever removed it (a delete, a foreign key's
-- cascade, a purge), in the same transaction; the vector outbox triggers then take them
-- out of the index. The storage counters lose what the embeddings took. (A source in the
-- bin keeps its embeddings: searches hide them while the source cannot be read, and a
-- restore shows them again.)
CREATE FUNCTION ceneca_embeddings_follow_source() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE storage_usage SET
        row_count = row_count - gone.n,
        bytes = bytes - gone.size
    FROM (
        SELECT COUNT(*) AS n, COALESCE(SUM(octet_length(vector)), 0) AS size
        FROM embedding_records WHERE collection = TG_ARGV[0] AND source_id = OLD.id
    ) gone
    WHERE workspace_id = OLD.workspace_id AND category = 'embeddings' AND gone.n > 0;
    DELETE FROM embedding_records WHERE collection = TG_ARGV[0] AND source_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER messages_embeddings_follow AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION ceneca_embeddings_follow_source('messages');
CREATE TRIGGER documents_embeddings_follow AFTER DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION ceneca_embeddings_follow_source('documents');
CREATE TRIGGER attachments_embeddings_follow AFTER DELETE ON attachments
    FOR EACH ROW EXECUTE FUNCTION ceneca_embeddings_follow_source('attachments');
