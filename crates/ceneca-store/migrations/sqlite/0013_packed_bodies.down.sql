-- The store stores every packed body plain again before this runs, with the counters
-- (migrate::UNPACKS_BEFORE_DOWN); then the index goes back to reading `messages` directly.

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
DROP VIEW messages_fts_text;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content = 'messages', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (rowid, content)
    SELECT rowid, CASE WHEN content_key_id IS NULL THEN content ELSE '' END FROM messages;
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

DROP INDEX messages__pack_candidates;
ALTER TABLE messages DROP COLUMN content_packed;
