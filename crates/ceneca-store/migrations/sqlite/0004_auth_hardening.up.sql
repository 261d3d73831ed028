-- The last TOTP time step each account used: a code is accepted once (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN mfa_last_step INTEGER;
-- Failed log-ins are counted per account or typed identifier (resource_id).
CREATE INDEX audit_log__resource_id ON audit_log (resource_id);
