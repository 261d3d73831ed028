-- Reverts 0005. Keyed entries keep their MACs in `hash`: a binary without the keyed chain
-- reports them as altered.
ALTER TABLE audit_log DROP COLUMN mac_key_id;
ALTER TABLE audit_log ALTER COLUMN sequence ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('audit_log', 'sequence'), COALESCE(MAX(sequence), 0) + 1, false) FROM audit_log;
