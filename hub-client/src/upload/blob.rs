//! The block blob upload with the Azure Blob REST API (version 2020-12-06): content that fits
//! in one block goes with one Put Blob; larger content goes in blocks (Put Block, each retried
//! on a transient failure) committed with Put Block List. The official Rust storage crates
//! bring their own HTTP and TLS stacks; these three requests are small enough to write against
//! the REST reference and keep the device's TLS policy and proxy.

use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use dps_transport_mqtt::net::Endpoint;
use http::{Method, Request};
use http_body_util::Full;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::time::Duration;

use super::error::{UploadError, is_transient_status};
use super::https::{Connection, Dialer};
use super::hub_api::{StorageInfo, encode_blob_path};

/// The Blob REST version sent.
const BLOB_API_VERSION: &str = "2020-12-06";
/// The most blocks a block blob may have.
pub(crate) const MAX_BLOCKS: usize = 50_000;
/// The largest block the service takes (4000 MiB); the block size is capped there.
pub(crate) const MAX_BLOCK_SIZE: usize = 4000 * 1024 * 1024;

/// How far an upload has come, for the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadProgress {
    /// Bytes stored so far.
    pub bytes_uploaded: u64,
    /// Blocks stored so far (1 for a single Put Blob).
    pub blocks: usize,
}

/// A progress callback.
pub(crate) type ProgressFn = Arc<dyn Fn(UploadProgress) + Send + Sync>;

/// The upload knobs.
#[derive(Clone)]
pub(crate) struct BlobOptions {
    pub(crate) block_size: usize,
    pub(crate) max_attempts: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) progress: Option<ProgressFn>,
}

/// Uploads everything `reader` yields to the blob of `target`; the number of bytes.
pub(crate) async fn upload<R>(
    dialer: &Dialer,
    target: &StorageInfo,
    reader: &mut R,
    options: &BlobOptions,
) -> Result<u64, UploadError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let endpoint =
        Endpoint::parse(&target.host_name, 443).map_err(|source| UploadError::Transport {
            host: target.host_name.clone(),
            source,
        })?;
    let prefix = endpoint.path.clone().unwrap_or_default();
    let path = format!(
        "{}/{}/{}",
        prefix.trim_end_matches('/'),
        target.container_name,
        encode_blob_path(&target.blob_name)
    );
    let sas = target.sas_query();
    // Further parameters follow the SAS (`?sv=..&sig=..`), or start the query without one.
    let more = if sas.is_empty() { '?' } else { '&' };
    let mut client = BlobClient {
        dialer,
        endpoint,
        connection: None,
        options,
    };

    let first = read_block(reader, options.block_size).await?;
    if first.len() < options.block_size {
        // Everything fits in one request.
        let size = first.len() as u64;
        client
            .put("Put Blob", &format!("{path}{sas}"), first, true)
            .await?;
        report(options, size, 1);
        return Ok(size);
    }

    let mut ids = Vec::new();
    let mut total = 0u64;
    let mut block = first;
    loop {
        if ids.len() >= MAX_BLOCKS {
            return Err(UploadError::TooLarge {
                max: MAX_BLOCKS,
                block_size: options.block_size,
            });
        }
        // Ids of one length, as the service requires: base64 of a zero-padded index.
        let id = base64::engine::general_purpose::STANDARD.encode(format!("{:010}", ids.len()));
        let len = block.len() as u64;
        let query = format!(
            "{path}{sas}{more}comp=block&blockid={}",
            dps_core::encoding::PercentEncoded::new(&id)
        );
        client.put("Put Block", &query, block, false).await?;
        ids.push(id);
        total += len;
        report(options, total, ids.len());
        block = read_block(reader, options.block_size).await?;
        if block.is_empty() {
            break;
        }
    }
    let mut list = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in &ids {
        list.push_str("<Latest>");
        list.push_str(id);
        list.push_str("</Latest>");
    }
    list.push_str("</BlockList>");
    client
        .put(
            "Put Block List",
            &format!("{path}{sas}{more}comp=blocklist"),
            Bytes::from(list),
            false,
        )
        .await?;
    tracing::debug!(blocks = ids.len(), bytes = total, "block list committed");
    Ok(total)
}

fn report(options: &BlobOptions, bytes_uploaded: u64, blocks: usize) {
    if let Some(progress) = &options.progress {
        progress(UploadProgress {
            bytes_uploaded,
            blocks,
        });
    }
}

/// Reads until `size` bytes or the end of the content.
async fn read_block<R>(reader: &mut R, size: usize) -> Result<Bytes, UploadError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut buffer = BytesMut::with_capacity(size.min(1 << 20));
    let mut chunk = vec![0u8; size.min(64 * 1024)];
    while buffer.len() < size {
        let want = (size - buffer.len()).min(chunk.len());
        let n = reader
            .read(&mut chunk[..want])
            .await
            .map_err(UploadError::Read)?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok(buffer.freeze())
}

struct BlobClient<'a> {
    dialer: &'a Dialer,
    endpoint: Endpoint,
    connection: Option<Connection>,
    options: &'a BlobOptions,
}

impl BlobClient<'_> {
    /// One PUT, retried on transient failures with a doubling delay. `path_and_query` holds the
    /// SAS: it never reaches an error or a log.
    async fn put(
        &mut self,
        operation: &'static str,
        path_and_query: &str,
        body: Bytes,
        whole_blob: bool,
    ) -> Result<(), UploadError> {
        let mut delay = self.options.retry_delay;
        let mut attempt = 1;
        loop {
            match self
                .try_put(operation, path_and_query, body.clone(), whole_blob)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < self.options.max_attempts => {
                    tracing::debug!(operation, attempt, error = %e, "transient failure: retrying");
                    // The connection may be the trouble: start afresh.
                    self.connection = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_put(
        &mut self,
        operation: &'static str,
        path_and_query: &str,
        body: Bytes,
        whole_blob: bool,
    ) -> Result<(), UploadError> {
        let connection = match self.connection.take() {
            Some(c) if c.is_usable() => c,
            _ => self.dialer.connect(&self.endpoint, None).await?,
        };
        let connection = self.connection.insert(connection);
        let mut request = Request::builder()
            .method(Method::PUT)
            .uri(path_and_query)
            .header("x-ms-version", BLOB_API_VERSION)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::USER_AGENT, crate::USER_AGENT);
        if whole_blob {
            request = request
                .header("x-ms-blob-type", "BlockBlob")
                .header(http::header::CONTENT_TYPE, "application/octet-stream");
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| UploadError::Config("the blob name cannot form a request path".into()))?;
        let response = match connection.send(request).await {
            Ok(response) => response,
            Err(e) => {
                self.connection = None;
                return Err(e);
            }
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_owned();
        if is_transient_status(status) {
            tracing::debug!(operation, status, %code, "storage answered a transient error");
        }
        Err(UploadError::Blob {
            operation,
            status,
            code,
        })
    }
}
