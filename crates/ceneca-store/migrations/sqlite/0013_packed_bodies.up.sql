-- Compressed message bodies (issue 13): retention packs old bodies into `content_packed`
-- (a zstd frame; `content` is left empty, see store/packing.rs), and an index finds the
-- bodies a maintenance run may pack without reading the others.
--
-- The full-text index now reads bodies through the view `messages_fts_text`, which
-- unpacks the packed ones with `ceneca_unpack` (a function every Ceneca connection registers): a
-- packed body keeps its words, its snippets and its deletes. Packing itself leaves the
-- index alone (the text does not change); every other change to a body is indexed as
-- before. Sealed bodies are still indexed as empty text.
ALTER TABLE messages ADD COLUMN content_packed BLOB;
CREATE INDEX messages__pack_candidates ON messages (updated_at, id)
    WHERE content_packed IS NULL AND length(content) >= 128;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
CREATE VIEW messages_fts_text AS
    SELECT rowid AS message_rowid,
           CASE WHEN content_key_id IS NOT NULL THEN '' WHEN content_packed IS NULL THEN content ELSE ceneca_unpack(content_packed) END AS content
    FROM messages;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content = 'messages_fts_text', content_rowid = 'message_rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
-- Nothing is packed yet: the bodies are read as they are.
INSERT INTO messages_fts (rowid, content)
    SELECT rowid, CASE WHEN content_key_id IS NULL THEN content ELSE '' END FROM messages;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content)
    VALUES (new.rowid, CASE WHEN new.content_key_id IS NOT NULL THEN '' WHEN new.content_packed IS NULL THEN new.content ELSE ceneca_unpack(new.content_packed) END);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    VALUES ('delete', old.rowid, CASE WHEN old.content_key_id IS NOT NULL THEN '' WHEN old.content_packed IS NULL THEN old.content ELSE ceneca_unpack(old.content_packed) END);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, content_key_id, content_packed ON messages
WHEN old.content_packed IS NOT NULL OR new.content_packed IS NULL
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
    VALUES ('delete', old.rowid, CASE WHEN old.content_key_id IS NOT NULL THEN '' WHEN old.content_packed IS NULL THEN old.content ELSE ceneca_unpack(old.content_packed) END);
    INSERT INTO messages_fts (rowid, content)
    VALUES (new.rowid, CASE WHEN new.content_key_id IS NOT NULL THEN '' WHEN new.content_packed IS NULL THEN new.content ELSE ceneca_unpack(new.content_packed) END);
END;
