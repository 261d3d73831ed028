-- The last TOTP time step each account used: a code is accepted once (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN mfa_last_step INTEGER;
-- Failed log-ins are counted per account or typed identifier (resource_id).
CREATE INDEX audit_log__resource_id ON audit_log (resource_id);
-- Device tokens used to last ten years: bring existing ones under the device policy
-- (90 days by default; a device logs in again after that).
UPDATE sessions
SET expires_at = MIN(expires_at, strftime('%Y-%m-%dT%H:%M:%S', 'now', '+90 days') || '.000000Z')
WHERE kind = 'device';
