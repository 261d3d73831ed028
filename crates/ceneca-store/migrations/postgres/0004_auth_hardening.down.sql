DROP INDEX IF EXISTS audit_log__resource_id;
ALTER TABLE users DROP COLUMN mfa_last_step;
