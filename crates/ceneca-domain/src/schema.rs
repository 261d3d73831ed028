//! The vocabulary the entity model is written in.
//!
//! Every entity is declared once, as data ([`Entity`] with its [`Field`]s, in
//! [`crate::model`]). Input validation, JSON output, tenant scoping, list filters and the
//! generated SQL all read these declarations, so adding a column is one line here plus a
//! migration, and the rules cannot drift apart between resources.

use crate::roles::{OrgRole, WorkspaceRole};

/// What a field holds, which decides how input is validated and how the column is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A UUID that the client supplies as an opaque identifier (not a foreign key).
    Uuid,
    /// A UUID referencing a row of the named table.
    Ref(&'static str),
    /// UTF-8 text of at most `max` characters.
    Text {
        max: usize,
    },
    /// An e-mail address (compared case-insensitively).
    Email,
    /// Lowercase letters, digits and dashes, 2–64 characters.
    Slug,
    /// An absolute `http`/`https` URL.
    Url,
    /// Three upper-case letters (ISO 4217).
    Currency,
    /// A lowercase hexadecimal SHA-256 digest.
    Sha256,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// Any JSON value.
    Any,
    /// A JSON array of strings, optionally restricted to a set.
    Strings(Option<&'static [&'static str]>),
    /// An RFC 3339 timestamp.
    Time,
    /// A non-empty array of finite numbers, stored as little-endian `f32` bytes.
    Vector,
    /// Binary data only the server writes (hashes, ciphertexts).
    Bytes,
    /// Input-only plaintext the service encrypts into `<name>_ciphertext`, `<name>_key_id`
    /// and `<name>_hint`; it is never stored or returned as it was sent.
    Secret,
}

/// Who supplies a field's value on create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Required,
    Optional,
    /// Set by the server only; a client sending it gets a validation error.
    Server,
}

/// When a field appears in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Always,
    /// Only when one object is returned (get, create, update), not in lists.
    Detail,
    Never,
}

/// The value a column gets on create when the client omits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    Null,
    Bool(bool),
    Int(i64),
    Text(&'static str),
    EmptyObject,
    EmptyArray,
    Now,
    /// Assigned by the database (an identity column such as the change log's `seq`).
    Generated,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub input: Input,
    /// May be changed with `PATCH`.
    pub patch: bool,
    /// Only system admins may set it (on create or patch).
    pub admin_only: bool,
    pub nullable: bool,
    pub default: Default,
    /// Usable as an equality filter in list queries.
    pub filter: bool,
    /// Usable as a sort key in list queries (the column is then `NOT NULL`).
    pub sort: bool,
    pub output: Output,
    /// `false` for input-only fields (secrets) that have no column of their own.
    pub stored: bool,
}

/// Starts a field declaration: optional, nullable, not patchable, visible.
pub const fn field(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        input: Input::Optional,
        patch: false,
        admin_only: false,
        nullable: true,
        default: Default::Null,
        filter: false,
        sort: false,
        output: Output::Always,
        stored: !matches!(kind, Kind::Secret),
    }
}

impl Field {
    pub const fn required(mut self) -> Self {
        self.input = Input::Required;
        self.nullable = false;
        self
    }
    pub const fn server(mut self) -> Self {
        self.input = Input::Server;
        self
    }
    pub const fn patch(mut self) -> Self {
        self.patch = true;
        self
    }
    pub const fn admin_only(mut self) -> Self {
        self.admin_only = true;
        self
    }
    pub const fn default(mut self, default: Default) -> Self {
        self.default = default;
        self.nullable = matches!(default, Default::Null);
        if matches!(default, Default::Generated) {
            self.input = Input::Server;
        }
        self
    }
    pub const fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
    pub const fn filter(mut self) -> Self {
        self.filter = true;
        self
    }
    pub const fn sort(mut self) -> Self {
        self.sort = true;
        self
    }
    pub const fn hidden(mut self) -> Self {
        self.output = Output::Never;
        self
    }
    pub const fn detail(mut self) -> Self {
        self.output = Output::Detail;
        self
    }
}

/// Columns every entity has.
pub const ID: Field = field("id", Kind::Uuid).server().not_null().filter();
pub const CREATED_AT: Field = field("created_at", Kind::Time).server().not_null().sort();
pub const UPDATED_AT: Field = field("updated_at", Kind::Time).server().not_null().sort();
/// The soft-delete marker, on the entities the model lists as soft-deleted.
pub const DELETED_AT: Field = field("deleted_at", Kind::Time).server();

/// An owner a row may belong to, and the column that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    User(&'static str),
    Organization(&'static str),
    Workspace(&'static str),
}

impl Owner {
    pub const fn column(self) -> &'static str {
        match self {
            Owner::User(c) | Owner::Organization(c) | Owner::Workspace(c) => c,
        }
    }
}

/// Who may write rows owned by several kinds of owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerWrite {
    /// The owning user, organization admins, workspace admins.
    Owners,
    /// System administrators only (billing records).
    SystemAdmin,
    /// Nobody through the API (the change log).
    Nobody,
}

/// How an entity's rows belong to tenants; decides every scope filter (see `crate::scope`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tenancy {
    /// The user accounts themselves: a user sees and changes only their own.
    SelfUser,
    /// Organizations themselves: members see them, admins change them, owners delete them.
    SelfOrganization,
    /// Workspaces themselves: members see them, workspace admins change and delete them.
    SelfWorkspace,
    /// Rows of one organization (`organization_id`): members read, admins write.
    Organization,
    /// Rows of one workspace (`workspace_id`): members read; `write`/`delete` roles change.
    Workspace {
        write: WorkspaceRole,
        delete: WorkspaceRole,
    },
    /// Rows of one user (`user_id`): only that user.
    User,
    /// Rows owned by exactly one of several owners.
    Owners {
        owners: &'static [Owner],
        /// Least organization role that may read organization-owned rows.
        org_read: OrgRole,
        /// Least workspace role that may read workspace-owned rows.
        ws_read: WorkspaceRole,
        write: OwnerWrite,
    },
    /// A catalogue every signed-in user reads and system admins maintain.
    Catalog,
    /// System administrators only.
    Admin,
    /// Never reachable through the generic API (sessions).
    Internal,
}

/// Which API operations the generic resource routes offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub create: bool,
    pub update: bool,
    pub delete: bool,
}

pub const FULL_API: Api = Api {
    create: true,
    update: true,
    delete: true,
};
pub const READ_ONLY_API: Api = Api {
    create: false,
    update: false,
    delete: false,
};

/// Rows soft-deleted (and restored) together with a parent.
///
/// `table.column = parent.id`, or with `via = Some((t, c))`:
/// `table.column IN (SELECT id FROM t WHERE c = parent.id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cascade {
    pub table: &'static str,
    pub column: &'static str,
    pub via: Option<(&'static str, &'static str)>,
}

/// A reference from which a row inherits its workspace (a message from its thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub field: &'static str,
    pub table: &'static str,
}

/// Routes under a parent row: `/{parent_path}/{id}/{path}` lists and creates the rows
/// whose `parent_field` is `id` (a thread's messages, an organization's members). The
/// router is built from this; the service checks the parent is visible to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nesting {
    /// The parent's URL segment (`threads`).
    pub parent_path: &'static str,
    /// The field naming the parent (`thread_id`), a reference to the parent's table.
    pub parent_field: &'static str,
    /// Reached only under its parent: no routes of its own at the top level, and the
    /// single-row routes (read, change, delete) live under the parent as well (members,
    /// whose path alone would not say which organization or workspace they belong to).
    pub only_nested: bool,
    /// Offers `/{parent_path}/{id}/{path}/batch`: many rows created under the parent in
    /// one transaction (messages of a thread).
    pub batch: bool,
}

/// A counter kept on a parent row instead of `COUNT(*)` (a thread's `message_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// The referencing column on this entity (`thread_id`).
    pub field: &'static str,
    pub table: &'static str,
    pub count_column: &'static str,
    /// A timestamp column on the parent moved forward to this row's `created_at`.
    pub touch_column: Option<&'static str>,
}

#[derive(Debug)]
pub struct Entity {
    /// Singular name, used in errors and the change log ("thread").
    pub name: &'static str,
    pub table: &'static str,
    /// URL segment under `/api/v1/` ("threads").
    pub path: &'static str,
    /// Columns besides `id`, `created_at`, `updated_at` and `deleted_at`.
    pub fields: &'static [Field],
    pub soft_delete: bool,
    pub tenancy: Tenancy,
    /// Default list order.
    pub sort: &'static str,
    pub sort_desc: bool,
    pub api: Api,
    pub cascade: &'static [Cascade],
    pub parent: Option<Parent>,
    /// Routes under a parent row, if any.
    pub nested: Option<Nesting>,
    pub counter: Option<Counter>,
    /// Incremented on every update (documents, flows).
    pub version_field: Option<&'static str>,
    /// Writes are recorded in the change log (`sync_events`).
    pub changelog: bool,
    /// Unique constraints, by the fields they cover (for conflict messages).
    pub unique: &'static [&'static [&'static str]],
}

impl Entity {
    /// Every stored column, in the order SQL is generated with.
    pub fn columns(&self) -> impl Iterator<Item = &Field> + '_ {
        [&ID, &CREATED_AT, &UPDATED_AT]
            .into_iter()
            .chain(self.fields.iter().filter(|f| f.stored))
            .chain(self.soft_delete.then_some(&DELETED_AT))
    }
    /// A declared field or common column by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.columns()
            .find(|f| f.name == name)
            .or_else(|| self.fields.iter().find(|f| f.name == name))
    }
    pub fn has_column(&self, name: &str) -> bool {
        self.columns().any(|f| f.name == name)
    }
}
