-- The keyed audit chain (ceneca_domain::audit).
-- Entries name the key-ring id their HMAC-SHA256 was made with; entries written before
-- this migration keep a NULL key id and their plain SHA-256 hash, and verify as a legacy
-- prefix of the chain.
ALTER TABLE audit_log ADD COLUMN mac_key_id TEXT;
-- The store numbers entries itself, under the chain lock, so that numbers are contiguous
-- and a gap means a deleted entry (an identity column skips the values that rolled-back
-- transactions took). Binaries from before this migration can no longer append audit
-- entries (they leave `sequence` to the database): upgrade every node together.
ALTER TABLE audit_log ALTER COLUMN sequence DROP IDENTITY;
