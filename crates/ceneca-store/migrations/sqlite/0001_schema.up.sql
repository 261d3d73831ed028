-- Ceneca schema v1: the 24 entities of DESIGN.md §4 plus sessions.
-- Conventions: STRICT tables; UUIDv7 ids as text; timestamps as RFC 3339 UTC text of fixed
-- microsecond width (so text order is time order); JSON as text; booleans as 0/1;
-- constraints named <table>__<columns>__key. Generated from the PostgreSQL schema's types.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    mfa_secret_ciphertext BLOB,
    mfa_enabled INTEGER NOT NULL DEFAULT 0,
    mfa_recovery_codes TEXT NOT NULL DEFAULT '[]',
    last_login_at TEXT,
    deleted_at TEXT
) STRICT;
CREATE UNIQUE INDEX users__email__key ON users (email);

CREATE TABLE subscription_plans (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    name TEXT NOT NULL,
    price_micros INTEGER NOT NULL CHECK (price_micros >= 0),
    currency TEXT NOT NULL DEFAULT 'USD',
    interval TEXT NOT NULL CHECK (interval IN ('month', 'year')),
    limits TEXT NOT NULL DEFAULT '{}',
    active INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE UNIQUE INDEX subscription_plans__name__key ON subscription_plans (name);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    owner_user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id TEXT REFERENCES subscription_plans (id) ON DELETE RESTRICT,
    settings TEXT NOT NULL DEFAULT '{}',
    deleted_at TEXT
) STRICT;
CREATE UNIQUE INDEX organizations__slug__key ON organizations (slug);
CREATE INDEX organizations__plan_id ON organizations (plan_id);

CREATE TABLE organization_members (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('viewer', 'member', 'admin', 'owner')),
    invited_by TEXT REFERENCES users (id) ON DELETE SET NULL
) STRICT;
CREATE UNIQUE INDEX organization_members__organization_id__user_id__key ON organization_members (organization_id, user_id);
CREATE INDEX organization_members__user_id ON organization_members (user_id);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    token_hash BLOB NOT NULL,
    last_seen_at TEXT,
    sync_cursor INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
) STRICT;
CREATE INDEX devices__user_id__created_at ON devices (user_id, created_at);
CREATE UNIQUE INDEX devices__token_hash__key ON devices (token_hash);

CREATE TABLE user_settings (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX user_settings__user_id__key__key ON user_settings (user_id, key);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    name TEXT NOT NULL,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    owner_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    deleted_at TEXT
) STRICT;
CREATE INDEX workspaces__organization_id ON workspaces (organization_id);
CREATE INDEX workspaces__owner_user_id ON workspaces (owner_user_id);

CREATE TABLE workspace_members (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('viewer', 'editor', 'admin')),
    invited_by TEXT REFERENCES users (id) ON DELETE SET NULL
) STRICT;
CREATE UNIQUE INDEX workspace_members__workspace_id__user_id__key ON workspace_members (workspace_id, user_id);
CREATE INDEX workspace_members__user_id ON workspace_members (user_id);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    archived_at TEXT,
    deleted_at TEXT
) STRICT;
CREATE INDEX projects__workspace_id__created_at ON projects (workspace_id, created_at);

CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects (id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT 'markdown',
    metadata TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TEXT
) STRICT;
CREATE INDEX documents__workspace_id__created_at ON documents (workspace_id, created_at);
CREATE INDEX documents__project_id ON documents (project_id);

CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects (id) ON DELETE SET NULL,
    title TEXT NOT NULL DEFAULT '',
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    is_archived INTEGER NOT NULL DEFAULT 0,
    archived_at TEXT,
    last_message_at TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
) STRICT;
CREATE INDEX threads__workspace_id__last_message_at ON threads (workspace_id, last_message_at, id);
CREATE INDEX threads__project_id ON threads (project_id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    author_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    provider TEXT,
    model TEXT,
    content TEXT NOT NULL,
    token_count INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT REFERENCES messages (id) ON DELETE SET NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    compressed INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
) STRICT;
CREATE INDEX messages__thread_id__created_at ON messages (thread_id, created_at, id);
CREATE INDEX messages__workspace_id__created_at ON messages (workspace_id, created_at);

CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
    document_id TEXT REFERENCES documents (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    sha256 TEXT NOT NULL,
    storage_key TEXT,
    thumbnail TEXT,
    encrypted INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX attachments__workspace_id__created_at ON attachments (workspace_id, created_at);
CREATE INDEX attachments__message_id ON attachments (message_id);
CREATE INDEX attachments__document_id ON attachments (document_id);

CREATE TABLE ai_provider_configs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    workspace_id TEXT REFERENCES workspaces (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    base_url TEXT,
    api_key_ciphertext BLOB,
    api_key_key_id TEXT,
    api_key_hint TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    default_model TEXT,
    enabled INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX ai_provider_configs__user_id ON ai_provider_configs (user_id);
CREATE INDEX ai_provider_configs__organization_id ON ai_provider_configs (organization_id);
CREATE INDEX ai_provider_configs__workspace_id ON ai_provider_configs (workspace_id);

CREATE TABLE ai_interactions (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    thread_id TEXT REFERENCES threads (id) ON DELETE SET NULL,
    message_id TEXT REFERENCES messages (id) ON DELETE SET NULL,
    provider_config_id TEXT REFERENCES ai_provider_configs (id) ON DELETE SET NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT 'USD',
    latency_ms INTEGER,
    status TEXT NOT NULL DEFAULT 'success',
    error TEXT
) STRICT;
CREATE INDEX ai_interactions__user_id__created_at ON ai_interactions (user_id, created_at);
CREATE INDEX ai_interactions__workspace_id__created_at ON ai_interactions (workspace_id, created_at);

CREATE TABLE orchestration_flows (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    definition TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft',
    version INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX orchestration_flows__workspace_id__created_at ON orchestration_flows (workspace_id, created_at);

CREATE TABLE orchestration_step_results (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    flow_id TEXT NOT NULL REFERENCES orchestration_flows (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    run_id TEXT NOT NULL,
    step_key TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    input TEXT,
    output TEXT,
    interaction_id TEXT REFERENCES ai_interactions (id) ON DELETE SET NULL,
    started_at TEXT,
    finished_at TEXT,
    error TEXT
) STRICT;
CREATE UNIQUE INDEX orchestration_step_results__flow_id__run_id__step_key__key ON orchestration_step_results (flow_id, run_id, step_key);
CREATE INDEX orchestration_step_results__workspace_id__created_at ON orchestration_step_results (workspace_id, created_at);

CREATE TABLE embedding_records (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    collection TEXT NOT NULL CHECK (collection IN ('messages', 'documents', 'attachments')),
    source_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    dims INTEGER NOT NULL,
    vector BLOB NOT NULL,
    content_hash TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX embedding_records__collection__source_id__model__key ON embedding_records (collection, source_id, model);
CREATE INDEX embedding_records__workspace_id__created_at ON embedding_records (workspace_id, created_at);

CREATE TABLE permission_sets (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    workspace_id TEXT REFERENCES workspaces (id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'role')),
    subject_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    subject_role TEXT,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    actions TEXT NOT NULL,
    effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny'))
) STRICT;
CREATE INDEX permission_sets__organization_id ON permission_sets (organization_id);
CREATE INDEX permission_sets__workspace_id ON permission_sets (workspace_id);

CREATE TABLE data_sharing_policies (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted INTEGER NOT NULL,
    granted_at TEXT,
    revoked_at TEXT,
    policy_version TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX data_sharing_policies__user_id__scope__key ON data_sharing_policies (user_id, scope) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX data_sharing_policies__organization_id__scope__key ON data_sharing_policies (organization_id, scope) WHERE organization_id IS NOT NULL;

CREATE TABLE audit_log (
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
    hash TEXT
) STRICT;
CREATE INDEX audit_log__actor_id ON audit_log (actor_id);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    plan_id TEXT REFERENCES subscription_plans (id) ON DELETE RESTRICT,
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
    currency TEXT NOT NULL DEFAULT 'USD',
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'paid', 'void')),
    line_items TEXT NOT NULL DEFAULT '[]',
    issued_at TEXT,
    paid_at TEXT
) STRICT;
CREATE INDEX invoices__organization_id ON invoices (organization_id);
CREATE INDEX invoices__user_id ON invoices (user_id);
CREATE INDEX invoices__plan_id ON invoices (plan_id);

CREATE TABLE sync_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    device_id TEXT REFERENCES devices (id) ON DELETE SET NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    changed_fields TEXT NOT NULL DEFAULT '[]',
    hlc INTEGER NOT NULL,
    scope_workspace_id TEXT,
    scope_organization_id TEXT,
    scope_user_id TEXT
) STRICT;
-- Partial: a change has one scope, so each row costs one scope index entry, not three.
CREATE INDEX sync_events__scope_workspace_id__seq ON sync_events (scope_workspace_id, seq) WHERE scope_workspace_id IS NOT NULL;
CREATE INDEX sync_events__scope_organization_id__seq ON sync_events (scope_organization_id, seq) WHERE scope_organization_id IS NOT NULL;
CREATE INDEX sync_events__scope_user_id__seq ON sync_events (scope_user_id, seq) WHERE scope_user_id IS NOT NULL;

CREATE TABLE telemetry_events (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    device_id TEXT REFERENCES devices (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX telemetry_events__user_id__created_at ON telemetry_events (user_id, created_at);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL,
    kind TEXT NOT NULL,
    device_id TEXT REFERENCES devices (id) ON DELETE CASCADE,
    name TEXT,
    workspace_id TEXT REFERENCES workspaces (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE UNIQUE INDEX sessions__token_hash__key ON sessions (token_hash);
CREATE INDEX sessions__user_id ON sessions (user_id);

-- Full-text search, kept current in the same transaction as every write (DESIGN.md §3 rule 2).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content = 'messages', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE VIRTUAL TABLE documents_fts USING fts5(
    title, body, content = 'documents', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
    INSERT INTO documents_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, body ON documents BEGIN
    INSERT INTO documents_fts (documents_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO documents_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
