//! The 24 entities of DESIGN.md §4 (plus the internal session table), declared once.
//!
//! Column types per engine live in the store's migrations; a store test checks that every
//! column declared here exists in both schemas.

use crate::dlp::DlpPolicy;
use crate::roles::{OrgRole, WorkspaceRole};
use crate::schema::{
    Api, Cascade, Counter, Default, Entity, FULL_API, Field, Kind, Nesting, Owner, OwnerWrite,
    Parent, READ_ONLY_API, Tenancy, field,
};

const NAME: Kind = Kind::Text { max: 200 };
const LONG_TEXT: Kind = Kind::Text { max: 1_000_000 };
const DESCRIPTION: Kind = Kind::Text { max: 10_000 };
const COUNT: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};

const CONTENT_TENANCY: Tenancy = Tenancy::Workspace {
    write: WorkspaceRole::Editor,
    delete: WorkspaceRole::Editor,
};

const fn cascade(table: &'static str, column: &'static str) -> Cascade {
    Cascade {
        table,
        column,
        via: None,
    }
}
const fn cascade_via(
    table: &'static str,
    column: &'static str,
    via: (&'static str, &'static str),
) -> Cascade {
    Cascade {
        table,
        column,
        via: Some(via),
    }
}

const fn entity(
    name: &'static str,
    table: &'static str,
    fields: &'static [Field],
    tenancy: Tenancy,
) -> Entity {
    Entity {
        name,
        table,
        path: table,
        fields,
        soft_delete: false,
        tenancy,
        sort: "created_at",
        sort_desc: true,
        api: FULL_API,
        cascade: &[],
        parent: None,
        nested: None,
        counter: None,
        version_field: None,
        changelog: true,
        unique: &[],
    }
}

// ---- Users ----------------------------------------------------------------------------

pub static USERS: Entity = Entity {
    soft_delete: true,
    api: Api {
        create: false,
        update: true,
        delete: true,
    },
    unique: &[&["email"]],
    ..entity(
        "user",
        "users",
        &[
            field("email", Kind::Email).required().filter().sort(),
            field("display_name", NAME).required().patch(),
            field("password_hash", Kind::Text { max: 512 })
                .server()
                .not_null()
                .hidden(),
            field("role", Kind::Enum(&["user", "admin"]))
                .default(Default::Text("user"))
                .patch()
                .admin_only()
                .filter(),
            field("status", Kind::Enum(&["active", "suspended"]))
                .default(Default::Text("active"))
                .patch()
                .admin_only()
                .filter(),
            field("mfa_secret_ciphertext", Kind::Bytes)
                .server()
                .hidden(),
            field("mfa_enabled", Kind::Bool)
                .server()
                .default(Default::Bool(false)),
            field("mfa_recovery_codes", Kind::Strings(None))
                .server()
                .default(Default::EmptyArray)
                .hidden(),
            field("last_login_at", Kind::Time).server(),
            // When an erase of the account began (it is closed then); set until the erase
            // ends with the row itself, so an interrupted one is found and finished.
            field("erasing_since", Kind::Time).server(),
        ],
        Tenancy::SelfUser,
    )
};

pub static ORGANIZATIONS: Entity = Entity {
    soft_delete: true,
    unique: &[&["slug"]],
    cascade: &[
        cascade("workspaces", "organization_id"),
        cascade_via(
            "projects",
            "workspace_id",
            ("workspaces", "organization_id"),
        ),
        cascade_via(
            "documents",
            "workspace_id",
            ("workspaces", "organization_id"),
        ),
        cascade_via("threads", "workspace_id", ("workspaces", "organization_id")),
        cascade_via(
            "messages",
            "workspace_id",
            ("workspaces", "organization_id"),
        ),
    ],
    ..entity(
        "organization",
        "organizations",
        &[
            field("name", NAME).required().patch().sort(),
            field("slug", Kind::Slug).required().patch().filter(),
            field("owner_user_id", Kind::Ref("users"))
                .server()
                .not_null(),
            field("plan_id", Kind::Ref("subscription_plans"))
                .patch()
                .admin_only()
                .filter(),
            field("settings", Kind::Object)
                .default(Default::EmptyObject)
                .patch(),
            // What a write holding a secret or personal data gets here (`dlp`); unset
            // follows the server's `[dlp] policy`. The strictest of the server, the
            // organization and the workspace applies.
            field("dlp_policy", Kind::Enum(DlpPolicy::ALL)).patch(),
            // Retention (`service/maintenance`): threads idle this many days are archived,
            // 0 never; unset follows the server's `[retention] archive_after_days`.
            field(
                "archive_after_days",
                Kind::Int {
                    min: 0,
                    max: 36_500,
                },
            )
            .patch(),
            // What an erase of a member does to what they wrote in the organization's
            // workspaces (messages, threads they started that no one else wrote in):
            // `delete` (unset) or `anonymise` (kept without its author).
            field("erasure", Kind::Enum(ERASURE_MODES)).patch(),
        ],
        Tenancy::SelfOrganization,
    )
};

/// The values of `organizations.erasure`.
pub const ERASURE_MODES: &[&str] = &["delete", "anonymise"];

pub static ORGANIZATION_MEMBERS: Entity = Entity {
    nested: Some(Nesting {
        parent_path: "organizations",
        parent_field: "organization_id",
        only_nested: true,
        batch: false,
    }),
    path: "members",
    unique: &[&["organization_id", "user_id"]],
    ..entity(
        "organization member",
        "organization_members",
        &[
            field("organization_id", Kind::Ref("organizations"))
                .server()
                .not_null()
                .filter(),
            field("user_id", Kind::Ref("users")).required().filter(),
            field("role", Kind::Enum(OrgRole::ALL))
                .default(Default::Text("member"))
                .patch()
                .filter(),
            field("invited_by", Kind::Ref("users")).server(),
        ],
        Tenancy::Organization,
    )
};

pub static DEVICES: Entity = entity(
    "device",
    "devices",
    &[
        field("user_id", Kind::Ref("users"))
            .server()
            .not_null()
            .filter(),
        field("name", NAME).required().patch().sort(),
        field(
            "platform",
            Kind::Enum(&["web", "desktop", "ios", "android", "cli", "server", "other"]),
        )
        .required()
        .filter(),
        field("token_hash", Kind::Bytes)
            .server()
            .not_null()
            .hidden(),
        field("last_seen_at", Kind::Time).server(),
        field("sync_cursor", COUNT).default(Default::Int(0)).patch(),
        field("revoked_at", Kind::Time).server(),
    ],
    Tenancy::User,
);

pub static USER_SETTINGS: Entity = Entity {
    path: "settings",
    unique: &[&["user_id", "key"]],
    sort: "key",
    sort_desc: false,
    ..entity(
        "setting",
        "user_settings",
        &[
            field("user_id", Kind::Ref("users"))
                .server()
                .not_null()
                .filter(),
            field("key", Kind::Text { max: 200 })
                .required()
                .filter()
                .sort(),
            field("value", Kind::Any).required().patch(),
        ],
        Tenancy::User,
    )
};

// ---- Workspaces ----------------------------------------------------------------------

pub static WORKSPACES: Entity = Entity {
    soft_delete: true,
    cascade: &[
        cascade("projects", "workspace_id"),
        cascade("documents", "workspace_id"),
        cascade("threads", "workspace_id"),
        cascade("messages", "workspace_id"),
    ],
    ..entity(
        "workspace",
        "workspaces",
        &[
            field("name", NAME).required().patch().sort(),
            field("organization_id", Kind::Ref("organizations")).filter(),
            field("owner_user_id", Kind::Ref("users")).server().filter(),
            field("description", DESCRIPTION)
                .default(Default::Text(""))
                .patch(),
            field("settings", Kind::Object)
                .default(Default::EmptyObject)
                .patch(),
            // Can only tighten its organization's policy (see `organizations`).
            field("dlp_policy", Kind::Enum(DlpPolicy::ALL)).patch(),
        ],
        Tenancy::SelfWorkspace,
    )
};

pub static WORKSPACE_MEMBERS: Entity = Entity {
    nested: Some(Nesting {
        parent_path: "workspaces",
        parent_field: "workspace_id",
        only_nested: true,
        batch: false,
    }),
    path: "members",
    unique: &[&["workspace_id", "user_id"]],
    ..entity(
        "workspace member",
        "workspace_members",
        &[
            field("workspace_id", Kind::Ref("workspaces"))
                .server()
                .not_null()
                .filter(),
            field("user_id", Kind::Ref("users")).required().filter(),
            field("role", Kind::Enum(WorkspaceRole::ALL))
                .default(Default::Text("viewer"))
                .patch()
                .filter(),
            field("invited_by", Kind::Ref("users")).server(),
        ],
        Tenancy::Workspace {
            write: WorkspaceRole::Admin,
            delete: WorkspaceRole::Admin,
        },
    )
};

pub static PROJECTS: Entity = Entity {
    soft_delete: true,
    cascade: &[
        cascade("documents", "project_id"),
        cascade("threads", "project_id"),
        cascade_via("messages", "thread_id", ("threads", "project_id")),
    ],
    ..entity(
        "project",
        "projects",
        &[
            field("workspace_id", Kind::Ref("workspaces"))
                .required()
                .filter(),
            field("name", NAME).required().patch().sort(),
            field("description", DESCRIPTION)
                .default(Default::Text(""))
                .patch(),
            field("archived_at", Kind::Time).patch(),
        ],
        CONTENT_TENANCY,
    )
};

pub static DOCUMENTS: Entity = Entity {
    soft_delete: true,
    version_field: Some("version"),
    ..entity(
        "document",
        "documents",
        &[
            field("workspace_id", Kind::Ref("workspaces"))
                .required()
                .filter(),
            field("project_id", Kind::Ref("projects")).patch().filter(),
            field("title", Kind::Text { max: 500 })
                .required()
                .patch()
                .sort(),
            field("body", LONG_TEXT)
                .default(Default::Text(""))
                .patch()
                .detail(),
            // Names the key when `body` is sealed (encryption at rest); NULL for plaintext.
            field("body_key_id", Kind::Text { max: 100 })
                .server()
                .hidden(),
            field("format", Kind::Enum(&["markdown", "text", "html", "json"]))
                .default(Default::Text("markdown"))
                .patch()
                .filter(),
            field("metadata", Kind::Object)
                .default(Default::EmptyObject)
                .patch(),
            field(
                "version",
                Kind::Int {
                    min: 1,
                    max: i64::MAX,
                },
            )
            .server()
            .default(Default::Int(1)),
        ],
        CONTENT_TENANCY,
    )
};

// ---- Conversations -------------------------------------------------------------------

pub static THREADS: Entity = Entity {
    soft_delete: true,
    sort: "last_message_at",
    cascade: &[cascade("messages", "thread_id")],
    ..entity(
        "thread",
        "threads",
        &[
            field("workspace_id", Kind::Ref("workspaces"))
                .required()
                .filter(),
            field("project_id", Kind::Ref("projects")).patch().filter(),
            field("title", Kind::Text { max: 500 })
                .default(Default::Text(""))
                .patch()
                .sort(),
            field("created_by", Kind::Ref("users")).server().filter(),
            field("pinned", Kind::Bool)
                .default(Default::Bool(false))
                .patch()
                .filter(),
            field("is_archived", Kind::Bool)
                .default(Default::Bool(false))
                .patch()
                .filter(),
            field("archived_at", Kind::Time).server(),
            field("last_message_at", Kind::Time)
                .server()
                .default(Default::Now)
                .sort(),
            field("message_count", COUNT)
                .server()
                .default(Default::Int(0)),
        ],
        CONTENT_TENANCY,
    )
};

pub static MESSAGES: Entity = Entity {
    nested: Some(Nesting {
        parent_path: "threads",
        parent_field: "thread_id",
        only_nested: false,
        batch: true,
    }),
    soft_delete: true,
    sort_desc: false,
    parent: Some(Parent {
        field: "thread_id",
        table: "threads",
    }),
    counter: Some(Counter {
        field: "thread_id",
        table: "threads",
        count_column: "message_count",
        touch_column: Some("last_message_at"),
    }),
    ..entity(
        "message",
        "messages",
        &[
            field("thread_id", Kind::Ref("threads")).required().filter(),
            field("workspace_id", Kind::Ref("workspaces"))
                .server()
                .not_null()
                .filter(),
            field("role", Kind::Enum(&["user", "assistant", "system", "tool"]))
                .required()
                .filter(),
            field("author_id", Kind::Ref("users")).server().filter(),
            field("provider", Kind::Text { max: 100 }).filter(),
            field("model", NAME).filter(),
            field("content", LONG_TEXT).required().patch(),
            // Names the key when `content` is sealed (encryption at rest); NULL for plaintext.
            field("content_key_id", Kind::Text { max: 100 })
                .server()
                .hidden(),
            field("token_count", COUNT).default(Default::Int(0)).patch(),
            field("parent_id", Kind::Ref("messages")),
            field("metadata", Kind::Object)
                .default(Default::EmptyObject)
                .patch(),
            // Retention packs old bodies (store/packing.rs): the zstd frame, NULL while
            // `content` holds the text. Never shown: readers get the text back.
            field("content_packed", Kind::Bytes).server().hidden(),
            // Whether the body is stored compressed; the server's to say.
            field("compressed", Kind::Bool)
                .server()
                .default(Default::Bool(false)),
        ],
        CONTENT_TENANCY,
    )
};

pub static ATTACHMENTS: Entity = entity(
    "attachment",
    "attachments",
    &[
        field("workspace_id", Kind::Ref("workspaces"))
            .required()
            .filter(),
        field("message_id", Kind::Ref("messages")).filter(),
        field("document_id", Kind::Ref("documents")).filter(),
        field("file_name", Kind::Text { max: 255 })
            .required()
            .patch()
            .sort(),
        // What describes the content is the server's word, set when the content is
        // uploaded (`service/attachments`): sniffed, counted and hashed from the bytes.
        field("mime_type", Kind::Text { max: 255 })
            .default(Default::Text("application/octet-stream"))
            .server()
            .filter(),
        field("size_bytes", COUNT).default(Default::Int(0)).server(),
        // NULL until the content arrives.
        field("sha256", Kind::Sha256).server().filter(),
        // Where this node keeps the bytes (`ab/cd/<sha256>` in its blob folder): never
        // shown, never replicated, so no client or replica can point a row at bytes it
        // did not upload.
        field("storage_key", Kind::Text { max: 500 })
            .server()
            .hidden(),
        // Where the image's thumbnail stands (`service/attachments/thumbnails.rs`):
        // made off the request path after an upload; NULL for a file that is no image.
        field(
            "thumbnail",
            Kind::Enum(&["pending", "ready", "unavailable"]),
        )
        .server(),
        // The thumbnail's blob on this node: never shown, never replicated.
        field("thumbnail_key", Kind::Text { max: 500 })
            .server()
            .hidden(),
        // Its size: counted against the quota while it is kept, like the file.
        field("thumbnail_bytes", COUNT)
            .default(Default::Int(0))
            .server()
            .hidden(),
        field("encrypted", Kind::Bool)
            .default(Default::Bool(false))
            .server(),
        // When retention removed the file of an archived thread's attachment: what
        // describes it stays, its content answers 410.
        field("content_removed_at", Kind::Time).server(),
    ],
    CONTENT_TENANCY,
);

// ---- AI providers --------------------------------------------------------------------

pub static AI_PROVIDER_CONFIGS: Entity = Entity {
    path: "provider-configs",
    ..entity(
        "provider config",
        "ai_provider_configs",
        &[
            field("user_id", Kind::Ref("users")).filter(),
            field("organization_id", Kind::Ref("organizations")).filter(),
            field("workspace_id", Kind::Ref("workspaces")).filter(),
            field("provider", Kind::Text { max: 50 })
                .required()
                .filter(),
            field("name", NAME).required().patch().sort(),
            field("base_url", Kind::Url).patch(),
            field("api_key", Kind::Secret).patch(),
            field("api_key_ciphertext", Kind::Bytes).server().hidden(),
            field("api_key_key_id", Kind::Text { max: 64 })
                .server()
                .hidden(),
            field("api_key_hint", Kind::Text { max: 16 }).server(),
            field("models", Kind::Strings(None))
                .default(Default::EmptyArray)
                .patch(),
            field("default_model", NAME).patch(),
            field("enabled", Kind::Bool)
                .default(Default::Bool(true))
                .patch()
                .filter(),
        ],
        Tenancy::Owners {
            owners: &[
                Owner::User("user_id"),
                Owner::Organization("organization_id"),
                Owner::Workspace("workspace_id"),
            ],
            org_read: OrgRole::Member,
            ws_read: WorkspaceRole::Viewer,
            write: OwnerWrite::Owners,
        },
    )
};

pub static AI_INTERACTIONS: Entity = Entity {
    path: "ai-interactions",
    ..entity(
        "ai interaction",
        "ai_interactions",
        &[
            field("user_id", Kind::Ref("users"))
                .server()
                .not_null()
                .filter(),
            field("workspace_id", Kind::Ref("workspaces"))
                .required()
                .filter(),
            field("thread_id", Kind::Ref("threads")).filter(),
            field("message_id", Kind::Ref("messages")),
            field("provider_config_id", Kind::Ref("ai_provider_configs")).filter(),
            field("provider", Kind::Text { max: 50 })
                .required()
                .filter(),
            field("model", NAME).required().filter(),
            field("prompt_tokens", COUNT).default(Default::Int(0)),
            field("completion_tokens", COUNT).default(Default::Int(0)),
            field("total_tokens", COUNT).server().not_null(),
            field("cost_micros", COUNT).default(Default::Int(0)),
            field("currency", Kind::Currency).default(Default::Text("USD")),
            field("latency_ms", COUNT),
            field(
                "status",
                Kind::Enum(&["success", "error", "timeout", "cancelled"]),
            )
            .default(Default::Text("success"))
            .filter(),
            field("error", DESCRIPTION),
        ],
        Tenancy::Workspace {
            write: WorkspaceRole::Editor,
            delete: WorkspaceRole::Admin,
        },
    )
};

// ---- Orchestration -------------------------------------------------------------------

pub static ORCHESTRATION_FLOWS: Entity = Entity {
    path: "orchestration-flows",
    version_field: Some("version"),
    ..entity(
        "orchestration flow",
        "orchestration_flows",
        &[
            field("workspace_id", Kind::Ref("workspaces"))
                .required()
                .filter(),
            field("name", NAME).required().patch().sort(),
            field("description", DESCRIPTION)
                .default(Default::Text(""))
                .patch(),
            field("definition", Kind::Object).required().patch(),
            field(
                "status",
                Kind::Enum(&["draft", "active", "paused", "archived"]),
            )
            .default(Default::Text("draft"))
            .patch()
            .filter(),
            field(
                "version",
                Kind::Int {
                    min: 1,
                    max: i64::MAX,
                },
            )
            .server()
            .default(Default::Int(1)),
        ],
        CONTENT_TENANCY,
    )
};

pub static ORCHESTRATION_STEP_RESULTS: Entity = Entity {
    path: "orchestration-step-results",
    parent: Some(Parent {
        field: "flow_id",
        table: "orchestration_flows",
    }),
    unique: &[&["flow_id", "run_id", "step_key"]],
    ..entity(
        "orchestration step result",
        "orchestration_step_results",
        &[
            field("flow_id", Kind::Ref("orchestration_flows"))
                .required()
                .filter(),
            field("workspace_id", Kind::Ref("workspaces"))
                .server()
                .not_null()
                .filter(),
            field("run_id", Kind::Uuid).required().filter(),
            field("step_key", Kind::Text { max: 100 })
                .required()
                .filter(),
            field(
                "status",
                Kind::Enum(&["pending", "running", "succeeded", "failed", "skipped"]),
            )
            .default(Default::Text("pending"))
            .patch()
            .filter(),
            field("input", Kind::Any).patch(),
            field("output", Kind::Any).patch(),
            field("interaction_id", Kind::Ref("ai_interactions")).patch(),
            field("started_at", Kind::Time).patch(),
            field("finished_at", Kind::Time).patch(),
            field("error", DESCRIPTION).patch(),
        ],
        CONTENT_TENANCY,
    )
};

// ---- Knowledge -----------------------------------------------------------------------

pub static EMBEDDING_RECORDS: Entity = Entity {
    path: "embeddings",
    unique: &[&["collection", "source_id", "model"]],
    ..entity(
        "embedding",
        "embedding_records",
        &[
            field(
                "collection",
                Kind::Enum(&["messages", "documents", "attachments"]),
            )
            .required()
            .filter(),
            field("source_id", Kind::Uuid).required().filter(),
            field("workspace_id", Kind::Ref("workspaces"))
                .required()
                .filter(),
            field("model", NAME).required().filter(),
            field("dims", Kind::Int { min: 1, max: 8192 }).required(),
            field("vector", Kind::Vector).required().detail(),
            field("content_hash", Kind::Sha256).required(),
        ],
        CONTENT_TENANCY,
    )
};

// ---- Security ------------------------------------------------------------------------

/// Actions a permission set can allow or deny.
pub const ACTIONS: &[&str] = &["read", "write", "delete", "share", "admin"];

pub static PERMISSION_SETS: Entity = Entity {
    path: "permission-sets",
    ..entity(
        "permission set",
        "permission_sets",
        &[
            field("organization_id", Kind::Ref("organizations")).filter(),
            field("workspace_id", Kind::Ref("workspaces")).filter(),
            field("subject_type", Kind::Enum(&["user", "role"]))
                .required()
                .filter(),
            field("subject_user_id", Kind::Ref("users")).filter(),
            field("subject_role", Kind::Text { max: 50 }).filter(),
            field("resource_type", Kind::Text { max: 50 })
                .required()
                .filter(),
            field("resource_id", Kind::Uuid).filter(),
            field("actions", Kind::Strings(Some(ACTIONS)))
                .required()
                .patch(),
            field("effect", Kind::Enum(&["allow", "deny"]))
                .required()
                .patch()
                .filter(),
        ],
        Tenancy::Owners {
            owners: &[
                Owner::Organization("organization_id"),
                Owner::Workspace("workspace_id"),
            ],
            org_read: OrgRole::Admin,
            ws_read: WorkspaceRole::Admin,
            write: OwnerWrite::Owners,
        },
    )
};

pub static DATA_SHARING_POLICIES: Entity = Entity {
    path: "sharing-policies",
    unique: &[&["user_id", "scope"], &["organization_id", "scope"]],
    ..entity(
        "sharing policy",
        "data_sharing_policies",
        &[
            field("user_id", Kind::Ref("users")).filter(),
            field("organization_id", Kind::Ref("organizations")).filter(),
            field("scope", Kind::Text { max: 100 }).required().filter(),
            field("granted", Kind::Bool).required().patch().filter(),
            field("granted_at", Kind::Time).server(),
            field("revoked_at", Kind::Time).server(),
            field("policy_version", Kind::Text { max: 50 })
                .required()
                .patch(),
        ],
        Tenancy::Owners {
            owners: &[
                Owner::User("user_id"),
                Owner::Organization("organization_id"),
            ],
            org_read: OrgRole::Member,
            ws_read: WorkspaceRole::Viewer,
            write: OwnerWrite::Owners,
        },
    )
};

pub static AUDIT_LOG: Entity = Entity {
    path: "audit-log",
    api: READ_ONLY_API,
    changelog: false,
    sort: "sequence",
    ..entity(
        "audit entry",
        "audit_log",
        &[
            // Numbered by the store under the chain lock (not an identity column), so
            // numbers are contiguous and a gap means a deleted entry.
            field("sequence", COUNT).server().not_null().sort(),
            field("at", Kind::Time).server().not_null(),
            field("actor_id", Kind::Ref("users")).server().filter(),
            field("source_ip", Kind::Text { max: 64 }).server(),
            field("action", Kind::Text { max: 100 })
                .server()
                .not_null()
                .filter(),
            field("resource_type", Kind::Text { max: 50 })
                .server()
                .filter(),
            field("resource_id", Kind::Uuid).server().filter(),
            field("outcome", Kind::Enum(&["success", "failure", "denied"]))
                .server()
                .not_null()
                .filter(),
            field("details", Kind::Object)
                .server()
                .default(Default::EmptyObject),
            field("query_hash", Kind::Sha256).server(),
            field("data_sources", Kind::Strings(None))
                .server()
                .default(Default::EmptyArray),
            field("prev_hash", Kind::Sha256).server(),
            // The entry's HMAC-SHA256 (a plain SHA-256 for legacy entries).
            field("hash", Kind::Sha256).server(),
            // The key-ring id the MAC key was derived from; empty for legacy entries.
            field("mac_key_id", Kind::Text { max: 64 }).server(),
            // Chain version 2: the MAC covers `source_ip` and `details` through a salted
            // commitment, so an erase can drop them and the salt and the chain still
            // verifies (`ceneca_domain::audit`). Empty for entries sealed before it.
            field("personal_salt", Kind::Text { max: 64 })
                .server()
                .hidden(),
            field("personal_commitment", Kind::Sha256).server().hidden(),
        ],
        Tenancy::Admin,
    )
};

// ---- Billing -------------------------------------------------------------------------

pub static SUBSCRIPTION_PLANS: Entity = Entity {
    path: "plans",
    unique: &[&["name"]],
    sort: "name",
    sort_desc: false,
    ..entity(
        "plan",
        "subscription_plans",
        &[
            field("name", NAME).required().patch().sort(),
            field("price_micros", COUNT).required().patch(),
            field("currency", Kind::Currency)
                .default(Default::Text("USD"))
                .patch(),
            field("interval", Kind::Enum(&["month", "year"]))
                .required()
                .patch()
                .filter(),
            field("limits", Kind::Object)
                .default(Default::EmptyObject)
                .patch(),
            field("active", Kind::Bool)
                .default(Default::Bool(true))
                .patch()
                .filter(),
        ],
        Tenancy::Catalog,
    )
};

pub static INVOICES: Entity = entity(
    "invoice",
    "invoices",
    &[
        field("organization_id", Kind::Ref("organizations")).filter(),
        field("user_id", Kind::Ref("users")).filter(),
        field("plan_id", Kind::Ref("subscription_plans")).filter(),
        field("period_start", Kind::Time).required().sort(),
        field("period_end", Kind::Time).required(),
        field("amount_micros", COUNT).required().patch(),
        field("currency", Kind::Currency)
            .default(Default::Text("USD"))
            .patch(),
        field("status", Kind::Enum(&["draft", "open", "paid", "void"]))
            .default(Default::Text("draft"))
            .patch()
            .filter(),
        field("line_items", Kind::Array)
            .default(Default::EmptyArray)
            .patch(),
        field("issued_at", Kind::Time).patch(),
        field("paid_at", Kind::Time).patch(),
    ],
    Tenancy::Owners {
        owners: &[
            Owner::User("user_id"),
            Owner::Organization("organization_id"),
        ],
        org_read: OrgRole::Admin,
        ws_read: WorkspaceRole::Admin,
        write: OwnerWrite::SystemAdmin,
    },
);

// ---- Sync ----------------------------------------------------------------------------

/// The change log: one row per write, in commit order (`seq` is the sync cursor).
pub static SYNC_EVENTS: Entity = Entity {
    path: "sync-events",
    api: READ_ONLY_API,
    changelog: false,
    sort: "seq",
    sort_desc: false,
    ..entity(
        "sync event",
        "sync_events",
        &[
            field("seq", COUNT).default(Default::Generated).sort(),
            field("device_id", Kind::Ref("devices")).server().filter(),
            field("user_id", Kind::Ref("users")).server().filter(),
            field("entity_type", Kind::Text { max: 50 })
                .server()
                .not_null()
                .filter(),
            field("entity_id", Kind::Uuid).server().not_null().filter(),
            field(
                "operation",
                Kind::Enum(&["create", "update", "delete", "restore", "revoke"]),
            )
            .server()
            .not_null()
            .filter(),
            field("changed_fields", Kind::Strings(None))
                .server()
                .default(Default::EmptyArray),
            field("hlc", COUNT).server().not_null(),
            // The new values of the fields written, as stored (sealed content stays
            // sealed). Hidden here: `GET /api/v1/sync/pull` opens and filters them.
            field("payload", Kind::Object)
                .server()
                .default(Default::EmptyObject)
                .hidden(),
            field("scope_workspace_id", Kind::Ref("workspaces"))
                .server()
                .filter(),
            field("scope_organization_id", Kind::Ref("organizations"))
                .server()
                .filter(),
            field("scope_user_id", Kind::Ref("users")).server().filter(),
        ],
        Tenancy::Owners {
            owners: &[
                Owner::User("scope_user_id"),
                Owner::Organization("scope_organization_id"),
                Owner::Workspace("scope_workspace_id"),
            ],
            org_read: OrgRole::Viewer,
            ws_read: WorkspaceRole::Viewer,
            write: OwnerWrite::Nobody,
        },
    )
};

pub static TELEMETRY_EVENTS: Entity = Entity {
    path: "telemetry",
    api: Api {
        create: true,
        update: false,
        delete: true,
    },
    ..entity(
        "telemetry event",
        "telemetry_events",
        &[
            field("user_id", Kind::Ref("users")).server().filter(),
            field("device_id", Kind::Ref("devices")).filter(),
            field("name", NAME).required().filter(),
            field("properties", Kind::Object).default(Default::EmptyObject),
        ],
        Tenancy::User,
    )
};

// ---- Internal ------------------------------------------------------------------------

/// Bearer-token sessions. Only the SHA-256 of a token is stored.
pub static SESSIONS: Entity = Entity {
    changelog: false,
    api: READ_ONLY_API,
    ..entity(
        "session",
        "sessions",
        &[
            field("user_id", Kind::Ref("users")).server().not_null(),
            field("token_hash", Kind::Bytes)
                .server()
                .not_null()
                .hidden(),
            field("kind", Kind::Enum(&["session", "device", "api"]))
                .server()
                .not_null(),
            field("device_id", Kind::Ref("devices")).server(),
            // Named, long-lived API tokens are limited to one workspace.
            field("name", NAME).server(),
            field("workspace_id", Kind::Ref("workspaces")).server(),
            field("expires_at", Kind::Time).server().not_null(),
            field("last_used_at", Kind::Time).server().not_null(),
            field("revoked_at", Kind::Time).server(),
        ],
        Tenancy::Internal,
    )
};

/// Conflicts recorded by replication (`GET /api/v1/sync/conflicts`): what lost, to what.
/// Internal (not in [`ALL`]: no generic routes); the user whose change lost and the
/// workspace's administrators read them.
pub static SYNC_CONFLICTS: Entity = Entity {
    changelog: false,
    api: READ_ONLY_API,
    ..entity(
        "sync conflict",
        "sync_conflicts",
        &[
            field("user_id", Kind::Ref("users")).server().filter(),
            field("device_id", Kind::Ref("devices")).server().filter(),
            field("workspace_id", Kind::Ref("workspaces"))
                .server()
                .filter(),
            field("entity_type", Kind::Text { max: 50 })
                .server()
                .not_null(),
            field("entity_id", Kind::Uuid).server().not_null(),
            field(
                "kind",
                Kind::Enum(&["concurrent_edit", "edit_lost_to_delete", "unique_key"]),
            )
            .server()
            .not_null(),
            field("change_id", Kind::Uuid).server().not_null(),
            field("hlc", COUNT).server().not_null(),
            field("lost_values", Kind::Object)
                .server()
                .default(Default::EmptyObject),
            field("winner_change_id", Kind::Uuid).server().not_null(),
            field("winner_hlc", COUNT).server().not_null(),
        ],
        Tenancy::Owners {
            owners: &[Owner::User("user_id"), Owner::Workspace("workspace_id")],
            org_read: OrgRole::Admin,
            ws_read: WorkspaceRole::Admin,
            write: OwnerWrite::Nobody,
        },
    )
};

/// Every entity, in dependency order (a table comes after the tables it references).
pub static ALL: &[&Entity] = &[
    &USERS,
    &SUBSCRIPTION_PLANS,
    &ORGANIZATIONS,
    &ORGANIZATION_MEMBERS,
    &DEVICES,
    &USER_SETTINGS,
    &WORKSPACES,
    &WORKSPACE_MEMBERS,
    &PROJECTS,
    &DOCUMENTS,
    &THREADS,
    &MESSAGES,
    &ATTACHMENTS,
    &AI_PROVIDER_CONFIGS,
    &AI_INTERACTIONS,
    &ORCHESTRATION_FLOWS,
    &ORCHESTRATION_STEP_RESULTS,
    &EMBEDDING_RECORDS,
    &PERMISSION_SETS,
    &DATA_SHARING_POLICIES,
    &AUDIT_LOG,
    &INVOICES,
    &SYNC_EVENTS,
    &TELEMETRY_EVENTS,
    &SESSIONS,
];

/// The entity stored in `table`.
pub fn by_table(table: &str) -> Option<&'static Entity> {
    ALL.iter().copied().find(|e| e.table == table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Input;

    #[test]
    fn the_model_has_the_24_entities_plus_sessions() {
        assert_eq!(ALL.len(), 25);
        let mut tables: Vec<_> = ALL.iter().map(|e| e.table).collect();
        tables.sort();
        tables.dedup();
        assert_eq!(tables.len(), 25, "table names are unique");
    }

    #[test]
    fn declarations_are_consistent() {
        for e in ALL {
            let sort = e
                .field(e.sort)
                .unwrap_or_else(|| panic!("{}: default sort {} missing", e.table, e.sort));
            assert!(
                sort.sort && !sort.nullable,
                "{}: sort keys are non-null",
                e.table
            );
            for f in e.fields {
                if let crate::schema::Kind::Ref(t) = f.kind {
                    assert!(
                        by_table(t).is_some(),
                        "{}.{} references unknown {t}",
                        e.table,
                        f.name
                    );
                }
                if f.sort {
                    assert!(!f.nullable, "{}.{} sorts but is nullable", e.table, f.name);
                }
                if f.input == Input::Required {
                    assert!(
                        !f.nullable,
                        "{}.{} is required but nullable",
                        e.table, f.name
                    );
                }
            }
            for c in e.cascade {
                assert!(
                    by_table(c.table).is_some_and(|t| t.soft_delete),
                    "{} cascades to {}",
                    e.table,
                    c.table
                );
            }
            if let Some(n) = e.nested {
                let parent = ALL.iter().find(|p| p.path == n.parent_path);
                let field = e.field(n.parent_field).map(|f| f.kind);
                assert!(
                    parent.is_some_and(|p| field == Some(crate::schema::Kind::Ref(p.table))),
                    "{}: nested under {} by {}, which must reference it",
                    e.table,
                    n.parent_path,
                    n.parent_field
                );
            }
            for u in e.unique {
                for f in *u {
                    assert!(e.has_column(f), "{}: unique over unknown {f}", e.table);
                }
            }
        }
    }
}
