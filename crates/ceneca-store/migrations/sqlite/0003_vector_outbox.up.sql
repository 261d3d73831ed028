-- The vector outbox (DESIGN.md §3 rule 3): every change to an embedding row leaves an entry
-- in the same transaction, written by the database itself so that no path (cascades
-- included) can miss one. The indexer applies entries to the vector index and deletes
-- them only once the index has made them durable.
CREATE TABLE vector_outbox (
    seq INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    point_id TEXT NOT NULL
) STRICT;
CREATE TRIGGER embedding_records_outbox_insert AFTER INSERT ON embedding_records BEGIN
    INSERT INTO vector_outbox (collection, point_id) VALUES (new.collection, new.id);
END;
CREATE TRIGGER embedding_records_outbox_update AFTER UPDATE ON embedding_records BEGIN
    INSERT INTO vector_outbox (collection, point_id) VALUES (new.collection, new.id);
END;
CREATE TRIGGER embedding_records_outbox_delete AFTER DELETE ON embedding_records BEGIN
    INSERT INTO vector_outbox (collection, point_id) VALUES (old.collection, old.id);
END;
