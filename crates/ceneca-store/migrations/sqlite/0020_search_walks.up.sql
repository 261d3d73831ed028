-- Nothing on SQLite: its search reads a bounded window of the FTS5 index, newest rows
-- first (sqlite/search/recent.rs), and never walks the messages table. PostgreSQL's
-- migration 20 adds the indexes its search walks; the versions stay in step.
SELECT 1;
