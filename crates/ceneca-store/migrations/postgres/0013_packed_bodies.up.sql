-- Compressed message bodies (issue 13): retention packs old bodies into `content_packed`
-- (a zstd frame; `content` is left empty, see store/packing.rs), and an index finds the
-- bodies a maintenance run may pack without reading the others.
--
-- The search vector can no longer be generated from `content`: a packed body would lose
-- its words. It becomes a column a trigger keeps (DROP EXPRESSION keeps every value, no
-- rewrite): computed from the text whenever a plain body is written, kept as it was when
-- a body is packed (packing does not change the text). Snippets of packed bodies are
-- made from the unpacked text by the search (postgres/search.rs).
ALTER TABLE messages ADD COLUMN content_packed BYTEA;
CREATE INDEX messages__pack_candidates ON messages (updated_at, id)
    WHERE content_packed IS NULL AND length(content) >= 128;

ALTER TABLE messages ALTER COLUMN search DROP EXPRESSION;
CREATE FUNCTION ceneca_messages_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.content_key_id IS NOT NULL THEN
        -- Sealed: nothing to index, packed or not.
        NEW.search := to_tsvector('simple', '');
    ELSIF NEW.content_packed IS NULL THEN
        NEW.search := to_tsvector('simple', left(NEW.content, 100000));
    ELSIF TG_OP = 'UPDATE' AND OLD.content_key_id IS NULL THEN
        -- Packed from plain text (the store packs only the text the row holds): the same words.
        NEW.search := OLD.search;
    ELSE
        -- Packed text the database never saw plain (no path writes this): not indexed.
        NEW.search := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_search BEFORE INSERT OR UPDATE OF content, content_key_id, content_packed ON messages
    FOR EACH ROW EXECUTE FUNCTION ceneca_messages_search();
