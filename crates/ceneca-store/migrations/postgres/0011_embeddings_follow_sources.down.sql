DROP TRIGGER messages_embeddings_follow ON messages;
DROP TRIGGER documents_embeddings_follow ON documents;
DROP TRIGGER attachments_embeddings_follow ON attachments;
DROP FUNCTION ceneca_embeddings_follow_source();
