-- Search ranks a caller's most recent matches, found by walking messages newest first
-- (postgres/search.rs). Walked by creation time, a date filter starts and stops the walk
-- where its dates are, instead of reading every newer or older row to find none (0.24 s
-- for `created_before` early in a million messages, and as long for a `created_after` a
-- minute ago); and an author's messages are walked on their own, instead of every row of
-- the workspace for an author who wrote few (0.17 s for none). The author index also
-- serves erasure and export, which find a user's messages by author.
--
-- Built here in the migration's transaction, which holds writes to messages meanwhile
-- (about a second per million messages). On a large database, build them first while
-- it serves, under these names, and this migration then keeps them:
--   CREATE INDEX CONCURRENTLY messages__created_at__id ON messages (created_at, id);
--   CREATE INDEX CONCURRENTLY messages__author_id__id ON messages (author_id, id);
CREATE INDEX IF NOT EXISTS messages__created_at__id ON messages (created_at, id);
CREATE INDEX IF NOT EXISTS messages__author_id__id ON messages (author_id, id);
