//! The gRPC side of CopyImage's link to another region: a client of the source daemon's
//! Images service (ExportImage, ReadImageFile) behind the domain's `RegionLink`. An
//! `https://` peer is verified against the configured CA bundle (`tls.ca_file`, else the
//! daemon's own CA) and the system's roots.

use std::time::Duration;

use strato_proto::v1 as pb;
use strato_proto::v1::images_client::ImagesClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::convert;
use crate::cloud::storage::copy::{CopyError, ExportedFile, CHUNK};
use crate::cloud::storage::source::{
    BoxFuture, Chunk, ChunkStream, Manifest, RegionLink, SourceRegion,
};
use crate::error::ErrorCode;

/// How long to wait for a source daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reaches other regions' daemons over gRPC.
#[derive(Debug, Default, Clone)]
pub struct GrpcRegions {
    /// CA certificates (PEM) trusted for `https://` peers, besides the system's.
    roots: Vec<String>,
}

impl GrpcRegions {
    /// A link that trusts these CA certificates (PEM) for `https://` peers.
    pub fn new(roots: Vec<String>) -> Self {
        Self { roots }
    }
}

impl RegionLink for GrpcRegions {
    fn connect<'a>(
        &'a self,
        endpoint: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn SourceRegion>, CopyError>> {
        Box::pin(async move {
            let client = connect(endpoint, &self.roots).await?;
            Ok(Box::new(GrpcSource(client, None)) as Box<dyn SourceRegion>)
        })
    }

    fn connect_host<'a>(
        &'a self,
        endpoint: &'a str,
        roots: &'a [String],
        account: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn SourceRegion>, CopyError>> {
        Box::pin(async move {
            let client = connect(endpoint, roots).await?;
            Ok(Box::new(GrpcSource(client, Some(account.to_string()))) as Box<dyn SourceRegion>)
        })
    }
}

/// A connection to one source daemon; to a host of this region, with the account its
/// calls speak for (their token is the region's secret).
struct GrpcSource(ImagesClient<Channel>, Option<String>);

impl SourceRegion for GrpcSource {
    fn export_image<'a>(
        &'a mut self,
        image_id: &'a str,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Manifest, CopyError>> {
        Box::pin(async move {
            let req = request(
                pb::ExportImageRequest {
                    image_id: image_id.to_string(),
                },
                token,
                self.1.as_deref(),
            )?;
            let m = self
                .0
                .export_image(req)
                .await
                .map_err(|s| from_status(&s))?
                .into_inner();
            Ok(Manifest {
                // A source older than the attribute showed true for every image.
                ena_support: m.ena_support.unwrap_or(true),
                description: m.description,
                architecture: m.architecture,
                boot_args: m.boot_args,
                root_device_name: m.root_device_name,
                mappings: m
                    .block_device_mappings
                    .iter()
                    .map(convert::mapping_in)
                    .collect(),
                files: m
                    .files
                    .into_iter()
                    .map(|f| ExportedFile {
                        name: f.name,
                        size: f.size,
                        sha256: f.sha256,
                    })
                    .collect(),
            })
        })
    }

    fn read_file<'a>(
        &'a mut self,
        image_id: &'a str,
        file: &'a str,
        offset: u64,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Box<dyn ChunkStream>, CopyError>> {
        Box::pin(async move {
            let req = request(
                pb::ReadImageFileRequest {
                    image_id: image_id.to_string(),
                    file: file.to_string(),
                    offset,
                },
                token,
                self.1.as_deref(),
            )?;
            let stream = self
                .0
                .read_image_file(req)
                .await
                .map_err(|s| from_status(&s))?
                .into_inner();
            Ok(Box::new(GrpcChunks(stream)) as Box<dyn ChunkStream>)
        })
    }
}

/// The chunks of one ReadImageFile answer.
struct GrpcChunks(tonic::Streaming<pb::FileChunk>);

impl ChunkStream for GrpcChunks {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Chunk>, CopyError>> {
        Box::pin(async move {
            match self.0.message().await {
                Ok(c) => Ok(c.map(|c| Chunk {
                    offset: c.offset,
                    data: c.data,
                    zero_length: c.zero_length,
                })),
                Err(s) => Err(from_status(&s)),
            }
        })
    }
}

/// A chunk as the API sends it.
pub fn chunk_message(c: Chunk) -> pb::FileChunk {
    pb::FileChunk {
        offset: c.offset,
        data: c.data,
        zero_length: c.zero_length,
    }
}

async fn connect(endpoint: &str, roots: &[String]) -> Result<ImagesClient<Channel>, CopyError> {
    let uri = match endpoint.strip_prefix("unix:") {
        Some(p) => format!("unix:{}", p.strip_prefix("//").unwrap_or(p)),
        None => endpoint.to_string(),
    };
    let mut ep = Endpoint::from_shared(uri)
        .map_err(|e| CopyError::Unreachable(format!("endpoint {endpoint}: {e}")))?;
    if endpoint.starts_with("https://") {
        let tls = ClientTlsConfig::new()
            .with_native_roots()
            .ca_certificates(roots.iter().map(Certificate::from_pem));
        ep = ep.tls_config(tls).map_err(|e| {
            CopyError::Unreachable(format!("{endpoint}: {}", crate::error::chain(&e)))
        })?;
    }
    let channel = ep
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| CopyError::Unreachable(format!("{endpoint}: {}", crate::error::chain(&e))))?;
    Ok(ImagesClient::new(channel).max_decoding_message_size(4 * CHUNK))
}

fn request<T>(
    msg: T,
    token: Option<&str>,
    account: Option<&str>,
) -> Result<tonic::Request<T>, CopyError> {
    let mut r = tonic::Request::new(msg);
    if let Some(a) = account {
        let v = a.parse().map_err(|_| CopyError::Refused {
            code: ErrorCode::AuthFailure.to_string(),
            message: "The account cannot be sent to the region's host.".into(),
        })?;
        r.metadata_mut()
            .insert(crate::cluster::forward::ACCOUNT_METADATA, v);
    }
    if let Some(t) = token {
        let v = format!("Bearer {t}")
            .parse()
            .map_err(|_| CopyError::Refused {
                code: ErrorCode::AuthFailure.to_string(),
                message: "The API token cannot be forwarded.".into(),
            })?;
        r.metadata_mut().insert("authorization", v);
    }
    Ok(r)
}

/// The source's answer as a copy error: an API answer carries its EC2 code; anything else
/// is the transport failing.
fn from_status(s: &tonic::Status) -> CopyError {
    match s.metadata().get(strato_proto::ERROR_CODE_METADATA) {
        Some(code) => {
            let code = code
                .to_str()
                .unwrap_or(ErrorCode::InternalError.as_str())
                .to_string();
            let message = s
                .message()
                .strip_prefix(&format!("{code}: "))
                .unwrap_or(s.message())
                .to_string();
            CopyError::Refused { code, message }
        }
        None => CopyError::Unreachable(format!("{:?}: {}", s.code(), s.message())),
    }
}
