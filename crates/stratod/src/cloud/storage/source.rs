//! How CopyImage reaches the daemon of the source region: a connection that exports an
//! image's manifest and streams its files. The domain depends on these traits alone; their
//! gRPC implementation sits beside the API (`crate::api::peer`).

use std::future::Future;
use std::pin::Pin;

use super::copy::{CopyError, ExportedFile};
use crate::db::images::Mapping;

/// A boxed future, so that the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One piece of a file: its bytes, or a run of zeroes sent as a length alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its bytes (empty for a run of zeroes).
    pub data: Vec<u8>,
    /// The length of a run of zeroes (0 for data).
    pub zero_length: u64,
}

/// What the source's ExportImage tells the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The image's description.
    pub description: String,
    /// Its architecture.
    pub architecture: String,
    /// Its kernel command line.
    pub boot_args: String,
    /// Its root device name.
    pub root_device_name: String,
    /// Its block device mapping, with the source's snapshot IDs.
    pub mappings: Vec<Mapping>,
    /// Its files.
    pub files: Vec<ExportedFile>,
    /// Its EnaSupport.
    pub ena_support: bool,
}

/// How this daemon reaches the daemon of another region.
pub trait RegionLink: Send + Sync {
    /// A connection to the daemon that answers at `endpoint`.
    fn connect<'a>(
        &'a self,
        endpoint: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn SourceRegion>, CopyError>>;

    /// A connection to another host of this region at `endpoint` (verified against
    /// `roots`), whose calls speak for `account`: their token is the region's secret.
    fn connect_host<'a>(
        &'a self,
        endpoint: &'a str,
        roots: &'a [String],
        account: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn SourceRegion>, CopyError>>;
}

/// A connection to a source region's daemon. Each call speaks for the caller's token
/// (`None` over a Unix socket, where the source trusts its own admin).
pub trait SourceRegion: Send {
    /// ExportImage: the image's manifest, if the caller may launch it there.
    fn export_image<'a>(
        &'a mut self,
        image_id: &'a str,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Manifest, CopyError>>;

    /// ReadImageFile: one file of the image from `offset` on.
    fn read_file<'a>(
        &'a mut self,
        image_id: &'a str,
        file: &'a str,
        offset: u64,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Box<dyn ChunkStream>, CopyError>>;
}

/// The chunks of one file as they arrive.
pub trait ChunkStream: Send {
    /// The next chunk; `None` when the source ended the stream.
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Chunk>, CopyError>>;
}

/// A link to no region, for unit tests of the domain (which never copy across regions).
#[cfg(test)]
pub(crate) struct NoRegions;

#[cfg(test)]
impl RegionLink for NoRegions {
    fn connect<'a>(
        &'a self,
        endpoint: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn SourceRegion>, CopyError>> {
        Box::pin(async move {
            Err(CopyError::Unreachable(format!(
                "{endpoint}: unit tests reach no region"
            )))
        })
    }

    fn connect_host<'a>(
        &'a self,
        endpoint: &'a str,
        _roots: &'a [String],
        _account: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn SourceRegion>, CopyError>> {
        Box::pin(async move {
            Err(CopyError::Unreachable(format!(
                "{endpoint}: unit tests reach no host"
            )))
        })
    }
}
