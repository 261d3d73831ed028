-- The thumbnails' blobs, no longer named, are removed by the orphan sweep.
DROP INDEX attachments__thumbnail_key;
DROP INDEX attachments__thumbnails_pending;
-- Thumbnails count no more: their bytes leave the counters they were kept in.
UPDATE storage_usage SET bytes = bytes - (
    SELECT COALESCE(SUM(a.thumbnail_bytes), 0) FROM attachments a
    WHERE a.workspace_id = storage_usage.workspace_id
      AND a.thumbnail_key IS NOT NULL)
WHERE category = 'attachments';
UPDATE attachments SET thumbnail = NULL;
ALTER TABLE attachments DROP COLUMN thumbnail_bytes;
ALTER TABLE attachments DROP COLUMN thumbnail_key;
