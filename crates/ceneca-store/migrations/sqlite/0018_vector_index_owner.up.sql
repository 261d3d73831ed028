-- Which points of a write still wait in the vector outbox: `?wait=true` on a node that does
-- not apply the outbox asks until none does, and the drift check asks about the points that
-- differ. Without it each question scans the outbox, which is long while the index is down.
CREATE INDEX vector_outbox__points ON vector_outbox (collection, point_id);

-- Which vector index the outbox has fed, and the mark of its last applied round (kept in
-- the index's folder too): an index of a node's own (the embedded engine) that takes the
-- indexer's lease and finds another one named here, or another mark (a copied or restored
-- folder, behind what was applied since), is rebuilt from the database before it serves; a
-- check of such an index is refused rather than feed an index nobody serves.
CREATE TABLE vector_index_owner (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    index_id TEXT NOT NULL,
    fed TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
