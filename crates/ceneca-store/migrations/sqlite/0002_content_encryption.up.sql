-- Content encryption at rest: a key-id column beside each sealable field (NULL means
-- plaintext), and full-text triggers that index sealed values as empty text.
ALTER TABLE messages ADD COLUMN content_key_id TEXT;
ALTER TABLE documents ADD COLUMN body_key_id TEXT;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content)
    VALUES (new.rowid, CASE WHEN new.content_key_id IS NULL THEN new.content ELSE '' END);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    VALUES ('delete', old.rowid, CASE WHEN old.content_key_id IS NULL THEN old.content ELSE '' END);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, content_key_id ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    VALUES ('delete', old.rowid, CASE WHEN old.content_key_id IS NULL THEN old.content ELSE '' END);
    INSERT INTO messages_fts (rowid, content)
    VALUES (new.rowid, CASE WHEN new.content_key_id IS NULL THEN new.content ELSE '' END);
END;

DROP TRIGGER documents_fts_insert;
DROP TRIGGER documents_fts_delete;
DROP TRIGGER documents_fts_update;
CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
    INSERT INTO documents_fts (rowid, title, body)
    VALUES (new.rowid, new.title, CASE WHEN new.body_key_id IS NULL THEN new.body ELSE '' END);
END;
CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, body)
    VALUES ('delete', old.rowid, old.title, CASE WHEN old.body_key_id IS NULL THEN old.body ELSE '' END);
END;
CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, body, body_key_id ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, body)
    VALUES ('delete', old.rowid, old.title, CASE WHEN old.body_key_id IS NULL THEN old.body ELSE '' END);
    INSERT INTO documents_fts (rowid, title, body)
    VALUES (new.rowid, new.title, CASE WHEN new.body_key_id IS NULL THEN new.body ELSE '' END);
END;
