-- Reverts 0002. Sealed rows keep their ciphertext: decrypt them (turn the setting off and
-- rewrite them) before going down, or they will read as base64 text.
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE documents DROP COLUMN search;
ALTER TABLE messages DROP COLUMN content_key_id;
ALTER TABLE documents DROP COLUMN body_key_id;
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED;
CREATE INDEX messages__search ON messages USING GIN (search);
ALTER TABLE documents ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || left(body, 100000))) STORED;
CREATE INDEX documents__search ON documents USING GIN (search);
