//! Files sealed into a backup and opened out of it, chunk by chunk (blocking: called on
//! the blocking pool), with the SHA-256 and size of their content.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ceneca_crypto::KeyRing;
use ceneca_crypto::sealed_file::{CHUNK, MAX_HEADER};
use sha2::{Digest, Sha256};

use super::{BackupError, BackupFile};

/// Seals what `source` reads into a new file at `target` (synced), bound to `identity`;
/// returns the content's size and SHA-256 (`file` is the name the manifest gives).
pub(super) fn seal(
    keys: &KeyRing,
    source: &mut dyn Read,
    target: &Path,
    identity: &[u8],
    file: &str,
) -> Result<BackupFile, BackupError> {
    let io = |e| BackupError::io(target, e);
    let mut out = std::fs::File::create_new(target).map_err(io)?;
    let mut sealer = keys.file_sealer();
    out.write_all(sealer.header()).map_err(io)?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    // One chunk ahead: only the last one is sealed as the last.
    let mut chunk = read_chunk(source).map_err(io)?;
    loop {
        let next = if chunk.len() == CHUNK {
            read_chunk(source).map_err(io)?
        } else {
            Vec::new()
        };
        hash.update(&chunk);
        size += chunk.len() as u64;
        if chunk.len() == CHUNK && !next.is_empty() {
            sealer.seal(&mut chunk);
            out.write_all(&chunk).map_err(io)?;
            chunk = next;
        } else {
            // The last chunk (a full one followed by nothing, or a short one).
            sealer.seal_last(&mut chunk, identity);
            out.write_all(&chunk).map_err(io)?;
            break;
        }
    }
    out.sync_all().map_err(io)?;
    Ok(BackupFile {
        file: file.to_owned(),
        size,
        sha256: hex::encode(hash.finalize()),
    })
}

/// Up to one chunk of `source` (short only at its end).
fn read_chunk(source: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut chunk = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < CHUNK {
        match source.read(&mut chunk[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    chunk.truncate(filled);
    Ok(chunk)
}

/// Opens the sealed file at `path`, bound to `identity`, writing its content to `sink`;
/// checks it against `expected` (its size and SHA-256) when given. Any byte changed,
/// added or cut, or a file from another place, fails with what is wrong.
pub(crate) fn open(
    keys: &KeyRing,
    path: &Path,
    identity: &[u8],
    expected: Option<&BackupFile>,
    sink: &mut dyn Write,
) -> Result<BackupFile, BackupError> {
    let name = path.display().to_string();
    let io = |e| BackupError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = vec![0u8; MAX_HEADER.min(len as usize)];
    file.read_exact(&mut head).map_err(io)?;
    let opener = keys.file_opener(&head).map_err(|e| match e {
        ceneca_crypto::KeyRingError::UnknownKey(id) => BackupError::Refused(format!(
            "{name} was sealed with key '{id}', which this key ring does not hold: use the key file (or CENECA_ENCRYPTION_KEY) of the folder that was backed up"
        )),
        _ => BackupError::Damaged(format!("{name} is not a sealed backup file")),
    })?;
    let layout = opener
        .layout(len)
        .map_err(|_| BackupError::Damaged(format!("{name} has a length no sealed file has")))?;
    let mut hash = Sha256::new();
    for index in 0..layout.chunks {
        let (start, take) = layout.chunk_span(index);
        let mut chunk = vec![0u8; take];
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(&mut chunk).map_err(io)?;
        opener
            .open(&layout, index, &mut chunk, identity)
            .map_err(|_| {
                BackupError::Damaged(format!(
                    "{name}: chunk {index} does not open (altered, cut, or from another backup or place)"
                ))
            })?;
        hash.update(&chunk);
        sink.write_all(&chunk).map_err(io)?;
    }
    let found = BackupFile {
        file: expected.map(|e| e.file.clone()).unwrap_or_default(),
        size: layout.size,
        sha256: hex::encode(hash.finalize()),
    };
    if let Some(expected) = expected
        && (expected.size != found.size || expected.sha256 != found.sha256)
    {
        return Err(BackupError::Damaged(format!(
            "{name} does not hold what the manifest says ({} bytes, SHA-256 {})",
            expected.size, expected.sha256
        )));
    }
    Ok(found)
}

/// A `Write` that seals what it is given into `out`, chunk by chunk, bound to
/// `identity` once [`SealingWriter::finish`] seals the last chunk (a file never
/// finished does not open: its end is missing). Keeps one chunk ahead, so only the last
/// is sealed as the last; hashes the content as it goes.
pub(crate) struct SealingWriter<W: Write> {
    out: W,
    sealer: ceneca_crypto::sealed_file::FileSealer,
    pending: Vec<u8>,
    hash: Sha256,
    size: u64,
}

impl<W: Write> SealingWriter<W> {
    pub(crate) fn new(keys: &KeyRing, mut out: W) -> std::io::Result<Self> {
        let sealer = keys.file_sealer();
        out.write_all(sealer.header())?;
        Ok(Self {
            out,
            sealer,
            pending: Vec::with_capacity(2 * CHUNK),
            hash: Sha256::new(),
            size: 0,
        })
    }

    /// Seals the last chunk; answers the output, and the content's size and SHA-256.
    pub(crate) fn finish(mut self, identity: &[u8]) -> std::io::Result<(W, u64, String)> {
        let mut last = std::mem::take(&mut self.pending);
        self.sealer.seal_last(&mut last, identity);
        self.out.write_all(&last)?;
        self.out.flush()?;
        Ok((self.out, self.size, hex::encode(self.hash.finalize())))
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.hash.update(buf);
        self.size += buf.len() as u64;
        // Full chunks with more after them are not the last.
        while self.pending.len() > CHUNK {
            let rest = self.pending.split_off(CHUNK);
            let mut chunk = std::mem::replace(&mut self.pending, rest);
            self.sealer.seal(&mut chunk);
            self.out.write_all(&chunk)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_sealing_writer_writes_opens_as_a_sealed_file() {
        let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let keys = KeyRing::new("k", &key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let content: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            let mut writer =
                SealingWriter::new(&keys, std::fs::File::create(&path).unwrap()).unwrap();
            // In uneven pieces, as a ZIP writer gives them.
            for piece in content.chunks(1000 + len % 7) {
                writer.write_all(piece).unwrap();
            }
            let (_, size, sha) = writer.finish(b"id").unwrap();
            assert_eq!(size, len as u64);
            let mut opened = Vec::new();
            let found = open(&keys, &path, b"id", None, &mut opened).unwrap();
            assert_eq!(opened, content, "{len}");
            assert_eq!(found.sha256, sha);
            assert!(open(&keys, &path, b"other", None, &mut Vec::new()).is_err());
        }
    }
}
