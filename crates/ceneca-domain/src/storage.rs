//! What a workspace stores, by category: the rows that hold content and how many bytes
//! each takes. The store keeps these counts on every write (never by scanning); the same
//! definitions recompute them from the data (`ceneca storage reconcile`), so a write path
//! and a recount can only agree if both read this table.

use crate::{Entity, Record, Value, model};

/// A category of stored data, as statistics and quotas name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Messages,
    Documents,
    Attachments,
    Embeddings,
    /// Threads and projects: what organizes the content.
    Metadata,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Messages,
        Category::Documents,
        Category::Attachments,
        Category::Embeddings,
        Category::Metadata,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Messages => "messages",
            Category::Documents => "documents",
            Category::Attachments => "attachments",
            Category::Embeddings => "embeddings",
            Category::Metadata => "metadata",
        }
    }
}

/// How one entity's rows count: their category, the columns whose stored length is their
/// size (text in UTF-8 bytes, binary in bytes), and what the row keeps beside it (an
/// attachment's file and its thumbnail).
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    pub entity: &'static Entity,
    pub category: Category,
    pub columns: &'static [&'static str],
    /// JSON columns, counted by their compact JSON text (an empty object or array, or
    /// none, counts nothing). Measured from the value, never from an engine's spelling
    /// of it: PostgreSQL writes `jsonb` back with spaces, SQLite as it was given.
    pub json: &'static [&'static str],
    pub beside: &'static [Beside],
}

/// Something kept beside a row: `size` holds its bytes, counted while `kept_while` is set.
/// An attachment whose file retention removed keeps its size as metadata, and stops
/// counting it.
#[derive(Debug, Clone, Copy)]
pub struct Beside {
    pub size: &'static str,
    pub kept_while: &'static str,
}

/// Every entity whose rows count, each in one category. A row in the bin still counts:
/// it is stored until it is purged.
pub static SIZED: [Sizing; 6] = [
    Sizing {
        entity: &model::MESSAGES,
        category: Category::Messages,
        // A body is in one or the other: `content_packed` once retention compressed it.
        columns: &["content", "content_packed"],
        json: &["metadata"],
        beside: &[],
    },
    Sizing {
        entity: &model::DOCUMENTS,
        category: Category::Documents,
        columns: &["title", "body"],
        json: &["metadata"],
        beside: &[],
    },
    Sizing {
        entity: &model::ATTACHMENTS,
        category: Category::Attachments,
        columns: &["file_name"],
        json: &[],
        beside: &[
            Beside {
                size: "size_bytes",
                kept_while: "storage_key",
            },
            // A thumbnail is the account's bytes like the file it shows.
            Beside {
                size: "thumbnail_bytes",
                kept_while: "thumbnail_key",
            },
        ],
    },
    Sizing {
        entity: &model::EMBEDDING_RECORDS,
        category: Category::Embeddings,
        columns: &["vector"],
        json: &[],
        beside: &[],
    },
    Sizing {
        entity: &model::THREADS,
        category: Category::Metadata,
        columns: &["title"],
        json: &[],
        beside: &[],
    },
    Sizing {
        entity: &model::PROJECTS,
        category: Category::Metadata,
        columns: &["name", "description"],
        json: &[],
        beside: &[],
    },
];

/// A text field whose stored form may be packed (compressed by retention, see the store's
/// `packing`): the text column, empty while packed, the column holding the packed form,
/// `NULL` while the text is plain, and the flag telling clients how the row is stored.
#[derive(Debug, Clone, Copy)]
pub struct PackedField {
    pub entity: &'static Entity,
    pub field: &'static str,
    pub packed: &'static str,
    pub flag: &'static str,
}

/// Message bodies, the one field retention packs.
pub const MESSAGE_CONTENT: PackedField = PackedField {
    entity: &model::MESSAGES,
    field: "content",
    packed: "content_packed",
    flag: "compressed",
};

/// The packed field of `entity`, if it has one.
pub fn packed_field(entity: &Entity) -> Option<&'static PackedField> {
    (entity.table == MESSAGE_CONTENT.entity.table).then_some(&MESSAGE_CONTENT)
}

/// Makes a write that sets a packed field's text store it plain: the packed form is
/// cleared and the flag lowered, unless the write stores a packed form itself. Whether it
/// did. The store applies it to every update; the service to the row it measures against
/// a quota, so an edit of a compressed body is charged what it will store.
pub fn store_plain(entity: &Entity, record: &mut Record) -> bool {
    match packed_field(entity) {
        Some(p) if record.contains(p.field) && !record.contains(p.packed) => {
            record.set(p.packed, Value::Null);
            record.set(p.flag, Value::Bool(false));
            true
        }
        _ => false,
    }
}

/// Whether `field` of `entity` describes what this node keeps, not the row's data: how a
/// body is stored (compressed by this node's retention or not) and where an image's
/// thumbnail stands (made by this node from the file it keeps). Never replicated.
pub fn node_local(entity: &Entity, field: &str) -> bool {
    packed_field(entity).is_some_and(|p| p.flag == field)
        || (entity.table == model::ATTACHMENTS.table && field == "thumbnail")
}

/// How rows of `entity` count, if they do.
pub fn sizing(entity: &Entity) -> Option<&'static Sizing> {
    SIZED.iter().find(|s| s.entity.table == entity.table)
}

impl Sizing {
    /// The bytes `row` takes, as stored.
    pub fn bytes(&self, row: &Record) -> i64 {
        let stored: usize = self
            .columns
            .iter()
            .map(|column| match row.get(column) {
                Some(Value::Text(text)) => text.len(),
                Some(Value::Bytes(bytes)) => bytes.len(),
                _ => 0,
            })
            .sum();
        let json: usize = self
            .json
            .iter()
            .map(|column| match row.get(column) {
                Some(Value::Json(value)) => json_bytes(value),
                _ => 0,
            })
            .sum();
        let beside: i64 = self
            .beside
            .iter()
            .filter(|b| !matches!(row.get(b.kept_while), None | Some(Value::Null)))
            .filter_map(|b| row.get(b.size).and_then(Value::as_int))
            .sum();
        (stored + json) as i64 + beside
    }

    /// Whether a change of these fields changes the row's size.
    pub fn resizes<'a>(&self, mut fields: impl Iterator<Item = &'a str>) -> bool {
        fields.any(|f| {
            self.columns.contains(&f)
                || self.json.contains(&f)
                || self.beside.iter().any(|b| b.size == f || b.kept_while == f)
        })
    }
}

/// The bytes a JSON value counts: its compact text; nothing for an empty object or array.
pub fn json_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value as Json;
    match value {
        Json::Null => 0,
        Json::Object(o) if o.is_empty() => 0,
        Json::Array(a) if a.is_empty() => 0,
        _ => {
            /// Counts what is written, keeping none of it.
            struct Counter(usize);
            impl std::io::Write for Counter {
                fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                    self.0 += buf.len();
                    Ok(buf.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            let mut counter = Counter(0);
            // Writing to a counter cannot fail.
            let _ = serde_json::to_writer(&mut counter, value);
            counter.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_their_stored_bytes_and_what_they_keep_beside() {
        let mut message = Record::new();
        message.set("content", Value::Text("héllo".into()));
        message.set("role", Value::Text("user".into()));
        assert_eq!(sizing(&model::MESSAGES).unwrap().bytes(&message), 6);
        // Metadata counts by its compact JSON; an empty object counts nothing.
        message.set("metadata", Value::Json(serde_json::json!({})));
        assert_eq!(sizing(&model::MESSAGES).unwrap().bytes(&message), 6);
        message.set("metadata", Value::Json(serde_json::json!({"k": [1, "é"]})));
        assert_eq!(sizing(&model::MESSAGES).unwrap().bytes(&message), 6 + 14);
        assert!(
            sizing(&model::MESSAGES)
                .unwrap()
                .resizes(["metadata"].into_iter())
        );
        let mut attachment = Record::new();
        attachment.set("file_name", Value::Text("a.png".into()));
        attachment.set("size_bytes", Value::Int(1000));
        let attachments = sizing(&model::ATTACHMENTS).unwrap();
        // No file kept (none uploaded yet, or retention removed it): its size is metadata.
        assert_eq!(attachments.bytes(&attachment), 5);
        attachment.set("storage_key", Value::Text("ab/cd/abcd".into()));
        assert_eq!(attachments.bytes(&attachment), 1005);
        assert!(attachments.resizes(["size_bytes"].into_iter()));
        assert!(attachments.resizes(["storage_key"].into_iter()));
        assert!(!attachments.resizes(["mime_type"].into_iter()));
        // Its thumbnail counts while it is kept.
        attachment.set("thumbnail_bytes", Value::Int(300));
        assert_eq!(attachments.bytes(&attachment), 1005);
        attachment.set("thumbnail_key", Value::Text("ef/01/ef01".into()));
        assert_eq!(attachments.bytes(&attachment), 1305);
        assert!(attachments.resizes(["thumbnail_key"].into_iter()));
        assert!(sizing(&model::USERS).is_none());
        // Each entity counts in one category only.
        for (i, a) in SIZED.iter().enumerate() {
            assert!(
                SIZED[i + 1..]
                    .iter()
                    .all(|b| b.entity.table != a.entity.table)
            );
            let beside = a.beside.iter().flat_map(|b| [&b.size, &b.kept_while]);
            for column in a.columns.iter().chain(a.json).chain(beside) {
                assert!(
                    a.entity.field(column).is_some(),
                    "{}.{column}",
                    a.entity.table
                );
            }
        }
    }
}
