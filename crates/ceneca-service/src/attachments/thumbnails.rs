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
//! allocation limit (about 270 MB for the largest image allowed; a PNG's colour profile,
//! which the decoder would inflate whole first, is dropped). One image at a time per
//! process, taken fairly across accounts (the store's queue: the oldest waiting image of
//! each account, the accounts in turn), so one account's uploads cannot hold up everyone
//! else's. The same bytes are decoded once per workspace: a file uploaded again there
//! reuses the thumbnail made of it.
//!
//! A thumbnail is stored bytes like any other: counted against its workspace's quota
//! while kept; with the quota full, the image gets none (`unavailable`).

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use ceneca_domain::scope::Access;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{Deleted, MadeThumbnail, WriteBatch, WriteOp};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
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
    #[error("the file cannot be read: {0}")]
    Unreadable(String),
    #[error("its workspace's storage quota has no room for a thumbnail")]
    NoRoom,
}

/// `png` without its colour profiles (`iCCP` chunks). A thumbnail does not apply them, and
/// the PNG decoder inflates one whole, up to its allocation limit, before the image is
/// decoded: a small file could make it hold that limit twice over. A file whose chunks do
/// not parse is returned as it is, for the decoder to refuse.
fn without_colour_profiles(png: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const SIGNATURE: usize = 8;
    let mut kept = Vec::new();
    let mut at = SIGNATURE;
    let mut dropped = false;
    while at + 12 <= png.len() {
        let length = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let Some(end) = (at + 12)
            .checked_add(length)
            .filter(|&end| end <= png.len())
        else {
            break;
        };
        if &png[at + 4..at + 8] == b"iCCP" {
            dropped = true;
        } else {
            kept.push(at..end);
        }
        at = end;
    }
    if !dropped {
        return std::borrow::Cow::Borrowed(png);
    }
    let mut out = png[..SIGNATURE].to_vec();
    for chunk in kept {
        out.extend_from_slice(&png[chunk]);
    }
    // Whatever follows the last whole chunk, as it was.
    out.extend_from_slice(&png[at..]);
    std::borrow::Cow::Owned(out)
}

/// A PNG of `bytes` (an image of type `format`) at most [`EDGE`] pixels on its longer
/// side, its proportions kept; smaller images keep their size.
fn render(bytes: &[u8], format: ImageFormat) -> std::result::Result<Vec<u8>, Refused> {
    let undecodable = |e: image::ImageError| Refused::Undecodable(e.to_string());
    let bytes: &[u8] = &match format {
        ImageFormat::Png => without_colour_profiles(bytes),
        _ => std::borrow::Cow::Borrowed(bytes),
    };
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
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    // A photo's camera says which way is up; the thumbnail shows it that way. Turned
    // once small (the box is square, so the size comes out the same): turning the full
    // image would hold a second copy of it.
    let orientation = decoder.orientation().map_err(undecodable)?;
    let image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    let mut small = if image.width() <= EDGE && image.height() <= EDGE {
        image
    } else {
        image.thumbnail(EDGE, EDGE)
    };
    small.apply_orientation(orientation);
    // Eight bits a channel is all a thumbnail shows, and half the bytes of sixteen;
    // grey stays grey.
    use image::ColorType;
    let small = match small.color() {
        ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8 => small,
        ColorType::L16 => DynamicImage::ImageLuma8(small.to_luma8()),
        ColorType::La16 => DynamicImage::ImageLumaA8(small.to_luma_alpha8()),
        colour if colour.has_alpha() => DynamicImage::ImageRgba8(small.to_rgba8()),
        _ => DynamicImage::ImageRgb8(small.to_rgb8()),
    };
    let mut png = Vec::new();
    // Made once, served many times: the smallest file is worth the encoder's time.
    let encoder =
        PngEncoder::new_with_quality(&mut png, CompressionType::Best, FilterType::Adaptive);
    small.write_with_encoder(encoder).map_err(undecodable)?;
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
                // Read like the file it shows (at the audit levels that record reads).
                self.audit_read(
                    caller,
                    "attachment.thumbnail".into(),
                    entity.table,
                    Some(id),
                    None,
                )
                .await?;
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

    /// Makes the thumbnails waiting, up to a round of them (the oldest of each account);
    /// how many it settled (made or found impossible). A row that fails is logged and
    /// left for a later round; the others go on. A maintenance path: it reads every
    /// tenant's waiting images.
    pub async fn make_pending_thumbnails(&self) -> Result<usize> {
        let after = *self
            .thumbnails_turn
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let turns = self.store.thumbnails_waiting(after, ROUND).await?;
        if let Some((last, _)) = turns.last() {
            *self
                .thumbnails_turn
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(*last);
        }
        let mut settled = 0;
        for (_, row) in turns {
            match self.make_thumbnail(&row).await {
                Ok(true) => settled += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(attachment = ?row.id(), error = %e, "thumbnail not made; trying again later")
                }
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
        let Some(workspace) = row.id_of("workspace_id") else {
            return Ok(false);
        };
        // The gate is held from finding or keeping a thumbnail's blob to recording it:
        // the sweep (and an archive's file deletion) waits, so the blob cannot go in
        // between. Never while decoding, which may take a second.
        {
            let _gate = self.blob_gate.read().await;
            let reusable = self
                .store
                .thumbnail_of_blob(source_key.clone(), workspace)
                .await?;
            if let Some(made) = reusable {
                let recorded = match self.room_for(workspace, made.bytes).await? {
                    Ok(guard) => self.record_made(id, &source_key, made, guard).await?,
                    Err(refused) => Err(refused),
                };
                return match recorded {
                    Ok(written) => Ok(written),
                    Err(refused) => self.refuse_thumbnail(id, source_key, refused).await,
                };
            }
        }
        let png = match self.render_stored(row, id, &source_key).await? {
            Ok(png) => png,
            Err(refused) => return self.refuse_thumbnail(id, source_key, refused).await,
        };
        // No room: nothing is written (the write checks again, for a race).
        let guard = match self.room_for(workspace, png.len() as i64).await? {
            Ok(guard) => guard,
            Err(refused) => return self.refuse_thumbnail(id, source_key, refused).await,
        };
        let blobs = self.blob_store()?.clone();
        let sealed = row.get("encrypted").and_then(Value::as_bool) == Some(true);
        let gate = self.blob_gate.read().await;
        let key = self
            .keep_thumbnail(&blobs, &png, sealed, Some(workspace))
            .await?;
        let made = MadeThumbnail {
            key,
            bytes: png.len() as i64,
        };
        match self.record_made(id, &source_key, made, guard).await? {
            Ok(written) => Ok(written),
            Err(refused) => {
                drop(gate);
                // The blob kept for nothing is the orphan sweep's, as any unnamed one:
                // too new to tell apart from one another node is about to name.
                self.refuse_thumbnail(id, source_key, refused).await
            }
        }
    }

    /// Records that attachment `id` gets no thumbnail, and why (logged).
    async fn refuse_thumbnail(&self, id: Uuid, source_key: String, why: Refused) -> Result<bool> {
        tracing::info!(attachment = %id, reason = %why, "no thumbnail for this image");
        self.record_thumbnail(id, source_key, "unavailable", None, None)
            .await
    }

    /// The thumbnail of the file `source_key` of attachment `row`, or why there is none.
    async fn render_stored(
        &self,
        row: &Record,
        id: Uuid,
        source_key: &str,
    ) -> Result<std::result::Result<Vec<u8>, Refused>> {
        let mime = row.get("mime_type").and_then(Value::as_str).unwrap_or("");
        let size = row.get("size_bytes").and_then(Value::as_int).unwrap_or(0) as u64;
        let sealed = row.get("encrypted").and_then(Value::as_bool) == Some(true);
        let format = match format_of(mime) {
            None => {
                return Ok(Err(Refused::Undecodable(format!(
                    "{mime} is no image type"
                ))));
            }
            Some(_) if size > MAX_SOURCE_BYTES => return Ok(Err(Refused::TooLarge(size))),
            Some(format) => format,
        };
        // A file that cannot be read (gone, cut short, failing to open) gets no thumbnail,
        // rather than being tried again forever; uploading it again starts over.
        let bytes = match self
            .open_stored(id, source_key, Some(size), sealed, "attachment content")
            .await
        {
            Ok((source, len)) => match source.read_all(len).await {
                Ok(bytes) => bytes,
                Err(e) => return Ok(Err(Refused::Unreadable(e.to_string()))),
            },
            Err(e) => return Ok(Err(Refused::Unreadable(e.to_string()))),
        };
        tokio::task::spawn_blocking(move || render(&bytes, format))
            .await
            .map_err(|e| ServiceError::Internal(format!("thumbnail of {id}: {e}")))
    }

    /// Room in `workspace`'s quota for a thumbnail of `bytes`: the operation that checks
    /// again inside the write (none without a quota), or [`Refused::NoRoom`].
    async fn room_for(
        &self,
        workspace: Uuid,
        bytes: i64,
    ) -> Result<std::result::Result<Option<WriteOp>, Refused>> {
        match self.check_quota(workspace, bytes.max(0) as u64).await {
            Ok(room) => Ok(Ok(room.map(|room| room.guard))),
            Err(ServiceError::QuotaExceeded { .. }) => Ok(Err(Refused::NoRoom)),
            Err(e) => Err(e),
        }
    }

    /// Records a thumbnail made for attachment `id`, checked against the quota again
    /// inside the write by `guard`: whether the row was written, or [`Refused::NoRoom`].
    async fn record_made(
        &self,
        id: Uuid,
        source_key: &str,
        made: MadeThumbnail,
        guard: Option<WriteOp>,
    ) -> Result<std::result::Result<bool, Refused>> {
        match self
            .record_thumbnail(id, source_key.to_owned(), "ready", Some(made), guard)
            .await
        {
            Ok(written) => Ok(Ok(written)),
            Err(ServiceError::QuotaExceeded { .. }) => Ok(Err(Refused::NoRoom)),
            Err(e) => Err(e),
        }
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
        made: Option<MadeThumbnail>,
        quota_guard: Option<WriteOp>,
    ) -> Result<bool> {
        let mut batch =
            WriteBatch::new(ceneca_store::Actor::default()).push(WriteOp::SetThumbnail {
                attachment,
                source_key,
                state,
                made,
            });
        batch.ops.extend(quota_guard);
        // Nothing written: the file was replaced or removed meanwhile (its new one waits
        // for a thumbnail of its own; a thumbnail kept for the old one goes to the sweep).
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| crate::error::from_store("attachment", false, e))?;
        Ok(!rows.is_empty())
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

    /// A JPEG `width` × `height` whose EXIF says to turn it a quarter clockwise to show
    /// it (orientation 6: a phone held upright).
    fn jpeg_turned(width: u32, height: u32) -> Vec<u8> {
        use image::ImageEncoder;
        // TIFF, big-endian: one directory entry, Orientation (0x0112) = 6.
        let exif: Vec<u8> = [
            &b"MM\0\x2a\0\0\0\x08"[..],
            &[0, 1],
            &[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0],
            &[0, 0, 0, 0],
        ]
        .concat();
        let image = ImageBuffer::from_fn(width, height, |x, _| Rgb([(x % 256) as u8, 40, 90]));
        let mut out = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut out);
        encoder.set_exif_metadata(exif).unwrap();
        encoder
            .write_image(&image, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn regression_a_photo_is_shown_the_way_its_camera_says_is_up() {
        let png = render(&jpeg_turned(800, 200), ImageFormat::Jpeg).unwrap();
        let thumb = image::load_from_memory(&png).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (64, 256));
    }

    #[test]
    fn regression_sixteen_bit_images_get_small_eight_bit_thumbnails() {
        // Rows of noise, each the same: the source is small, and so must its thumbnail be
        // (it was 512 KB: sixteen bits a channel, and rows the fast encoder did not match).
        let row: Vec<u16> = (0..256 * 4)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 16) as u16)
            .collect();
        let image = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(256, 256, |x, _| {
            let at = x as usize * 4;
            image::Rgba([row[at], row[at + 1], row[at + 2], row[at + 3]])
        });
        let mut source = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut source), ImageFormat::Png)
            .unwrap();
        let png = render(&source, ImageFormat::Png).unwrap();
        let thumb = image::load_from_memory(&png).unwrap();
        assert_eq!(thumb.color(), image::ColorType::Rgba8);
        assert!(png.len() < 16 * 1024, "{} bytes", png.len());
        // Grey stays grey (three times smaller than as colour).
        let grey = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(300, 200, |x, y| {
            image::Luma([(x * y) as u16])
        });
        let mut source = Vec::new();
        grey.write_to(&mut Cursor::new(&mut source), ImageFormat::Png)
            .unwrap();
        let png = render(&source, ImageFormat::Png).unwrap();
        let thumb = image::load_from_memory(&png).unwrap();
        assert_eq!(thumb.color(), image::ColorType::L8);
    }

    /// `png` with a chunk of type `kind` holding `data` inserted after its header.
    fn with_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let header_end = 8 + 12 + 13;
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let crc = crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        [&png[..header_end], &chunk, &png[header_end..]].concat()
    }

    #[test]
    fn regression_a_colour_profile_is_dropped_before_decoding() {
        let plain = png_of(30, 20);
        let profiled = with_chunk(&plain, b"iCCP", b"bomb\0\0compressed profile");
        assert_eq!(&*without_colour_profiles(&profiled), &plain[..]);
        assert!(matches!(
            without_colour_profiles(&plain),
            std::borrow::Cow::Borrowed(_)
        ));
        let thumb = image::load_from_memory(&render(&profiled, ImageFormat::Png).unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (30, 20));
        // Chunks that do not parse are left to the decoder.
        assert_eq!(&*without_colour_profiles(&profiled[..40]), &profiled[..40]);
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
