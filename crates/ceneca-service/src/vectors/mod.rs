//! Vector search: the points API (`points.rs`).

mod points;

pub use points::*;
