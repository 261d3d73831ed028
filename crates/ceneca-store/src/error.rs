/// What can go wrong in the store, typed so the service can answer 404, 409 or 422 and
/// never show SQL to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row matched (it does not exist, or is outside the caller's scope).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write.
    #[error("{table}: already exists ({})", fields.join(", "))]
    Unique { table: String, fields: Vec<String> },
    /// A foreign key refused the write: a referenced row is missing, or a row being deleted
    /// is still referenced.
    #[error("{table}: foreign key constraint")]
    ForeignKey { table: String },
    /// A CHECK constraint refused the write.
    #[error("{table}: check constraint")]
    Check { table: String },
    /// A row changed after the batch read its history (`WriteOp::ExpectHistory`), or the
    /// engine rolled the batch back to break a deadlock: decide again on what it holds
    /// now, and send the write again.
    #[error("the row changed since its history was read")]
    Stale,
    /// The batch would have taken away what must stay (the last owner of an
    /// organization, `WriteOp::OwnershipChange`); says what.
    #[error("{0}")]
    MustKeep(&'static str),
    /// The batch's author may not make it, as things stand inside its transaction
    /// (`WriteOp::OwnershipChange`); says why.
    #[error("{0}")]
    Refused(&'static str),
    /// The batch would take what its holder stores past its quota
    /// (`WriteOp::WithinQuota`).
    #[error("storage quota exceeded: {used} of {quota} bytes")]
    QuotaExceeded { quota: i64, used: i64 },
    #[error("migration: {0}")]
    Migration(String),
    /// The embedded database's encryption does not match the configuration, or the key
    /// ring does not open it; the message says what to do.
    #[error(transparent)]
    Encryption(#[from] crate::EncryptionError),
    #[error("configuration: {0}")]
    Config(String),
    /// The engine cancelled a query at its time limit (a search's
    /// [`crate::search::SEARCH_TIME_LIMIT`], or one the database's administrator set):
    /// what it asked for costs more than that.
    #[error("the query ran past its time limit and was cancelled")]
    TimedOut,
    /// The engine could not answer now, for a reason of its own that passes (a lock held
    /// by maintenance); says which. Retry.
    #[error("{0}")]
    Unavailable(String),
    /// The engine cancelled the query: its administrator, or a time limit set on the
    /// database. Retry.
    #[error("the database cancelled the query")]
    Cancelled,
    /// Anything else from the engine; logged, never shown to clients.
    #[error("database error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
