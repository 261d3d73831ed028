//! Search over what the caller may read: full-text (`text.rs`, `GET /search`) and
//! hybrid search fusing full-text with vector results (`hybrid.rs`).

mod text;

pub use text::*;
