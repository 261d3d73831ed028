-- Ceneca schema v1: the 24 entities of DESIGN.md §4 plus sessions.
-- Conventions: UUIDv7 ids, TIMESTAMPTZ at microsecond precision, JSONB for open-ended data,
-- BIGINT for every integer, constraints named <table>__<columns>__key.

CREATE TABLE users (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    mfa_secret_ciphertext BYTEA,
    mfa_enabled BOOLEAN NOT NULL DEFAULT false,
    mfa_recovery_codes JSONB NOT NULL DEFAULT '[]'::jsonb,
    last_login_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX users__email__key ON users (email);

CREATE TABLE subscription_plans (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    name TEXT NOT NULL,
    price_micros BIGINT NOT NULL CHECK (price_micros >= 0),
    currency TEXT NOT NULL DEFAULT 'USD',
    interval TEXT NOT NULL CHECK (interval IN ('month', 'year')),
    limits JSONB NOT NULL DEFAULT '{}'::jsonb,
    active BOOLEAN NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX subscription_plans__name__key ON subscription_plans (name);

CREATE TABLE organizations (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    owner_user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id UUID REFERENCES subscription_plans (id) ON DELETE RESTRICT,
    settings JSONB NOT NULL DEFAULT '{}'::jsonb,
    deleted_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX organizations__slug__key ON organizations (slug);
CREATE INDEX organizations__plan_id ON organizations (plan_id);

CREATE TABLE organization_members (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('viewer', 'member', 'admin', 'owner')),
    invited_by UUID REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX organization_members__organization_id__user_id__key ON organization_members (organization_id, user_id);
CREATE INDEX organization_members__user_id ON organization_members (user_id);

CREATE TABLE devices (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    token_hash BYTEA NOT NULL,
    last_seen_at TIMESTAMPTZ,
    sync_cursor BIGINT NOT NULL DEFAULT 0,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX devices__user_id__created_at ON devices (user_id, created_at);
CREATE UNIQUE INDEX devices__token_hash__key ON devices (token_hash);

CREATE TABLE user_settings (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value JSONB NOT NULL
);
CREATE UNIQUE INDEX user_settings__user_id__key__key ON user_settings (user_id, key);

CREATE TABLE workspaces (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    name TEXT NOT NULL,
    organization_id UUID REFERENCES organizations (id) ON DELETE CASCADE,
    owner_user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    settings JSONB NOT NULL DEFAULT '{}'::jsonb,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX workspaces__organization_id ON workspaces (organization_id);
CREATE INDEX workspaces__owner_user_id ON workspaces (owner_user_id);

CREATE TABLE workspace_members (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('viewer', 'editor', 'admin')),
    invited_by UUID REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX workspace_members__workspace_id__user_id__key ON workspace_members (workspace_id, user_id);
CREATE INDEX workspace_members__user_id ON workspace_members (user_id);

CREATE TABLE projects (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    archived_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX projects__workspace_id__created_at ON projects (workspace_id, created_at);

CREATE TABLE documents (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id UUID REFERENCES projects (id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT 'markdown',
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX documents__workspace_id__created_at ON documents (workspace_id, created_at);
CREATE INDEX documents__project_id ON documents (project_id);

CREATE TABLE threads (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id UUID REFERENCES projects (id) ON DELETE SET NULL,
    title TEXT NOT NULL DEFAULT '',
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    pinned BOOLEAN NOT NULL DEFAULT false,
    is_archived BOOLEAN NOT NULL DEFAULT false,
    archived_at TIMESTAMPTZ,
    last_message_at TIMESTAMPTZ NOT NULL,
    message_count BIGINT NOT NULL DEFAULT 0,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX threads__workspace_id__last_message_at ON threads (workspace_id, last_message_at, id);
CREATE INDEX threads__project_id ON threads (project_id);

CREATE TABLE messages (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    author_id UUID REFERENCES users (id) ON DELETE SET NULL,
    provider TEXT,
    model TEXT,
    content TEXT NOT NULL,
    token_count BIGINT NOT NULL DEFAULT 0,
    parent_id UUID REFERENCES messages (id) ON DELETE SET NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    compressed BOOLEAN NOT NULL DEFAULT false,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX messages__thread_id__created_at ON messages (thread_id, created_at, id);
CREATE INDEX messages__workspace_id__created_at ON messages (workspace_id, created_at);

CREATE TABLE attachments (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    message_id UUID REFERENCES messages (id) ON DELETE CASCADE,
    document_id UUID REFERENCES documents (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    sha256 TEXT NOT NULL,
    storage_key TEXT,
    thumbnail TEXT,
    encrypted BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX attachments__workspace_id__created_at ON attachments (workspace_id, created_at);
CREATE INDEX attachments__message_id ON attachments (message_id);
CREATE INDEX attachments__document_id ON attachments (document_id);

CREATE TABLE ai_provider_configs (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    organization_id UUID REFERENCES organizations (id) ON DELETE CASCADE,
    workspace_id UUID REFERENCES workspaces (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    base_url TEXT,
    api_key_ciphertext BYTEA,
    api_key_key_id TEXT,
    api_key_hint TEXT,
    models JSONB NOT NULL DEFAULT '[]'::jsonb,
    default_model TEXT,
    enabled BOOLEAN NOT NULL DEFAULT true
);
CREATE INDEX ai_provider_configs__user_id ON ai_provider_configs (user_id);
CREATE INDEX ai_provider_configs__organization_id ON ai_provider_configs (organization_id);
CREATE INDEX ai_provider_configs__workspace_id ON ai_provider_configs (workspace_id);

CREATE TABLE ai_interactions (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    thread_id UUID REFERENCES threads (id) ON DELETE SET NULL,
    message_id UUID REFERENCES messages (id) ON DELETE SET NULL,
    provider_config_id UUID REFERENCES ai_provider_configs (id) ON DELETE SET NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT 'USD',
    latency_ms BIGINT,
    status TEXT NOT NULL DEFAULT 'success',
    error TEXT
);
CREATE INDEX ai_interactions__user_id__created_at ON ai_interactions (user_id, created_at);
CREATE INDEX ai_interactions__workspace_id__created_at ON ai_interactions (workspace_id, created_at);

CREATE TABLE orchestration_flows (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    definition JSONB NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft',
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX orchestration_flows__workspace_id__created_at ON orchestration_flows (workspace_id, created_at);

CREATE TABLE orchestration_step_results (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    flow_id UUID NOT NULL REFERENCES orchestration_flows (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    run_id UUID NOT NULL,
    step_key TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    input JSONB,
    output JSONB,
    interaction_id UUID REFERENCES ai_interactions (id) ON DELETE SET NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    error TEXT
);
CREATE UNIQUE INDEX orchestration_step_results__flow_id__run_id__step_key__key ON orchestration_step_results (flow_id, run_id, step_key);
CREATE INDEX orchestration_step_results__workspace_id__created_at ON orchestration_step_results (workspace_id, created_at);

CREATE TABLE embedding_records (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    collection TEXT NOT NULL CHECK (collection IN ('messages', 'documents', 'attachments')),
    source_id UUID NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    dims BIGINT NOT NULL,
    vector BYTEA NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX embedding_records__collection__source_id__model__key ON embedding_records (collection, source_id, model);
CREATE INDEX embedding_records__workspace_id__created_at ON embedding_records (workspace_id, created_at);

CREATE TABLE permission_sets (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    organization_id UUID REFERENCES organizations (id) ON DELETE CASCADE,
    workspace_id UUID REFERENCES workspaces (id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'role')),
    subject_user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    subject_role TEXT,
    resource_type TEXT NOT NULL,
    resource_id UUID,
    actions JSONB NOT NULL,
    effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny'))
);
CREATE INDEX permission_sets__organization_id ON permission_sets (organization_id);
CREATE INDEX permission_sets__workspace_id ON permission_sets (workspace_id);

CREATE TABLE data_sharing_policies (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    organization_id UUID REFERENCES organizations (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    granted_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    policy_version TEXT NOT NULL
);
CREATE UNIQUE INDEX data_sharing_policies__user_id__scope__key ON data_sharing_policies (user_id, scope) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX data_sharing_policies__organization_id__scope__key ON data_sharing_policies (organization_id, scope) WHERE organization_id IS NOT NULL;

CREATE TABLE audit_log (
    sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    actor_id UUID REFERENCES users (id) ON DELETE SET NULL,
    source_ip TEXT,
    action TEXT NOT NULL,
    resource_type TEXT,
    resource_id UUID,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details JSONB NOT NULL DEFAULT '{}'::jsonb,
    query_hash TEXT,
    data_sources JSONB NOT NULL DEFAULT '[]'::jsonb,
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX audit_log__actor_id ON audit_log (actor_id);

CREATE TABLE invoices (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    organization_id UUID REFERENCES organizations (id) ON DELETE CASCADE,
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    plan_id UUID REFERENCES subscription_plans (id) ON DELETE RESTRICT,
    period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL,
    amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
    currency TEXT NOT NULL DEFAULT 'USD',
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'paid', 'void')),
    line_items JSONB NOT NULL DEFAULT '[]'::jsonb,
    issued_at TIMESTAMPTZ,
    paid_at TIMESTAMPTZ
);
CREATE INDEX invoices__organization_id ON invoices (organization_id);
CREATE INDEX invoices__user_id ON invoices (user_id);
CREATE INDEX invoices__plan_id ON invoices (plan_id);

CREATE TABLE sync_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    device_id UUID REFERENCES devices (id) ON DELETE SET NULL,
    user_id UUID REFERENCES users (id) ON DELETE SET NULL,
    entity_type TEXT NOT NULL,
    entity_id UUID NOT NULL,
    operation TEXT NOT NULL,
    changed_fields JSONB NOT NULL DEFAULT '[]'::jsonb,
    hlc BIGINT NOT NULL,
    scope_workspace_id UUID,
    scope_organization_id UUID,
    scope_user_id UUID
);
-- Partial: a change has one scope, so each row costs one scope index entry, not three.
CREATE INDEX sync_events__scope_workspace_id__seq ON sync_events (scope_workspace_id, seq) WHERE scope_workspace_id IS NOT NULL;
CREATE INDEX sync_events__scope_organization_id__seq ON sync_events (scope_organization_id, seq) WHERE scope_organization_id IS NOT NULL;
CREATE INDEX sync_events__scope_user_id__seq ON sync_events (scope_user_id, seq) WHERE scope_user_id IS NOT NULL;

CREATE TABLE telemetry_events (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    device_id UUID REFERENCES devices (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    properties JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX telemetry_events__user_id__created_at ON telemetry_events (user_id, created_at);

CREATE TABLE sessions (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL,
    kind TEXT NOT NULL,
    device_id UUID REFERENCES devices (id) ON DELETE CASCADE,
    name TEXT,
    workspace_id UUID REFERENCES workspaces (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX sessions__token_hash__key ON sessions (token_hash);
CREATE INDEX sessions__user_id ON sessions (user_id);

-- Full-text search: generated tsvector columns with GIN indexes, current in the same
-- transaction as every write. The first 100,000 characters are indexed: a tsvector holds
-- at most 1 MB, and a longer message must not make its insert fail.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED;
CREATE INDEX messages__search ON messages USING GIN (search);
ALTER TABLE documents ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || left(body, 100000))) STORED;
CREATE INDEX documents__search ON documents USING GIN (search);
