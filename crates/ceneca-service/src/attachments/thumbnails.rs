//! Thumbnails of uploaded images, made off the request path.
//!
//! An upload of a PNG, JPEG, GIF or WebP file leaves its attachment's `thumbnail`
//! `pending`; a worker of each server process (`run_thumbnails`, woken by uploads) reads
//! the file, decodes it on the blocking pool and keeps a PNG of at most 256 × 256 pixels
//! as a blob of its own (sealed when the file is), then records it `ready` — or
//! `unavailable` when the file does not decode or is too large to decode safely. The
//! record is written only while the attachment still keeps that file, so a file replaced
//! meanwhile gets its own thumbnail, and an orphaned one goes to the sweep.
//!
//! Decoding is bounded before a pixel is allocated: the file's size, then the pixel count
//! its header claims (a decompression bomb claims billions), then the decoder's own
//! allocation limit. One image at a time per process.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use ceneca_domain::scope::Access;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{Deleted, ListQuery, WriteBatch, WriteOp};
use image::{ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::upload::{Received, Sink};
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The longest edge of a thumbnail, in pixels.
pub const EDGE: u32 = 256;

/// Files larger than this get no thumbnail: decoding reads them whole.
const MAX_SOURCE_BYTES: u64 = 64 * 1024 * 1024;

/// Images claiming more pixels than this get no thumbnail (a 32-megapixel photo is
/// 6,900 × 4,600): decoding one takes four to eight bytes per pixel.
const MAX_PIXELS: u64 = 32_000_000;

/// How many waiting thumbnails a round reads.
const ROUND: u32 = 16;

/// How often the worker looks for waiting thumbnails when no upload wakes it (a server
/// stopped before it made them, another node's uploads on a shared database).
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// The image types a thumbnail is made of, and how each is read.
fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Whether a file of type `mime` (as sniffed) gets a thumbnail.
pub(super) fn makes_thumbnail(mime: &str) -> bool {
    format_of(mime).is_some()
}

/// Why an image got no thumbnail (logged; the row says `unavailable`).
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the file is {0} bytes, more than a thumbnail is made of")]
    TooLarge(u64),
    #[error("the image claims {0} × {1} pixels, more than a thumbnail is made of")]
    TooManyPixels(u32, u32),
    #[error("the image does not decode: {0}")]
    Undecodable(String),
}

/// A PNG of `bytes` (an image of type `format`) at most [`EDGE`] pixels on its longer
/// side, its proportions kept; smaller images keep their size.
fn render(bytes: &[u8], format: ImageFormat) -> std::result::Result<Vec<u8>, Refused> {
    let undecodable = |e: image::ImageError| Refused::Undecodable(e.to_string());
    // The header alone first: what the image claims decides whether it is decoded.
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(undecodable)?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Refused::TooManyPixels(width, height));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // Sixteen-bit RGBA at most, and the decoder's own buffers.
    limits.max_alloc = Some(MAX_PIXELS * 8 + 16 * 1024 * 1024);
    reader.limits(limits);
    let image = reader.decode().map_err(undecodable)?;
    let small = if width <= EDGE && height <= EDGE {
        image
    } else {
        image.thumbnail(EDGE, EDGE)
    };
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(undecodable)?;
    Ok(png)
}

/// An attachment's thumbnail, ready to serve.
pub struct Thumbnail {
    pub png: Vec<u8>,
    /// The thumbnail's entity tag.
    pub etag: String,
}

impl Services {
    /// The thumbnail of attachment `id`, for a caller who may read its content: 404 for
    /// a file that is no image (or none), a thumbnail that cannot be made, or one not made
    /// yet (`thumbnail_pending`, with a time to ask again); 410 once retention removed
    /// the file.
    pub async fn attachment_thumbnail(&self, caller: &Caller, id: Uuid) -> Result<Thumbnail> {
        let entity = &model::ATTACHMENTS;
        caller.require_reach(entity)?;
        let row = self
            .store
            .get(
                entity,
                id,
                caller.filter(entity, Access::Read),
                Deleted::Exclude,
            )
            .await?
            .ok_or(ServiceError::NotFound(entity.name))?;
        self.check_parent(caller, &row).await?;
        let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_owned);
        match (text("thumbnail").as_deref(), text("thumbnail_key")) {
            (Some("ready"), Some(key)) => {
                let sealed = row.get("encrypted").and_then(Value::as_bool) == Some(true);
                let (source, size) = self
                    .open_stored(id, &key, None, sealed, "thumbnail")
                    .await?;
                let png = source.read_all(size).await.map_err(super::storage_error)?;
                let etag = key.rsplit('/').next().unwrap_or(&key).to_owned();
                Ok(Thumbnail { png, etag })
            }
            (Some("pending"), _) => Err(ServiceError::NotReady(
                "this image's thumbnail is being made; ask again shortly".into(),
            )),
            _ if row
                .get("content_removed_at")
                .and_then(Value::as_time)
                .is_some() =>
            {
                Err(ServiceError::Removed(
                    "this attachment's file was removed when its thread was archived, and its \
                     thumbnail with it"
                        .into(),
                ))
            }
            _ => Err(ServiceError::NotFound("thumbnail")),
        }
    }

    /// Makes the thumbnails waiting, up to a round of them; how many it settled (made or
    /// found impossible). A maintenance path: it reads every tenant's waiting images.
    pub async fn make_pending_thumbnails(&self) -> Result<usize> {
        let mut query = ListQuery::new(
            ceneca_domain::scope::ScopeFilter::All,
            "updated_at",
            false,
            ROUND,
        );
        query.equals = vec![("thumbnail", Value::Text("pending".into()))];
        query.deleted = Deleted::Include;
        let mut rows = self.store.list(&model::ATTACHMENTS, query).await?;
        rows.truncate(ROUND as usize);
        let mut settled = 0;
        for row in rows {
            if self.make_thumbnail(&row).await? {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Makes one attachment's thumbnail; whether its row was settled.
    async fn make_thumbnail(&self, row: &Record) -> Result<bool> {
        let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(id), Some(source_key)) = (row.id(), text("storage_key")) else {
            return Ok(false);
        };
        let mime = text("mime_type").unwrap_or_default();
        let size = row.get("size_bytes").and_then(Value::as_int).unwrap_or(0) as u64;
        let sealed = row.get("encrypted").and_then(Value::as_bool) == Some(true);
        let made = match format_of(&mime) {
            None => Err(Refused::Undecodable(format!("{mime} is no image type"))),
            Some(_) if size > MAX_SOURCE_BYTES => Err(Refused::TooLarge(size)),
            Some(format) => {
                let (source, len) = self
                    .open_stored(id, &source_key, Some(size), sealed, "attachment content")
                    .await?;
                let bytes = source.read_all(len).await.map_err(super::storage_error)?;
                tokio::task::spawn_blocking(move || render(&bytes, format))
                    .await
                    .map_err(|e| ServiceError::Internal(format!("thumbnail of {id}: {e}")))?
            }
        };
        let (state, thumbnail_key) = match made {
            Ok(png) => {
                let blobs = self.blob_store()?.clone();
                // Held from keeping the blob to recording it: the sweep waits.
                let _gate = self.blob_gate.read().await;
                let key = self
                    .keep_thumbnail(&blobs, &png, sealed, row.id_of("workspace_id"))
                    .await?;
                return self
                    .record_thumbnail(id, source_key, "ready", Some(key))
                    .await;
            }
            Err(refused) => {
                tracing::info!(attachment = %id, reason = %refused, "no thumbnail for this image");
                ("unavailable", None)
            }
        };
        self.record_thumbnail(id, source_key, state, thumbnail_key)
            .await
    }

    /// Keeps a thumbnail's bytes as a blob, sealed like the file it shows.
    async fn keep_thumbnail(
        &self,
        blobs: &Arc<dyn ceneca_store::BlobStore>,
        png: &[u8],
        sealed: bool,
        workspace: Option<Uuid>,
    ) -> Result<String> {
        let sealer = sealed.then(|| self.keys.file_sealer());
        let mut sink = Sink::begin(blobs, sealer)
            .await
            .map_err(super::storage_error)?;
        sink.write(png).await.map_err(super::storage_error)?;
        let received = Received {
            sink,
            size: png.len() as u64,
            sha256: hex::encode(Sha256::digest(png)),
            mime: "image/png",
        };
        let (key, _) = received.store(blobs, &self.keys, workspace).await?;
        Ok(key.as_str().to_owned())
    }

    async fn record_thumbnail(
        &self,
        attachment: Uuid,
        source_key: String,
        state: &'static str,
        thumbnail_key: Option<String>,
    ) -> Result<bool> {
        let batch = WriteBatch::new(ceneca_store::Actor::default()).push(WriteOp::SetThumbnail {
            attachment,
            source_key,
            state,
            thumbnail_key,
        });
        // Nothing written: the file was replaced or removed meanwhile (its new one waits
        // for a thumbnail of its own; a thumbnail kept for the old one goes to the sweep).
        Ok(!self.store.apply(batch).await?.is_empty())
    }

    /// Makes thumbnails as uploads ask for them, until the server stops (spawned by
    /// `serve`). A failure (the database away, a disk full) is logged and tried again.
    pub async fn run_thumbnails(self) {
        if self.blobs.is_none() {
            return;
        }
        loop {
            match self.make_pending_thumbnails().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "thumbnails: a round failed; trying again later")
                }
            }
            let _ = tokio::time::timeout(LOOK_EVERY, self.thumbnails_wanted.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png_of(width: u32, height: u32) -> Vec<u8> {
        let image = ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_thumbnail_fits_the_edge_and_keeps_the_proportions() {
        let png = render(&png_of(1024, 512), ImageFormat::Png).unwrap();
        let thumb = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (256, 128));
        let small = render(&png_of(40, 30), ImageFormat::Png).unwrap();
        let small = image::load_from_memory(&small).unwrap();
        assert_eq!((small.width(), small.height()), (40, 30), "never enlarged");
    }

    /// CRC-32 as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A valid PNG whose header claims `width` × `height` pixels, with one row of data.
    pub(crate) fn bomb(width: u32, height: u32) -> Vec<u8> {
        let mut bomb = png_of(1, 1);
        bomb[16..20].copy_from_slice(&width.to_be_bytes());
        bomb[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        bomb
    }

    #[test]
    fn an_image_claiming_too_many_pixels_is_refused_before_decoding() {
        let refused = render(&bomb(100_000, 100_000), ImageFormat::Png).unwrap_err();
        assert!(
            matches!(refused, Refused::TooManyPixels(100_000, 100_000)),
            "{refused}"
        );
        // Under the bound, the same lie is found out by decoding (its data is short).
        let refused = render(&bomb(4000, 4000), ImageFormat::Png).unwrap_err();
        assert!(matches!(refused, Refused::Undecodable(_)), "{refused}");
    }

    #[test]
    fn what_does_not_decode_is_refused() {
        assert!(matches!(
            render(b"\x89PNG\r\n\x1a\nnot really", ImageFormat::Png),
            Err(Refused::Undecodable(_))
        ));
        assert!(makes_thumbnail("image/png") && !makes_thumbnail("image/svg+xml"));
        assert!(!makes_thumbnail("application/pdf"));
    }
}
