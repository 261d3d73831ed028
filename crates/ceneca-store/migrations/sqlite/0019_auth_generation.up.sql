-- A counter every change that can alter an authenticated caller moves, in the same
-- transaction: a server keeps sessions, users and scopes in memory with the counter they
-- were read at, and asks for the counter on each request (one row, one page), so a logout,
-- a revoked token, a suspension, a role or a membership changed by any process or any node
-- is seen by the very next request. Triggers, not the write path, move it, so that raw
-- statements (erasure, purge, the command line) move it too.
CREATE TABLE auth_generation (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    generation INTEGER NOT NULL
) STRICT;
-- Seeded with the microseconds since 1970, not 0: a database migrated down and up again (or
-- restored) must not meet a value a running server kept callers at. Each change adds one,
-- so the counter stays below the time of its next seeding.
INSERT INTO auth_generation (singleton, generation)
VALUES (1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));

-- A new session changes no kept caller; a row that replaces one (`INSERT OR REPLACE`, which
-- fires no delete trigger) does, so an insert whose key is taken moves the counter. Each
-- table's unique keys are asked, before the replacement removes the old row.
CREATE TRIGGER sessions__auth_replace BEFORE INSERT ON sessions
WHEN EXISTS (SELECT 1 FROM sessions WHERE id = NEW.id OR token_hash = NEW.token_hash)
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER sessions__auth_update AFTER UPDATE OF id, user_id, token_hash, kind, device_id, workspace_id, expires_at, revoked_at ON sessions
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER sessions__auth_delete AFTER DELETE ON sessions
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
-- A use moves `last_used_at` forward, which never makes a session end sooner; set back (an
-- operator, a restore), it may make the session idle.
CREATE TRIGGER sessions__auth_rewound AFTER UPDATE OF last_used_at ON sessions
WHEN NEW.last_used_at < OLD.last_used_at
BEGIN UPDATE auth_generation SET generation = generation + 1; END;

CREATE TRIGGER users__auth_replace BEFORE INSERT ON users
WHEN EXISTS (SELECT 1 FROM users WHERE id = NEW.id OR email = NEW.email)
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER users__auth_update AFTER UPDATE OF id, email, status, role, mfa_enabled, deleted_at ON users
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER users__auth_delete AFTER DELETE ON users
BEGIN UPDATE auth_generation SET generation = generation + 1; END;

CREATE TRIGGER organizations__auth_replace BEFORE INSERT ON organizations
WHEN EXISTS (SELECT 1 FROM organizations WHERE id = NEW.id OR slug = NEW.slug)
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER organizations__auth_update AFTER UPDATE OF id, slug, deleted_at, dlp_policy ON organizations
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER organizations__auth_delete AFTER DELETE ON organizations
BEGIN UPDATE auth_generation SET generation = generation + 1; END;

-- A new workspace is its owner's, and its organization's administrators'.
CREATE TRIGGER workspaces__auth_insert AFTER INSERT ON workspaces
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER workspaces__auth_update AFTER UPDATE OF id, owner_user_id, organization_id, deleted_at, dlp_policy ON workspaces
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER workspaces__auth_delete AFTER DELETE ON workspaces
BEGIN UPDATE auth_generation SET generation = generation + 1; END;

CREATE TRIGGER organization_members__auth_insert AFTER INSERT ON organization_members
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER organization_members__auth_update AFTER UPDATE ON organization_members
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER organization_members__auth_delete AFTER DELETE ON organization_members
BEGIN UPDATE auth_generation SET generation = generation + 1; END;

CREATE TRIGGER workspace_members__auth_insert AFTER INSERT ON workspace_members
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER workspace_members__auth_update AFTER UPDATE ON workspace_members
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER workspace_members__auth_delete AFTER DELETE ON workspace_members
BEGIN UPDATE auth_generation SET generation = generation + 1; END;

CREATE TRIGGER permission_sets__auth_insert AFTER INSERT ON permission_sets
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER permission_sets__auth_update AFTER UPDATE ON permission_sets
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
CREATE TRIGGER permission_sets__auth_delete AFTER DELETE ON permission_sets
BEGIN UPDATE auth_generation SET generation = generation + 1; END;
