//! Message bodies kept compressed: the stored form of an old body, and the way back.
//!
//! Retention compresses the bodies of messages nobody has written to for a while
//! (`retention.compress_after_days`). A packed body is a zstd frame in `content_packed`,
//! and `content` is left empty: the text is stored once. Whatever `content` held is packed,
//! sealed text included (its base64 shrinks by about a quarter), and unpacking gives back
//! exactly that text, so sealing is opened after unpacking.
//!
//! Readers never see the packed form: the service unpacks every row it shows or sends
//! ([`unpack_record`]); the full-text index reads packed bodies through `ceneca_unpack` on SQLite
//! and keeps a packed row's words on PostgreSQL (migration 0013); a write that sets the
//! body stores it plain again (`ops.rs`). The storage counters count what is stored: the
//! frame's bytes.

pub use ceneca_domain::storage::{MESSAGE_CONTENT, PackedField, packed_field};
use ceneca_domain::{Entity, Record, Value};

/// Bodies shorter than this are never packed: a frame's header and the lack of context
/// leave nothing to gain.
pub const PACK_FROM_BYTES: usize = 128;

/// zstd's level for packing: old bodies are written once and rarely read, so a better
/// ratio is worth more than speed (unpacking is as fast at any level).
const LEVEL: i32 = 9;

/// The largest text packed, and so the largest a frame may unpack to: a body of the most
/// characters the model allows, four bytes each, sealed (its ciphertext in base64 takes a
/// third more), with room to spare. Longer text is left plain; a frame claiming more is
/// refused before any memory is taken.
const MAX_PLAIN_BYTES: usize = 8 * 1024 * 1024;

/// A stored frame that does not unpack: the database was damaged or written by hand.
#[derive(Debug, thiserror::Error)]
#[error("a compressed body does not unpack: {0}")]
pub struct UnpackError(String);

/// `text` packed, when that stores fewer bytes; `None` when it would not.
pub fn pack(text: &str) -> Option<Vec<u8>> {
    if text.len() < PACK_FROM_BYTES || text.len() > MAX_PLAIN_BYTES {
        return None;
    }
    // The frame records the text's length, which `unpack` reads before allocating.
    let frame = zstd::bulk::compress(text.as_bytes(), LEVEL).ok()?;
    (frame.len() < text.len()).then_some(frame)
}

/// The text a frame holds.
pub fn unpack(frame: &[u8]) -> Result<String, UnpackError> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_PLAIN_BYTES as u64 => size as usize,
        Ok(Some(size)) => return Err(UnpackError(format!("it claims {size} bytes"))),
        Ok(None) => return Err(UnpackError("its frame has no length".into())),
        Err(_) => return Err(UnpackError("its frame header is damaged".into())),
    };
    let bytes = zstd::bulk::decompress(frame, size).map_err(|e| UnpackError(e.to_string()))?;
    if bytes.len() != size {
        return Err(UnpackError("it is shorter than its header says".into()));
    }
    String::from_utf8(bytes).map_err(|_| UnpackError("it is not UTF-8".into()))
}

/// Puts a packed row's text back in its field, as if it had never been packed (the packed
/// column becomes `NULL`; the flag stays, telling how the row is stored).
pub fn unpack_record(entity: &Entity, row: &mut Record) -> Result<(), UnpackError> {
    let Some(packed) = packed_field(entity) else {
        return Ok(());
    };
    let text = match row.get(packed.packed) {
        Some(Value::Bytes(frame)) => unpack(frame)?,
        _ => return Ok(()),
    };
    row.set(packed.field, Value::Text(text));
    row.set(packed.packed, Value::Null);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceneca_domain::model;

    #[test]
    fn a_body_packs_and_unpacks_to_the_same_text() {
        let text = "The quarterly report is late again; ünïcödé 日本語 stays intact. ".repeat(20);
        let frame = pack(&text).expect("repetitive text shrinks");
        assert!(frame.len() < text.len() / 4);
        assert_eq!(unpack(&frame).unwrap(), text);
    }

    #[test]
    fn short_or_incompressible_text_is_left_plain() {
        assert!(pack("hello").is_none());
        // Text with no repetition a frame could use: every character distinct.
        let noise: String = (0..200u32)
            .map(|i| char::from_u32(0x4E00 + i * 37).unwrap())
            .collect();
        assert!(pack(&noise).is_none() || pack(&noise).unwrap().len() < noise.len());
    }

    /// Found by the attack: a sealed body of a million three-byte characters stores over
    /// 4 MB of base64; it was packed, then refused on every read.
    #[test]
    fn regression_the_largest_sealed_body_unpacks() {
        let sealed_like = "A".repeat(4 * 1_000_000 * 4 / 3 + 64);
        let frame = pack(&sealed_like).expect("packed");
        assert_eq!(unpack(&frame).unwrap(), sealed_like);
        assert!(
            pack(&"A".repeat(MAX_PLAIN_BYTES + 1)).is_none(),
            "too long to pack"
        );
    }

    #[test]
    fn damaged_frames_are_refused_not_trusted() {
        let frame = pack(&"abc ".repeat(100)).unwrap();
        assert!(unpack(&frame[..frame.len() - 3]).is_err(), "cut short");
        assert!(unpack(b"not a frame at all").is_err());
        assert!(unpack(&[]).is_err());
        // A header claiming more than a body may hold is refused before allocating.
        let huge = zstd::bulk::compress(&vec![b'a'; MAX_PLAIN_BYTES + 1], 1).unwrap();
        assert!(unpack(&huge).is_err());
        let not_utf8 = zstd::bulk::compress(&[0xff; 300], 1).unwrap();
        assert!(unpack(&not_utf8).is_err());
    }

    #[test]
    fn a_record_is_unpacked_in_place() {
        let text = "a long body that repeats itself ".repeat(10);
        let mut row = Record::with_capacity(3);
        row.set("content", Value::Text(String::new()));
        row.set("content_packed", Value::Bytes(pack(&text).unwrap()));
        row.set("compressed", Value::Bool(true));
        unpack_record(&model::MESSAGES, &mut row).unwrap();
        assert_eq!(row.get("content"), Some(&Value::Text(text)));
        assert_eq!(row.get("content_packed"), Some(&Value::Null));
        assert_eq!(row.get("compressed"), Some(&Value::Bool(true)));
        // Other entities and plain rows are left alone.
        let mut plain = Record::with_capacity(1);
        plain.set("content", Value::Text("x".into()));
        unpack_record(&model::MESSAGES, &mut plain).unwrap();
        assert_eq!(plain.get("content"), Some(&Value::Text("x".into())));
    }
}
