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
pub(super) fn open(
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
