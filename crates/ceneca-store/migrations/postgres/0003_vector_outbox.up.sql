-- The vector outbox (DESIGN.md §3 rule 3): every change to an embedding row leaves an entry
-- in the same transaction, written by the database itself so that no path (cascades
-- included) can miss one. The indexer applies entries to the vector index and deletes
-- them only once the index has made them durable.
CREATE TABLE vector_outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection TEXT NOT NULL,
    point_id UUID NOT NULL
);
CREATE FUNCTION ceneca_vector_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO vector_outbox (collection, point_id) VALUES (OLD.collection, OLD.id);
        RETURN OLD;
    END IF;
    INSERT INTO vector_outbox (collection, point_id) VALUES (NEW.collection, NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER embedding_records_outbox AFTER INSERT OR UPDATE OR DELETE ON embedding_records
    FOR EACH ROW EXECUTE FUNCTION ceneca_vector_outbox();
