-- Thumbnails (issue 13): `thumbnail` says where an image's thumbnail stands ('pending',
-- 'ready', 'unavailable'; NULL for a file that is no image, or none), `thumbnail_key`
-- names its blob (never shown), `thumbnail_bytes` its size (counted against the quota
-- while it is kept). Images uploaded before are queued for one, and an index finds the
-- queue, workspace by workspace, without reading the other attachments.
ALTER TABLE attachments ADD COLUMN thumbnail_key TEXT;
ALTER TABLE attachments ADD COLUMN thumbnail_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE attachments SET thumbnail = CASE
    WHEN storage_key IS NOT NULL AND mime_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp') THEN 'pending'
    ELSE NULL END;
CREATE INDEX attachments__thumbnails_pending ON attachments (workspace_id, updated_at, id) WHERE thumbnail = 'pending';
CREATE INDEX attachments__thumbnail_key ON attachments (thumbnail_key) WHERE thumbnail_key IS NOT NULL;
