-- Erasure (right to be forgotten).
--
-- The audit chain, version 2 (ceneca_domain::audit): an entry's personal fields
-- (`source_ip`, `details`) are covered by the MAC through a salted commitment, so an erase
-- can drop them (and the salt) while the chain still verifies. Entries sealed before this
-- migration have no commitment and keep their fields.
ALTER TABLE audit_log ADD COLUMN personal_salt TEXT;
ALTER TABLE audit_log ADD COLUMN personal_commitment TEXT;
-- An audit entry's actor outlives the account, as a pseudonymous id: `actor_id` no longer
-- references `users` (ON DELETE SET NULL would change MACed content when an account goes).
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_actor_id_fkey;

-- An account being erased: set when the erase starts (the account is closed then), so an
-- interrupted erase is found and finished (by `ceneca user erase` or a maintenance run).
ALTER TABLE users ADD COLUMN erasing_since TIMESTAMPTZ;
CREATE INDEX users__erasing_since ON users (erasing_since) WHERE erasing_since IS NOT NULL;

-- What an erase of a member does to what they wrote in the organization's workspaces:
-- `delete` it (unset: the default) or `anonymise` it (kept, without its author).
ALTER TABLE organizations ADD COLUMN erasure TEXT CHECK (erasure IN ('delete', 'anonymise'));
