DROP INDEX attachments__storage_key;
-- Rows still waiting for their content have no hash to keep: they go.
DELETE FROM attachments WHERE sha256 IS NULL;
ALTER TABLE attachments ALTER COLUMN sha256 SET NOT NULL;
ALTER TABLE attachments ALTER COLUMN mime_type DROP DEFAULT;
ALTER TABLE attachments ALTER COLUMN size_bytes DROP DEFAULT;
