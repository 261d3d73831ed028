-- A counter every change that can alter an authenticated caller moves, in the same
-- transaction: a server keeps sessions, users and scopes in memory with the counter they
-- were read at, and asks for the counter on each request (one row), so a logout, a revoked
-- token, a suspension, a role or a membership changed by any process or any node is seen
-- by the very next request. Triggers, not the write path, move it, so that raw statements
-- (erasure, purge, the command line) move it too. Statement-level: a purge of many rows
-- moves it once.
CREATE TABLE auth_generation (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    generation BIGINT NOT NULL
);
-- Seeded with the microseconds since 1970, not 0: a database migrated down and up again (or
-- restored) must not meet a value a running server kept callers at. Each change adds one,
-- so the counter stays below the time of its next seeding.
INSERT INTO auth_generation (singleton, generation)
VALUES (1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT);

CREATE FUNCTION ceneca_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_generation SET generation = generation + 1 WHERE singleton = 1;
    RETURN NULL;
END
$$;

-- A new session changes no kept caller (PostgreSQL replaces no row on insert: an upsert's
-- update fires the update triggers). TRUNCATE fires no delete trigger, so it has its own.
CREATE TRIGGER sessions__auth AFTER UPDATE OF id, user_id, token_hash, kind, device_id, workspace_id, expires_at, revoked_at OR DELETE OR TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
-- A use moves `last_used_at` forward, which never makes a session end sooner; set back (an
-- operator, a restore), it may make the session idle. Row-level, for the comparison.
CREATE TRIGGER sessions__auth_rewound AFTER UPDATE OF last_used_at ON sessions
    FOR EACH ROW WHEN (NEW.last_used_at < OLD.last_used_at) EXECUTE FUNCTION ceneca_auth_changed();
CREATE TRIGGER users__auth AFTER UPDATE OF id, email, status, role, mfa_enabled, deleted_at OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
CREATE TRIGGER organizations__auth AFTER UPDATE OF id, deleted_at, dlp_policy OR DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
-- A new workspace is its owner's, and its organization's administrators'.
CREATE TRIGGER workspaces__auth AFTER INSERT OR UPDATE OF id, owner_user_id, organization_id, deleted_at, dlp_policy OR DELETE OR TRUNCATE ON workspaces
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
CREATE TRIGGER organization_members__auth AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organization_members
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
CREATE TRIGGER workspace_members__auth AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON workspace_members
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
CREATE TRIGGER permission_sets__auth AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON permission_sets
    FOR EACH STATEMENT EXECUTE FUNCTION ceneca_auth_changed();
