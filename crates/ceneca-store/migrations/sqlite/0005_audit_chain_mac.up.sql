-- The keyed audit chain (ceneca_domain::audit).
-- Entries name the key-ring id their HMAC-SHA256 was made with; entries written before
-- this migration keep a NULL key id and their plain SHA-256 hash, and verify as a legacy
-- prefix of the chain. (The store now numbers entries itself; an INTEGER PRIMARY KEY
-- takes the numbers it is given.)
ALTER TABLE audit_log ADD COLUMN mac_key_id TEXT;
