DROP INDEX threads__archive_candidates;
ALTER TABLE attachments DROP COLUMN content_removed_at;
ALTER TABLE organizations DROP COLUMN archive_after_days;
