//! # ceneca-wire
//!
//! Ceneca's API as clients see it: the request and response types of every route that is
//! not a generic entity route (auth, MFA, API tokens, search, vectors, errors, pages), the
//! typed list and search parameters with the one grammar each parameter has, and the
//! OpenAPI schemas of the 24 entities, generated from `ceneca_domain::model` so the model
//! stays their single declaration.
//!
//! It sits between the domain and the service: the server parses requests into these types
//! (answering per-field errors), the service takes and returns them, and the server
//! serialises them. It knows no HTTP and no SQL.

pub mod attachments;
pub mod auth;
pub mod backup;
pub mod entities;
pub mod erasure;
pub mod error;
pub mod export;
pub mod maintenance;
pub mod params;
pub mod search;
pub mod storage;
pub mod sync;
pub mod vectors;

pub use error::{ErrorBody, ErrorDetail, ParamError};
pub use params::{ListParams, SearchKind, SearchParams};
