//! Files encrypted at rest in chunks, so no file is ever whole in memory: the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM, as the
//! `aead` crate implements it (`StreamBE32`: a 32-bit big-endian chunk counter and a
//! last-chunk flag in each nonce, so chunks cannot be reordered, dropped or the file cut
//! short without the tag failing).
//!
//! Layout: `CNF1 | key id length (1) | key id | salt (32)`, then the chunks, each
//! [`CHUNK`] bytes of content (the last one 0 to [`CHUNK`]) followed by a 16-byte tag.
//!
//! - Each file has a key of its own: HKDF-SHA256 of the ring key's file subkey with the
//!   file's random salt. A nonce is then never used twice under one key, however many
//!   files there are, and the nonce prefix can be fixed.
//! - Every chunk authenticates the header (key id and salt); the last one also the file's
//!   *identity* (the name it is stored under), which is known only once all the content
//!   has been read. A file copied under another name fails to open: [`FileOpener`] checks
//!   the last chunk before any content is served.
//! - Stored names are keyed too ([`KeyRing::sealed_file_name`]): an HMAC of the content's
//!   SHA-256, so the folder does not tell which known file someone stored.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use hmac::{Hmac, Mac};
use rand::RngCore;

use crate::{KeyRing, KeyRingError};

/// Content bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// The tag after each chunk.
pub const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"CNF1";
const SALT: usize = 32;
/// The longest header: magic, length, a 255-byte key id, salt.
pub const MAX_HEADER: usize = MAGIC.len() + 1 + 255 + SALT;
/// HKDF labels under a ring key's file subkey.
const CONTENT_LABEL: &[u8] = b"content";
const NAME_LABEL: &[u8] = b"names";

/// Seals a file chunk by chunk, in order.
pub struct FileSealer {
    header: Vec<u8>,
    stream: StreamBE32<Aes256Gcm>,
    position: u32,
}

impl std::fmt::Debug for FileSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSealer")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl FileSealer {
    /// What the file starts with.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Seals `chunk` (exactly [`CHUNK`] bytes, not the last) in place: its tag is appended.
    pub fn seal(&mut self, chunk: &mut Vec<u8>) {
        assert_eq!(chunk.len(), CHUNK, "only the last chunk may be short");
        self.stream
            .encrypt_in_place(self.position, false, &self.header, chunk)
            .expect("AES-GCM encryption of in-memory data cannot fail");
        self.position = self
            .position
            .checked_add(1)
            .expect("a file of 2^32 chunks (256 TiB) is past any upload limit");
    }

    /// Seals the last chunk (0 to [`CHUNK`] bytes), bound to the file's `identity`.
    pub fn seal_last(self, chunk: &mut Vec<u8>, identity: &[u8]) {
        assert!(chunk.len() <= CHUNK);
        let aad = [self.header.as_slice(), identity].concat();
        self.stream
            .encrypt_in_place(self.position, true, &aad, chunk)
            .expect("AES-GCM encryption of in-memory data cannot fail");
    }
}

/// Where a sealed file's content lies: its size and its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedLayout {
    pub header_len: u64,
    /// Content bytes.
    pub size: u64,
    /// Chunks, the last included (at least one).
    pub chunks: u64,
}

impl SealedLayout {
    /// Where chunk `index` starts in the file, and how many bytes it takes there.
    pub fn chunk_span(&self, index: u64) -> (u64, usize) {
        let start = self.header_len + index * (CHUNK + TAG) as u64;
        let content = if index + 1 == self.chunks {
            (self.size - index * CHUNK as u64) as usize
        } else {
            CHUNK
        };
        (start, content + TAG)
    }
}

/// Opens the chunks of one sealed file, in any order.
pub struct FileOpener {
    header: Vec<u8>,
    stream: StreamBE32<Aes256Gcm>,
}

impl std::fmt::Debug for FileOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileOpener")
            .field("header_len", &self.header.len())
            .finish_non_exhaustive()
    }
}

impl FileOpener {
    /// Where the content lies in a sealed file of `file_len` bytes; `Malformed` when no
    /// sealed file has that length.
    pub fn layout(&self, file_len: u64) -> Result<SealedLayout, KeyRingError> {
        let header_len = self.header.len() as u64;
        let body = file_len
            .checked_sub(header_len)
            .filter(|b| *b >= TAG as u64)
            .ok_or(KeyRingError::Malformed)?;
        let sealed = (CHUNK + TAG) as u64;
        // Every chunk but the last is full; the last holds 0 to CHUNK bytes.
        let chunks = body.div_ceil(sealed);
        let last = body - (chunks - 1) * sealed;
        if last < TAG as u64 {
            return Err(KeyRingError::Malformed);
        }
        Ok(SealedLayout {
            header_len,
            size: body - chunks * TAG as u64,
            chunks,
        })
    }

    /// Opens chunk `index` in place (its tag is removed); `identity` is checked on the
    /// last chunk only.
    pub fn open(
        &self,
        layout: &SealedLayout,
        index: u64,
        chunk: &mut Vec<u8>,
        identity: &[u8],
    ) -> Result<(), KeyRingError> {
        let position = u32::try_from(index).map_err(|_| KeyRingError::Malformed)?;
        let last = index + 1 == layout.chunks;
        let result = if last {
            let aad = [self.header.as_slice(), identity].concat();
            self.stream.decrypt_in_place(position, true, &aad, chunk)
        } else {
            self.stream
                .decrypt_in_place(position, false, &self.header, chunk)
        };
        result.map_err(|_| KeyRingError::Decrypt)
    }
}

impl KeyRing {
    /// A sealer for a new file, under the active key with a fresh salt.
    pub fn file_sealer(&self) -> FileSealer {
        let mut salt = [0u8; SALT];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let id = self.active_key_id().as_bytes();
        let mut header = Vec::with_capacity(MAGIC.len() + 1 + id.len() + SALT);
        header.extend_from_slice(MAGIC);
        header.push(id.len() as u8);
        header.extend_from_slice(id);
        header.extend_from_slice(&salt);
        let stream = self
            .file_stream(self.active_key_id(), &salt)
            .expect("the active key is in the ring");
        FileSealer {
            header,
            stream,
            position: 0,
        }
    }

    /// An opener for the sealed file that starts with `head` (its first bytes, at least
    /// the header: [`MAX_HEADER`] or the whole file if shorter).
    pub fn file_opener(&self, head: &[u8]) -> Result<FileOpener, KeyRingError> {
        let rest = head.strip_prefix(MAGIC).ok_or(KeyRingError::Malformed)?;
        let (&id_len, rest) = rest.split_first().ok_or(KeyRingError::Malformed)?;
        let id_len = id_len as usize;
        if rest.len() < id_len + SALT {
            return Err(KeyRingError::Malformed);
        }
        // A key id as the ring spells them, or the header is not one this ring wrote (and
        // nothing of it reaches a log or an error).
        let id = std::str::from_utf8(&rest[..id_len])
            .ok()
            .filter(|id| {
                (1..=64).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or(KeyRingError::Malformed)?;
        let stream = self.file_stream(id, &rest[id_len..id_len + SALT])?;
        Ok(FileOpener {
            header: head[..MAGIC.len() + 1 + id_len + SALT].to_vec(),
            stream,
        })
    }

    /// The name a file with this content (`sha256`, hex) is stored under when sealed with
    /// the active key for `scope` (the tenant it belongs to): 64 hex digits of an HMAC, so
    /// equal files of one scope share a name (and are stored once) without the name
    /// telling what the content is, and one tenant's upload never finds (nor times) a
    /// file another stored.
    pub fn sealed_file_name(&self, scope: &[u8], sha256: &str) -> String {
        let key = self
            .file_subkey(self.active_key_id(), NAME_LABEL)
            .expect("the active key is in the ring");
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key)
            .expect("HMAC takes a key of any length");
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope);
        mac.update(sha256.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn file_stream(&self, id: &str, salt: &[u8]) -> Result<StreamBE32<Aes256Gcm>, KeyRingError> {
        let master = self
            .file_subkey(id, CONTENT_LABEL)
            .ok_or_else(|| KeyRingError::UnknownKey(id.to_owned()))?;
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &master)
            .expand(b"file key", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let aead = Aes256Gcm::new(GenericArray::from_slice(&key));
        // Each file has its own key: the nonce prefix (7 bytes) can be fixed.
        Ok(StreamBE32::from_aead(
            aead,
            GenericArray::from_slice(&[0u8; 7]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        let key: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        KeyRing::new("k1", &key).unwrap()
    }

    fn seal(ring: &KeyRing, content: &[u8], identity: &[u8]) -> Vec<u8> {
        let mut sealer = ring.file_sealer();
        let mut out = sealer.header().to_vec();
        let mut chunks = content.chunks(CHUNK).peekable();
        // The last chunk is sealed as the last even when full; an empty file has one,
        // empty.
        loop {
            let mut chunk = chunks.next().unwrap_or_default().to_vec();
            if chunks.peek().is_none() {
                sealer.seal_last(&mut chunk, identity);
                out.extend_from_slice(&chunk);
                return out;
            }
            sealer.seal(&mut chunk);
            out.extend_from_slice(&chunk);
        }
    }

    fn open(ring: &KeyRing, file: &[u8], identity: &[u8]) -> Result<Vec<u8>, KeyRingError> {
        let opener = ring.file_opener(&file[..file.len().min(MAX_HEADER)])?;
        let layout = opener.layout(file.len() as u64)?;
        let mut out = Vec::new();
        for index in 0..layout.chunks {
            let (start, len) = layout.chunk_span(index);
            let mut chunk = file[start as usize..start as usize + len].to_vec();
            opener.open(&layout, index, &mut chunk, identity)?;
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out.len() as u64, layout.size);
        Ok(out)
    }

    #[test]
    fn files_of_every_length_round_trip() {
        let ring = ring();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&ring, &content, b"name");
            assert_eq!(open(&ring, &sealed, b"name").unwrap(), content, "{len}");
            if len > 16 {
                assert!(
                    !sealed.windows(16).any(|w| w == &content[..16]),
                    "no content in the clear"
                );
            }
        }
    }

    #[test]
    fn a_file_under_another_name_cut_short_or_reordered_does_not_open() {
        let ring = ring();
        let content: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 7) as u8).collect();
        let sealed = seal(&ring, &content, b"name");
        assert_eq!(
            open(&ring, &sealed, b"another name"),
            Err(KeyRingError::Decrypt)
        );
        // Cut at a chunk boundary: the new last chunk was not sealed as the last.
        let opener = ring.file_opener(&sealed[..MAX_HEADER]).unwrap();
        let layout = opener.layout(sealed.len() as u64).unwrap();
        let (third, _) = layout.chunk_span(3);
        assert!(open(&ring, &sealed[..third as usize], b"name").is_err());
        // Two chunks swapped.
        let (a, len) = layout.chunk_span(0);
        let (b, _) = layout.chunk_span(1);
        let mut swapped = sealed.clone();
        swapped[a as usize..a as usize + len]
            .copy_from_slice(&sealed[b as usize..b as usize + len]);
        swapped[b as usize..b as usize + len]
            .copy_from_slice(&sealed[a as usize..a as usize + len]);
        assert_eq!(open(&ring, &swapped, b"name"), Err(KeyRingError::Decrypt));
        // One bit flipped.
        let mut flipped = sealed.clone();
        flipped[a as usize + 100] ^= 1;
        assert_eq!(open(&ring, &flipped, b"name"), Err(KeyRingError::Decrypt));
        // Lengths no sealed file has.
        assert_eq!(
            opener.layout(layout.header_len + 15),
            Err(KeyRingError::Malformed)
        );
        assert_eq!(
            opener.layout(layout.header_len + (CHUNK + TAG) as u64 + 3),
            Err(KeyRingError::Malformed)
        );
    }

    #[test]
    fn files_sealed_before_a_rotation_still_open_and_names_are_keyed() {
        let mut ring = ring();
        let sealed = seal(&ring, b"old content", b"n");
        let name = ring.sealed_file_name(b"w1", "ab");
        assert_eq!(name.len(), 64);
        assert_ne!(name, ring.sealed_file_name(b"w1", "ac"));
        assert_ne!(name, ring.sealed_file_name(b"w2", "ab"));
        let key: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(53).wrapping_add(5))
            .collect();
        ring.add("k2", &key).unwrap();
        ring.activate("k2").unwrap();
        assert_eq!(open(&ring, &sealed, b"n").unwrap(), b"old content");
        assert_ne!(ring.sealed_file_name(b"w1", "ab"), name);
        let other: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(71).wrapping_add(3))
            .collect();
        let stranger = KeyRing::new("k1", &other).unwrap();
        assert_eq!(open(&stranger, &sealed, b"n"), Err(KeyRingError::Decrypt));
        let unknown = KeyRing::new("k9", &other).unwrap();
        assert!(matches!(
            open(&unknown, &sealed, b"n"),
            Err(KeyRingError::UnknownKey(_))
        ));
    }

    /// Found by the attack on sealed files: a header's key id (up to 255 bytes of any
    /// UTF-8, line breaks included) reached the server's log as written.
    #[test]
    fn regression_a_header_s_key_id_is_one_the_ring_could_have_written() {
        let ring = ring();
        let sealed = seal(&ring, b"content", b"n");
        for forged in ["k1\n2026 ERROR forged", "", "k\u{e9}"] {
            let mut file = b"CNF1".to_vec();
            file.push(forged.len() as u8);
            file.extend_from_slice(forged.as_bytes());
            file.extend_from_slice(&sealed[4 + 1 + 2..]);
            assert_eq!(
                open(&ring, &file, b"n"),
                Err(KeyRingError::Malformed),
                "{forged:?}"
            );
        }
    }
}
