-- Retention (issue 13): an organization's own archive policy (NULL follows the server's),
-- when retention removed an archived thread's attachment file, and an index that finds
-- the threads a maintenance run may archive without reading the others. What counts
-- against quotas changed with it (an attachment's file only while kept, JSON metadata by
-- its value): the store recounts the counters after this version (migrate::RECOUNTS_STORAGE).
ALTER TABLE organizations ADD COLUMN archive_after_days INTEGER CHECK (archive_after_days BETWEEN 0 AND 36500);
ALTER TABLE attachments ADD COLUMN content_removed_at TEXT;
CREATE INDEX threads__archive_candidates ON threads (last_message_at, id)
    WHERE is_archived = false AND pinned = false AND deleted_at IS NULL;
