-- Content encryption at rest: a key-id column beside each sealable field (NULL means
-- plaintext), and search vectors that skip sealed values.
ALTER TABLE messages ADD COLUMN content_key_id TEXT;
ALTER TABLE documents ADD COLUMN body_key_id TEXT;

ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', CASE WHEN content_key_id IS NULL THEN left(content, 100000) ELSE '' END)
) STORED;
CREATE INDEX messages__search ON messages USING GIN (search);

ALTER TABLE documents DROP COLUMN search;
ALTER TABLE documents ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', title || ' ' || CASE WHEN body_key_id IS NULL THEN left(body, 100000) ELSE '' END)
) STORED;
CREATE INDEX documents__search ON documents USING GIN (search);
