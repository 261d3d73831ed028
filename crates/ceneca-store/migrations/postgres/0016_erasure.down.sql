-- Entries whose actor's account was erased lose their actor (the foreign key comes back),
-- which their MAC covered; and entries sealed as chain version 2 lose their commitments,
-- which no older binary verifies anyway: `ceneca audit verify` reports the first such
-- entry as altered after this (the head file and printed heads still prove what was there).
ALTER TABLE organizations DROP COLUMN erasure;
DROP INDEX users__erasing_since;
ALTER TABLE users DROP COLUMN erasing_since;
UPDATE audit_log SET actor_id = NULL
WHERE actor_id IS NOT NULL AND actor_id NOT IN (SELECT id FROM users);
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_id_fkey
    FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE audit_log DROP COLUMN personal_commitment;
ALTER TABLE audit_log DROP COLUMN personal_salt;
