//! HTTP handlers: thin — extract, call one service method, shape the answer.

pub mod health;
pub mod v1;
