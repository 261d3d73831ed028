//! Versioned migrations, one SQL file pair (up/down) per version and engine, embedded in
//! the binary. Applied versions are recorded with a checksum so an edited migration is
//! noticed instead of silently diverging.

use sha2_free_checksum::checksum;

/// One migration for one engine.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        checksum(self.up)
    }
}

/// A migration's state in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    /// When it was applied (RFC 3339), or `None` if pending.
    pub applied_at: Option<String>,
    /// The applied file differs from the one in this binary.
    pub modified: bool,
}

/// One migration of one engine, from its file pair `migrations/<engine>/<file>.{up,down}.sql`.
macro_rules! migration {
    ($engine:literal, $version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!("../migrations/", $engine, "/", $file, ".up.sql")),
            down: include_str!(concat!("../migrations/", $engine, "/", $file, ".down.sql")),
        }
    };
}

/// Versions after which the storage counters are recounted from the data: they changed
/// what counts, which SQL alone cannot recount the way writes count (12: JSON metadata is
/// measured from its value, an attachment's file only while it is kept).
pub const RECOUNTS_STORAGE: &[i64] = &[12];

/// Versions whose down migration needs every packed message body stored plain first,
/// which only the store can do (PostgreSQL cannot unpack in SQL): 13 made packing possible.
pub const UNPACKS_BEFORE_DOWN: &[i64] = &[13];

pub const SQLITE: &[Migration] = &[
    migration!("sqlite", 1, "schema", "0001_schema"),
    migration!("sqlite", 2, "content_encryption", "0002_content_encryption"),
    migration!("sqlite", 3, "vector_outbox", "0003_vector_outbox"),
    migration!("sqlite", 4, "auth_hardening", "0004_auth_hardening"),
    migration!("sqlite", 5, "audit_chain_mac", "0005_audit_chain_mac"),
    migration!("sqlite", 6, "dlp_policy", "0006_dlp_policy"),
    migration!("sqlite", 7, "sync", "0007_sync"),
    migration!("sqlite", 8, "sync_memberships", "0008_sync_memberships"),
    migration!("sqlite", 9, "attachment_content", "0009_attachment_content"),
    migration!("sqlite", 10, "storage_usage", "0010_storage_usage"),
    migration!(
        "sqlite",
        11,
        "embeddings_follow_sources",
        "0011_embeddings_follow_sources"
    ),
    migration!("sqlite", 12, "retention", "0012_retention"),
    migration!("sqlite", 13, "packed_bodies", "0013_packed_bodies"),
    migration!("sqlite", 14, "thumbnails", "0014_thumbnails"),
    migration!("sqlite", 15, "purge", "0015_purge"),
    migration!("sqlite", 16, "erasure", "0016_erasure"),
    migration!("sqlite", 17, "creations_by_user", "0017_creations_by_user"),
    migration!(
        "sqlite",
        18,
        "vector_index_owner",
        "0018_vector_index_owner"
    ),
    migration!("sqlite", 19, "auth_generation", "0019_auth_generation"),
    migration!("sqlite", 20, "search_walks", "0020_search_walks"),
];

pub const POSTGRES: &[Migration] = &[
    migration!("postgres", 1, "schema", "0001_schema"),
    migration!(
        "postgres",
        2,
        "content_encryption",
        "0002_content_encryption"
    ),
    migration!("postgres", 3, "vector_outbox", "0003_vector_outbox"),
    migration!("postgres", 4, "auth_hardening", "0004_auth_hardening"),
    migration!("postgres", 5, "audit_chain_mac", "0005_audit_chain_mac"),
    migration!("postgres", 6, "dlp_policy", "0006_dlp_policy"),
    migration!("postgres", 7, "sync", "0007_sync"),
    migration!("postgres", 8, "sync_memberships", "0008_sync_memberships"),
    migration!(
        "postgres",
        9,
        "attachment_content",
        "0009_attachment_content"
    ),
    migration!("postgres", 10, "storage_usage", "0010_storage_usage"),
    migration!(
        "postgres",
        11,
        "embeddings_follow_sources",
        "0011_embeddings_follow_sources"
    ),
    migration!("postgres", 12, "retention", "0012_retention"),
    migration!("postgres", 13, "packed_bodies", "0013_packed_bodies"),
    migration!("postgres", 14, "thumbnails", "0014_thumbnails"),
    migration!("postgres", 15, "purge", "0015_purge"),
    migration!("postgres", 16, "erasure", "0016_erasure"),
    migration!(
        "postgres",
        17,
        "creations_by_user",
        "0017_creations_by_user"
    ),
    migration!(
        "postgres",
        18,
        "vector_index_owner",
        "0018_vector_index_owner"
    ),
    migration!("postgres", 19, "auth_generation", "0019_auth_generation"),
    migration!("postgres", 20, "search_walks", "0020_search_walks"),
];

/// Builds the status list from what a database recorded: `(version, name, applied_at, checksum)`.
pub fn status(
    known: &[Migration],
    applied: &[(i64, String, String, String)],
) -> Vec<MigrationStatus> {
    let mut out: Vec<MigrationStatus> = known
        .iter()
        .map(|m| {
            let row = applied.iter().find(|a| a.0 == m.version);
            MigrationStatus {
                version: m.version,
                name: m.name.to_owned(),
                applied_at: row.map(|a| a.2.clone()),
                modified: row.is_some_and(|a| a.3 != m.checksum()),
            }
        })
        .collect();
    for a in applied
        .iter()
        .filter(|a| known.iter().all(|m| m.version != a.0))
    {
        out.push(MigrationStatus {
            version: a.0,
            name: format!("{} (unknown to this binary)", a.1),
            applied_at: Some(a.2.clone()),
            modified: false,
        });
    }
    out.sort_by_key(|s| s.version);
    out
}

/// A stable 64-bit FNV-1a checksum; tamper detection is not its job, noticing edits is.
mod sha2_free_checksum {
    pub fn checksum(text: &str) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_have_the_same_versions() {
        let s: Vec<_> = SQLITE.iter().map(|m| (m.version, m.name)).collect();
        let p: Vec<_> = POSTGRES.iter().map(|m| (m.version, m.name)).collect();
        assert_eq!(s, p);
    }

    #[test]
    fn status_marks_pending_and_modified() {
        let applied = vec![(
            1,
            "schema".to_owned(),
            "2026-01-01T00:00:00Z".to_owned(),
            "nope".to_owned(),
        )];
        let st = status(SQLITE, &applied);
        assert!(st[0].modified);
        assert_eq!(status(SQLITE, &[])[0].applied_at, None);
    }
}
