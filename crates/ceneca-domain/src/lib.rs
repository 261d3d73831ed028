//! # ceneca-domain
//!
//! What Ceneca stores and the rules it keeps, with no I/O: the 24-entity model declared as
//! data ([`model`], in the vocabulary of [`schema`]), typed validation of client input
//! ([`validate`]), JSON output ([`output`]), roles and tenant scopes ([`roles`], [`scope`]),
//! the edition policy ([`edition`]), flow definitions ([`flow`]) and clocks ([`clock`]).
//!
//! It does not talk to databases or HTTP: the store binds the [`Value`]s produced here, and
//! the server maps [`ValidationError`] to `422`.

pub mod audit;
pub mod clock;
pub mod content_type;
pub mod credential;
pub mod deleted;
pub mod dlp;
pub mod edition;
pub mod erasure;
pub mod error;
pub mod export;
pub mod flow;
pub mod model;
pub mod network;
pub mod output;
pub mod roles;
pub mod schema;
pub mod scope;
pub mod search;
pub mod settings;
pub mod storage;
pub mod sync;
pub mod validate;
pub mod value;

pub use deleted::Deleted;
pub use edition::Edition;
pub use error::ValidationError;
pub use schema::Entity;
pub use value::{Record, Value};

/// A new time-ordered identifier (UUIDv7): ids sort by creation time, which keeps B-tree
/// inserts at the right edge of the index.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
