//! Every end-to-end story, in one test binary: each story file is a module here.
//!
//! One binary rather than one per file: each would link the whole server (about 130 MB
//! apiece with line tables), which cost minutes of linking and gigabytes of disk per build.
//! nextest still runs every test in a process of its own; select a file's stories with
//! `-E 'test(/^storage::/)'`.

mod attachments;
mod audit;
mod auth;
mod auth_cache;
mod backups;
mod bad_input;
mod crud;
mod dlp;
mod encryption;
mod erasure;
mod export;
mod integrity;
mod isolation;
mod limits;
mod maintenance;
mod matrix;
mod mfa;
mod purge;
mod rbac;
mod relations;
mod review_input;
mod route_matrix;
mod search;
mod security_review;
mod storage;
mod sync;
mod thumbnails;
mod tls;
mod vectors;
mod zero_sync;
