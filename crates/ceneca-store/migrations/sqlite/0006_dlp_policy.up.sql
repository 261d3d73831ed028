-- Data-loss prevention policies (ceneca_domain::dlp): an organization and a workspace may
-- each set one; unset follows the server's `[dlp] policy`, and the strictest applies.
ALTER TABLE organizations ADD COLUMN dlp_policy TEXT CHECK (dlp_policy IN ('off', 'flag', 'redact', 'reject'));
ALTER TABLE workspaces ADD COLUMN dlp_policy TEXT CHECK (dlp_policy IN ('off', 'flag', 'redact', 'reject'));
