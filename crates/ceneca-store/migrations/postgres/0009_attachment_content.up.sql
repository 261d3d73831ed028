-- Attachment content (issue 13): the server stores the file and sets what describes it.
-- A row is created before its content arrives, so `sha256` is NULL until then, the size
-- 0 and the type unknown.
ALTER TABLE attachments ALTER COLUMN sha256 DROP NOT NULL;
ALTER TABLE attachments ALTER COLUMN mime_type SET DEFAULT 'application/octet-stream';
ALTER TABLE attachments ALTER COLUMN size_bytes SET DEFAULT 0;
-- What a client asserted before is not the server's word: no storage key (the server
-- never stored their bytes).
UPDATE attachments SET storage_key = NULL WHERE storage_key IS NOT NULL;
-- Which rows hold a blob: its reference count, and the orphan sweep's question.
CREATE INDEX attachments__storage_key ON attachments (storage_key) WHERE storage_key IS NOT NULL;
