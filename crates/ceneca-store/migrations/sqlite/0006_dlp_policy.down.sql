-- Reverts 0006.
ALTER TABLE workspaces DROP COLUMN dlp_policy;
ALTER TABLE organizations DROP COLUMN dlp_policy;
