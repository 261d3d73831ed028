-- Erasure (right to be forgotten).
--
-- The audit chain, version 2 (ceneca_domain::audit): an entry's personal fields
-- (`source_ip`, `details`) are covered by the MAC through a salted commitment, so an erase
-- can drop them (and the salt) while the chain still verifies. Entries sealed before this
-- migration have no commitment and keep their fields.
--
-- An audit entry's actor outlives the account, as a pseudonymous id: `actor_id` no longer
-- references `users` (ON DELETE SET NULL would change MACed content when an account goes).
-- SQLite cannot drop a foreign key, so the table is rebuilt; nothing references it.
CREATE TABLE audit_log__erasure (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    at TEXT NOT NULL,
    actor_id TEXT,
    source_ip TEXT,
    action TEXT NOT NULL,
    resource_type TEXT,
    resource_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details TEXT NOT NULL DEFAULT '{}',
    query_hash TEXT,
    data_sources TEXT NOT NULL DEFAULT '[]',
    prev_hash TEXT,
    hash TEXT,
    mac_key_id TEXT,
    personal_salt TEXT,
    personal_commitment TEXT
) STRICT;
INSERT INTO audit_log__erasure (sequence, id, created_at, updated_at, at, actor_id, source_ip,
    action, resource_type, resource_id, outcome, details, query_hash, data_sources, prev_hash,
    hash, mac_key_id)
SELECT sequence, id, created_at, updated_at, at, actor_id, source_ip, action, resource_type,
    resource_id, outcome, details, query_hash, data_sources, prev_hash, hash, mac_key_id
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log__erasure RENAME TO audit_log;
CREATE INDEX audit_log__actor_id ON audit_log (actor_id);
CREATE INDEX audit_log__resource_id ON audit_log (resource_id);

-- An account being erased: set when the erase starts (the account is closed then), so an
-- interrupted erase is found and finished (by `ceneca user erase` or a maintenance run).
ALTER TABLE users ADD COLUMN erasing_since TEXT;
CREATE INDEX users__erasing_since ON users (erasing_since) WHERE erasing_since IS NOT NULL;

-- What an erase of a member does to what they wrote in the organization's workspaces:
-- `delete` it (unset: the default) or `anonymise` it (kept, without its author).
ALTER TABLE organizations ADD COLUMN erasure TEXT CHECK (erasure IN ('delete', 'anonymise'));
