-- Entries whose actor's account was erased lose their actor (the foreign key comes back),
-- which their MAC covered; and entries sealed as chain version 2 lose their commitments,
-- which no older binary verifies anyway: `ceneca audit verify` reports the first such
-- entry as altered after this (the head file and printed heads still prove what was there).
ALTER TABLE organizations DROP COLUMN erasure;
DROP INDEX users__erasing_since;
ALTER TABLE users DROP COLUMN erasing_since;
CREATE TABLE audit_log__erasure (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    at TEXT NOT NULL,
    actor_id TEXT REFERENCES users (id) ON DELETE SET NULL,
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
    mac_key_id TEXT
) STRICT;
INSERT INTO audit_log__erasure (sequence, id, created_at, updated_at, at, actor_id, source_ip,
    action, resource_type, resource_id, outcome, details, query_hash, data_sources, prev_hash,
    hash, mac_key_id)
SELECT sequence, id, created_at, updated_at, at,
    CASE WHEN actor_id IN (SELECT id FROM users) THEN actor_id END,
    source_ip, action, resource_type, resource_id, outcome, details, query_hash, data_sources,
    prev_hash, hash, mac_key_id
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log__erasure RENAME TO audit_log;
CREATE INDEX audit_log__actor_id ON audit_log (actor_id);
CREATE INDEX audit_log__resource_id ON audit_log (resource_id);
