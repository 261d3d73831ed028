-- The store stores every packed body plain again before this runs (PostgreSQL cannot
-- unpack in SQL: migrate::UNPACKS_BEFORE_DOWN); the search vector is generated again.
DROP TRIGGER messages_search ON messages;
DROP FUNCTION ceneca_messages_search();
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', CASE WHEN content_key_id IS NULL THEN left(content, 100000) ELSE '' END)
) STORED;
CREATE INDEX messages__search ON messages USING GIN (search);

DROP INDEX messages__pack_candidates;
ALTER TABLE messages DROP COLUMN content_packed;
