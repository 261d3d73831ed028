-- Reverts 0005. Keyed entries keep their MACs in `hash`: a binary without the keyed chain
-- reports them as altered.
ALTER TABLE audit_log DROP COLUMN mac_key_id;
