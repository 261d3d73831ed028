-- The thumbnails' blobs, no longer named, are removed by the orphan sweep.
DROP INDEX attachments__thumbnail_key;
DROP INDEX attachments__thumbnails_pending;
UPDATE attachments SET thumbnail = NULL;
ALTER TABLE attachments DROP COLUMN thumbnail_key;
