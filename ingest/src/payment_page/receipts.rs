//! Receipts: the customer's proof of payment, uploaded with "I have paid" (the page's multipart
//! form) or on its own by a merchant's page (`POST /api/v1/payment/{token}/receipt`, the raw file
//! as the body with its Content-Type).
//!
//! A receipt is a PNG, JPEG or PDF of at most [`MAX_RECEIPT_BYTES`]; its type is decided by its
//! first bytes (the declared Content-Type must agree, or be the browser's generic
//! `application/octet-stream`). The file goes to object storage under
//! `receipts/<order id>/<sha256>.<ext>` — content-addressed, so uploading the same file again is
//! the same object and the same `receipts` row — and its key travels in the CLIENT_CONFIRMED
//! command. Nothing is stored for a refused upload: the order's state, the size and the type are
//! checked before the first byte is written.

use super::confirm::confirm_with_receipt;
use super::view::load;
use crate::state::IngestState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::path::Path as UrlPath;
use jivapay_platform::settings::ReceiptsSettings;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// Largest receipt accepted: 5 MiB.
pub const MAX_RECEIPT_BYTES: usize = 5 * 1024 * 1024;

/// A refused upload's body is still read (and thrown away) up to this size, so that the client,
/// which is still sending, gets the 413 answer instead of a reset connection; a larger body is
/// cut off. Only [`MAX_RECEIPT_BYTES`] are ever kept in memory.
pub const DRAIN_LIMIT_BYTES: usize = 4 * MAX_RECEIPT_BYTES;

/// Largest body of the page's multipart form (see [`DRAIN_LIMIT_BYTES`]); the file in it is held
/// to [`MAX_RECEIPT_BYTES`].
pub const FORM_BODY_LIMIT_BYTES: usize = DRAIN_LIMIT_BYTES;

/// Folder used when `receipts.store_url` is not set, under the working directory.
pub const DEFAULT_LOCAL_FOLDER: &str = ".local/receipts";

/// Generic type browsers send for a file they cannot classify; the bytes decide then.
const GENERIC_CONTENT_TYPE: &str = "application/octet-stream";

/// The kinds of file accepted as a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Png,
    Jpeg,
    Pdf,
}

impl ReceiptKind {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Pdf => "application/pdf",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Pdf => "pdf",
        }
    }

    /// The kind a declared Content-Type names (parameters and case ignored).
    fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "application/pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// The kind the file's first bytes (its magic number) show.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else {
            None
        }
    }
}

/// Whether a declared Content-Type is the generic one (which defers to the bytes).
fn is_generic(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case(GENERIC_CONTENT_TYPE)
}

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptRejection {
    TooLarge,
    UnsupportedType,
    Empty,
}

impl From<ReceiptRejection> for ApiError {
    fn from(rejection: ReceiptRejection) -> Self {
        match rejection {
            ReceiptRejection::TooLarge => too_large(),
            ReceiptRejection::UnsupportedType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_receipt_type",
                "a receipt must be a PNG, JPEG or PDF file",
            ),
            ReceiptRejection::Empty => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "empty_receipt",
                "the receipt file is empty",
            ),
        }
    }
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "receipt_too_large",
        format!(
            "a receipt may be at most {} MiB",
            MAX_RECEIPT_BYTES / (1024 * 1024)
        ),
    )
}

/// Checks a file offered as a receipt: not empty, not too large, and a PNG, JPEG or PDF by its
/// bytes, agreeing with the declared type (`application/octet-stream` or none defers to the
/// bytes). Returns the kind it is stored as.
pub fn check(bytes: &[u8], declared: Option<&str>) -> Result<ReceiptKind, ReceiptRejection> {
    if bytes.is_empty() {
        return Err(ReceiptRejection::Empty);
    }
    if bytes.len() > MAX_RECEIPT_BYTES {
        return Err(ReceiptRejection::TooLarge);
    }
    let sniffed = ReceiptKind::sniff(bytes).ok_or(ReceiptRejection::UnsupportedType)?;
    match declared.map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(sniffed),
        Some(d) if is_generic(d) => Ok(sniffed),
        Some(d) if ReceiptKind::from_content_type(d) == Some(sniffed) => Ok(sniffed),
        Some(_) => Err(ReceiptRejection::UnsupportedType),
    }
}

/// A receipt as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    /// `receipts/<order id>/<sha256 hex>.<ext>`.
    pub key: String,
    pub kind: ReceiptKind,
    pub sha256: [u8; 32],
    pub size_bytes: usize,
}

/// Where receipts are kept: object storage through `object_store` — a local folder by default,
/// S3 (or an S3-compatible service) when configured.
#[derive(Clone)]
pub struct ReceiptStore {
    store: Arc<dyn ObjectStore>,
    /// Whether the backend keeps object attributes (the local filesystem refuses them).
    keeps_attributes: bool,
    /// For logs: where it stores.
    location: String,
}

impl std::fmt::Debug for ReceiptStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptStore")
            .field("location", &self.location)
            .finish()
    }
}

impl ReceiptStore {
    /// The store `receipts.*` settings describe: unset `store_url` → the local folder
    /// `.local/receipts` under the working directory; `file:///abs/folder` → that folder
    /// (created if missing); `s3://bucket[/prefix]` → the bucket, with `s3_endpoint` (for
    /// S3-compatible services; plain `http://` is allowed there), `s3_region` (default
    /// `us-east-1`) and the access key pair when given (else the usual instance credentials).
    pub fn from_settings(settings: &ReceiptsSettings) -> anyhow::Result<Self> {
        match settings.store_url.as_deref().map(str::trim) {
            None | Some("") => Self::local(std::env::current_dir()?.join(DEFAULT_LOCAL_FOLDER)),
            Some(url) if url.starts_with("file://") => {
                let folder = &url["file://".len()..];
                anyhow::ensure!(
                    folder.starts_with('/'),
                    "receipts.store_url must be file:///absolute/folder"
                );
                Self::local(folder)
            }
            Some(url) if url.starts_with("s3://") => Self::s3(&url["s3://".len()..], settings),
            Some(_) => anyhow::bail!("receipts.store_url must be file:///folder or s3://bucket"),
        }
    }

    /// Receipts in a folder of the local filesystem (created if missing).
    pub fn local(folder: impl AsRef<Path>) -> anyhow::Result<Self> {
        let folder: PathBuf = folder.as_ref().to_path_buf();
        std::fs::create_dir_all(&folder).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the receipts folder {}: {e}",
                folder.display()
            )
        })?;
        let store = LocalFileSystem::new_with_prefix(&folder)?;
        Ok(Self {
            store: Arc::new(store),
            keeps_attributes: false,
            location: format!("file://{}", folder.display()),
        })
    }

    /// Receipts in memory (for tests of code that needs a store).
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            keeps_attributes: true,
            location: "memory".into(),
        }
    }

    fn s3(bucket_and_prefix: &str, settings: &ReceiptsSettings) -> anyhow::Result<Self> {
        let (bucket, prefix) = match bucket_and_prefix.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
            None => (bucket_and_prefix, ""),
        };
        anyhow::ensure!(
            !bucket.is_empty(),
            "receipts.store_url must name a bucket: s3://bucket"
        );
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(settings.s3_region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &settings.s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        match (&settings.s3_access_key_id, &settings.s3_secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret.expose_secret());
            }
            (None, None) => {}
            _ => anyhow::bail!(
                "receipts.s3_access_key_id and receipts.s3_secret_access_key go together"
            ),
        }
        let s3: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            s3
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            store,
            keeps_attributes: true,
            location: format!("s3://{bucket_and_prefix}"),
        })
    }

    /// Where it stores, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The key a receipt of `order_id` with these contents is stored under.
    pub fn key_for(order_id: Uuid, sha256: &[u8; 32], kind: ReceiptKind) -> String {
        let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
        format!("receipts/{order_id}/{hex}.{}", kind.extension())
    }

    /// Checks `bytes` (see [`check`]) and stores them as a receipt of `order_id`; returns where.
    /// The same file for the same order is the same key (and the same object).
    pub async fn put(
        &self,
        order_id: Uuid,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<StoredReceipt, PutError> {
        let kind = check(&bytes, content_type).map_err(PutError::Rejected)?;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let key = Self::key_for(order_id, &sha256, kind);
        let mut options = PutOptions::default();
        if self.keeps_attributes {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, kind.content_type().into());
            options.attributes = attributes;
        }
        let size_bytes = bytes.len();
        self.store
            .put_opts(
                &ObjectPath::from(key.as_str()),
                PutPayload::from(bytes),
                options,
            )
            .await
            .map_err(PutError::Storage)?;
        Ok(StoredReceipt {
            key,
            kind,
            sha256,
            size_bytes,
        })
    }

    /// Keys of the receipts stored for an order.
    pub async fn keys(&self, order_id: Uuid) -> object_store::Result<Vec<String>> {
        let prefix = ObjectPath::from(format!("receipts/{order_id}"));
        let mut listing = self.store.list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            keys.push(meta?.location.to_string());
        }
        keys.sort();
        Ok(keys)
    }

    /// A stored receipt's bytes.
    pub async fn get(&self, key: &str) -> object_store::Result<Bytes> {
        self.store.get(&ObjectPath::from(key)).await?.bytes().await
    }
}

/// Why [`ReceiptStore::put`] failed.
#[derive(Debug)]
pub enum PutError {
    Rejected(ReceiptRejection),
    Storage(object_store::Error),
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected(r) => write!(f, "receipt refused: {r:?}"),
            Self::Storage(e) => write!(f, "receipt storage failed: {e}"),
        }
    }
}

impl std::error::Error for PutError {}

impl From<PutError> for ApiError {
    fn from(error: PutError) -> Self {
        match error {
            PutError::Rejected(rejection) => rejection.into(),
            PutError::Storage(e) => {
                tracing::error!(error = %e, "receipt storage failed");
                ApiError::unavailable("try again in a moment")
            }
        }
    }
}

/// Indexes a stored receipt in `receipts` (once per order and file).
pub async fn record(
    pool: &PgPool,
    order_id: Uuid,
    receipt: &StoredReceipt,
    uploaded_by_kind: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO receipts (order_id, uploaded_by_kind, object_key, content_type, size_bytes, sha256)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(uploaded_by_kind)
    .bind(&receipt.key)
    .bind(receipt.kind.content_type())
    .bind(receipt.size_bytes as i64)
    .bind(&receipt.sha256[..])
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores a customer's receipt for `order_id` and indexes it.
pub(crate) async fn store_customer_receipt(
    state: &IngestState,
    order_id: Uuid,
    bytes: Bytes,
    content_type: Option<&str>,
) -> ApiResult<StoredReceipt> {
    let stored = state.receipts.put(order_id, bytes, content_type).await?;
    record(&state.pool, order_id, &stored, "customer").await?;
    tracing::info!(%order_id, key = %stored.key, size = stored.size_bytes, "receipt stored");
    Ok(stored)
}

/// `POST /api/v1/payment/{token}/receipt`: the JSON variant of "I have paid" with a receipt.
/// The body is the file itself, its type in Content-Type. Answers 202 with the receipt's key;
/// 409 `not_confirmable` unless the order is waiting for the customer's payment, 413
/// `receipt_too_large`, 415 `unsupported_receipt_type`.
///
/// It reads the body itself (not through an extractor), so the gateway's small default body
/// limit does not apply and no route layer is needed. A declared type other than the three (or
/// `application/octet-stream`) and a Content-Length beyond [`DRAIN_LIMIT_BYTES`] are refused
/// before the body is read.
pub async fn receipt_json(
    State(state): State<IngestState>,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let view = load(&state, &token).await?;
    let trader_id = super::confirm::confirmable(&view)?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Refuse from the type before reading a byte: an unknown declared type is never accepted.
    if let Some(d) = declared.as_deref() {
        if ReceiptKind::from_content_type(d).is_none() && !is_generic(d) {
            return Err(ReceiptRejection::UnsupportedType.into());
        }
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > DRAIN_LIMIT_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = read_receipt_body(body).await?;
    let stored = store_customer_receipt(&state, view.order_id, bytes, declared.as_deref()).await?;
    confirm_with_receipt(&state, &view, trader_id, Some(&stored.key)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "confirmation_received",
            "receipt_key": stored.key,
            "content_type": stored.kind.content_type(),
            "size_bytes": stored.size_bytes,
        })),
    ))
}

/// Reads a raw receipt body: at most [`MAX_RECEIPT_BYTES`] are kept; a longer body is read to
/// its end (up to [`DRAIN_LIMIT_BYTES`]) and refused with 413.
async fn read_receipt_body(body: Body) -> ApiResult<Bytes> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the receipt could not be read",
            )
        })?;
        total += chunk.len();
        if total > DRAIN_LIMIT_BYTES {
            return Err(too_large());
        }
        if total <= MAX_RECEIPT_BYTES {
            kept.extend_from_slice(&chunk);
        }
    }
    if total > MAX_RECEIPT_BYTES {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// Whether a body error is the length limit being hit.
pub(crate) fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";

    #[test]
    fn the_bytes_decide_the_type() {
        assert_eq!(check(PNG, Some("image/png")), Ok(ReceiptKind::Png));
        assert_eq!(check(JPEG, Some("image/jpeg")), Ok(ReceiptKind::Jpeg));
        assert_eq!(
            check(PDF, Some("Application/PDF; name=x")),
            Ok(ReceiptKind::Pdf)
        );
        assert_eq!(
            check(PNG, Some("application/octet-stream")),
            Ok(ReceiptKind::Png),
            "a browser that cannot classify the file"
        );
        assert_eq!(check(PDF, None), Ok(ReceiptKind::Pdf));
        assert_eq!(
            check(PDF, Some("image/png")),
            Err(ReceiptRejection::UnsupportedType),
            "declared type and bytes disagree"
        );
        assert_eq!(
            check(b"GIF89a....", Some("image/png")),
            Err(ReceiptRejection::UnsupportedType),
            "a PNG content type on other bytes"
        );
        assert_eq!(
            check(b"<html>", Some("text/html")),
            Err(ReceiptRejection::UnsupportedType)
        );
        assert_eq!(
            check(PNG, Some("image/gif")),
            Err(ReceiptRejection::UnsupportedType)
        );
        assert_eq!(check(b"", None), Err(ReceiptRejection::Empty));
    }

    #[test]
    fn size_is_limited() {
        let mut big = PNG.to_vec();
        big.resize(MAX_RECEIPT_BYTES, 0);
        assert_eq!(check(&big, Some("image/png")), Ok(ReceiptKind::Png));
        big.push(0);
        assert_eq!(
            check(&big, Some("image/png")),
            Err(ReceiptRejection::TooLarge)
        );
    }

    #[tokio::test]
    async fn receipts_are_content_addressed_in_a_local_folder() {
        let folder = tempfile::tempdir().unwrap();
        let store = ReceiptStore::local(folder.path().join("nested")).unwrap();
        let order = Uuid::new_v4();
        let stored = store
            .put(order, Bytes::from_static(PDF), Some("application/pdf"))
            .await
            .unwrap();
        let hex: String = Sha256::digest(PDF)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(stored.key, format!("receipts/{order}/{hex}.pdf"));
        assert_eq!(stored.size_bytes, PDF.len());
        assert_eq!(store.get(&stored.key).await.unwrap(), PDF);
        assert!(folder.path().join("nested").join(&stored.key).is_file());
        let again = store
            .put(order, Bytes::from_static(PDF), None)
            .await
            .unwrap();
        assert_eq!(again, stored, "the same file is the same key");

        let refused = store
            .put(order, Bytes::from_static(b"MZ\x90\0"), Some("image/png"))
            .await;
        assert!(matches!(
            refused,
            Err(PutError::Rejected(ReceiptRejection::UnsupportedType))
        ));
        let files = std::fs::read_dir(
            folder
                .path()
                .join("nested/receipts")
                .join(order.to_string()),
        )
        .unwrap()
        .count();
        assert_eq!(files, 1, "nothing stored for a refused upload");
    }

    #[tokio::test]
    async fn in_memory_keeps_the_content_type() {
        let store = ReceiptStore::in_memory();
        let stored = store
            .put(Uuid::new_v4(), Bytes::from_static(JPEG), Some("image/jpeg"))
            .await
            .unwrap();
        assert!(stored.key.ends_with(".jpg"));
        let meta = store
            .store
            .get(&ObjectPath::from(stored.key.as_str()))
            .await
            .unwrap();
        assert_eq!(
            meta.attributes
                .get(&Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some("image/jpeg")
        );
    }

    fn settings(url: Option<&str>) -> ReceiptsSettings {
        ReceiptsSettings {
            store_url: url.map(str::to_owned),
            ..ReceiptsSettings::default()
        }
    }

    #[test]
    fn settings_choose_the_backend() {
        let folder = tempfile::tempdir().unwrap();
        let url = format!("file://{}", folder.path().join("r").display());
        let local = ReceiptStore::from_settings(&settings(Some(&url))).unwrap();
        assert_eq!(local.location(), url);
        assert!(folder.path().join("r").is_dir(), "the folder is created");

        let s3 = ReceiptStore::from_settings(&ReceiptsSettings {
            store_url: Some("s3://receipts-bucket/pay-ins".into()),
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
            s3_region: Some("eu-central-1".into()),
            s3_access_key_id: Some("minio".into()),
            s3_secret_access_key: Some("minio-secret".to_owned().into()),
        })
        .unwrap();
        assert_eq!(s3.location(), "s3://receipts-bucket/pay-ins");
        assert!(s3.keeps_attributes);

        for bad in ["file://relative/folder", "s3://", "ftp://x"] {
            assert!(
                ReceiptStore::from_settings(&settings(Some(bad))).is_err(),
                "{bad}"
            );
        }
        let half_keys = ReceiptsSettings {
            store_url: Some("s3://bucket".into()),
            s3_access_key_id: Some("id".into()),
            ..ReceiptsSettings::default()
        };
        assert!(ReceiptStore::from_settings(&half_keys).is_err());
    }
}
