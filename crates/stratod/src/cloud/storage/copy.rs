//! CopyImage: an AMI pulled from a peer region's daemon into this one.
//!
//! The destination (this daemon, called with `CopyImage`) asks the source daemon for the
//! image's manifest (`ExportImage`: metadata plus the size and SHA-256 of each file) while
//! the request waits, so that an unknown or forbidden source image is refused at once. It
//! then records the new AMI `pending` with new snapshot IDs and answers; a task pulls each
//! file with `ReadImageFile` (a stream of ~1 MiB chunks, runs of zeroes sent as markers)
//! into `<dest>.part`, syncing it and recording the synced length in `<dest>.part.json`
//! every few MiB. An interruption (source outage, daemon restart) resumes from that length;
//! the whole file is checked against the source's SHA-256 before it is renamed into place.
//!
//! The job (source, files, and which token the caller used, needed to resume) lives in
//! `images/<ami>/copy.json`, owner-only, until the copy ends. The token itself is never
//! written: the job holds its SHA-256, and the copy finds the configured token again by it.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::images::check_name;
use super::source::{Chunk, SourceRegion};
use crate::cloud::Cloud;
use crate::db::images::{Image, Mapping};
use crate::db::now_s;
use crate::db::volumes::Snapshot;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::states::{ImageState, SnapshotState};

/// Bytes per streamed chunk.
pub const CHUNK: usize = 1 << 20;
/// How much is written between syncs of the partial file and its sidecar: a resume redoes
/// at most this much.
const SYNC_EVERY: u64 = 16 << 20;
/// How long CopyImage waits for the source's manifest (it hashes every file).
pub(super) const MANIFEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest pause between retries while the source is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a copy attempt stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source could not be reached or the stream broke: worth retrying.
    #[error("the source region cannot be reached: {0}")]
    Unreachable(String),
    /// The source stayed unreachable, with no progress, for the configured time.
    #[error("Client.SourceUnreachable: no progress from the source region for {secs} s: {why}")]
    GaveUp {
        /// The configured window.
        secs: u64,
        /// The last failure.
        why: String,
    },
    /// The source answered with an API error: final.
    #[error("{code}: {message}")]
    Refused {
        /// EC2 error code from the source.
        code: String,
        /// Its message.
        message: String,
    },
    /// The copied file does not hash to the source's SHA-256.
    #[error("Server.ChecksumMismatch: {file}: expected SHA-256 {expected}, got {actual}")]
    Checksum {
        /// File name in the manifest.
        file: String,
        /// From the manifest.
        expected: String,
        /// Of the copy.
        actual: String,
    },
    /// A local file could not be written.
    #[error("Server.InternalError: {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

impl CopyError {
    /// The error as the CopyImage request's answer.
    fn api(self) -> ApiError {
        match self {
            CopyError::Refused { code, message } => match code.parse() {
                // The source's answers that make sense to the caller pass through.
                Ok(
                    c @ (ErrorCode::InvalidAmiIdNotFound
                    | ErrorCode::InvalidAmiIdMalformed
                    | ErrorCode::AuthFailure
                    | ErrorCode::UnauthorizedOperation
                    | ErrorCode::IncorrectState),
                ) => ApiError::new(c, message),
                _ => ApiError::internal(format!("The source region: {code}: {message}")),
            },
            other => ApiError::new(ErrorCode::Unavailable, other.to_string()),
        }
    }
}

/// One file of an exported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFile {
    /// `kernel`, `initrd`, or a snapshot ID.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// What ExportImage tells a destination.
#[derive(Debug, Clone)]
pub struct Export {
    /// The image.
    pub image: Image,
    /// Its files.
    pub files: Vec<ExportedFile>,
}

/// A copy in progress, as kept in `copy.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    source_region: String,
    source_image_id: String,
    /// The caller's bearer token, forwarded to the source; `None` over a Unix socket.
    /// Never written; read only from jobs of older versions, which kept it in clear.
    #[serde(default, skip_serializing)]
    token: Option<String>,
    /// SHA-256 (hex) of that token, by which the copy finds it among the configured ones.
    #[serde(default)]
    token_sha256: Option<String>,
    files: Vec<JobFile>,
}

/// Lower-case hex SHA-256 of a token.
fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The configured token whose digest is `digest`.
fn token_by_digest<'a>(
    tokens: &'a std::collections::BTreeMap<String, String>,
    digest: &str,
) -> Option<&'a str> {
    tokens
        .keys()
        .find(|t| bool::from(token_digest(t).as_bytes().ct_eq(digest.as_bytes())))
        .map(String::as_str)
}

/// One file to pull: the source's, where it goes here, and the snapshot row it fills.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct JobFile {
    #[serde(flatten)]
    pub(super) source: ExportedFile,
    pub(super) dest: PathBuf,
    pub(super) snapshot_id: Option<String>,
}

/// Where a file is pulled from and what the pull reports on: the source's image ID, the
/// bearer token its calls carry, and the image here whose progress follows (none for a
/// host pulling a region's AMI, whose state is the region's).
pub(super) struct PullFrom<'a> {
    pub(super) image_id: &'a str,
    pub(super) token: Option<&'a str>,
    pub(super) report: Option<&'a str>,
}

/// The sidecar of a partial file: how much of it is synced and from which source file.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    verified: u64,
    size: u64,
    sha256: String,
}

pub(super) fn part_path(dest: &Path) -> PathBuf {
    dest.with_extension("part")
}

fn sidecar_path(dest: &Path) -> PathBuf {
    dest.with_extension("part.json")
}

/// Writes `value` as JSON through a temporary name, owner-only.
fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, &text)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Streams `path` from `offset` in chunks into `tx` (runs in a blocking task); stops when the
/// receiver goes away.
pub fn send_file(path: &Path, offset: u64, tx: &tokio::sync::mpsc::Sender<ApiResult<Chunk>>) {
    let fail = |e: std::io::Error| {
        let _ = tx.blocking_send(Err(ApiError::internal(format!(
            "Cannot read the image: {e}"
        ))));
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let mut pos = offset;
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Fill the whole chunk: a short read would misplace the next offset.
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], pos + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return fail(e),
            }
        }
        if n == 0 {
            return;
        }
        let chunk = if buf[..n].iter().all(|&b| b == 0) {
            Chunk {
                offset: pos,
                data: Vec::new(),
                zero_length: n as u64,
            }
        } else {
            Chunk {
                offset: pos,
                data: buf[..n].to_vec(),
                zero_length: 0,
            }
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
        pos += n as u64;
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> CopyError + '_ {
    move |e| CopyError::Io(what.to_string(), e)
}

impl Cloud {
    /// Where the daemon of `region` answers: a peer's endpoint, or this daemon's own.
    fn region_endpoint(&self, region: &str) -> ApiResult<String> {
        if region == self.cfg.region {
            return Ok(crate::cloud::placement::regions::own_endpoint(&self.cfg));
        }
        self.cfg.peers.get(region).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRegion,
                format!(
                    "The region '{}' is not known here.",
                    region.chars().take(64).collect::<String>()
                ),
            )
        })
    }

    /// ExportImage (source side): the image, if the account may launch it, and the size and
    /// SHA-256 of each of its files.
    pub async fn export_image(&self, account: &str, id: &str) -> ApiResult<Export> {
        let (image, _) = self.visible_image(account, id)?;
        if image.state != ImageState::Available {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Image {id} is {}, not available.", image.state),
            ));
        }
        let mut paths = vec![("kernel".to_string(), PathBuf::from(&image.kernel))];
        if let Some(i) = &image.initrd {
            paths.push(("initrd".into(), PathBuf::from(i)));
        }
        for m in image.mappings.iter().filter(|m| !m.snapshot_id.is_empty()) {
            paths.push((m.snapshot_id.clone(), self.snapshot_path(&m.snapshot_id)));
        }
        // Hashing reads every byte: keep it off the request threads.
        let files = tokio::task::spawn_blocking(move || {
            paths
                .into_iter()
                .map(|(name, p)| {
                    let size = std::fs::metadata(&p)?.len();
                    let sha256 = sha256_file(&p)?;
                    Ok(ExportedFile { name, size, sha256 })
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| crate::cloud::host_io("Cannot read the image's files", e))?;
        Ok(Export { image, files })
    }

    /// ReadImageFile (source side): the path of one file of an image the account may launch.
    pub fn image_file(&self, account: &str, id: &str, file: &str) -> ApiResult<PathBuf> {
        let (image, _) = self.visible_image(account, id)?;
        match file {
            "kernel" => Ok(PathBuf::from(&image.kernel)),
            "initrd" => image
                .initrd
                .map(PathBuf::from)
                .ok_or_else(|| ApiError::invalid(format!("Image {id} has no initrd."))),
            s if image.mappings.iter().any(|m| m.snapshot_id == s) => Ok(self.snapshot_path(s)),
            other => Err(ApiError::invalid(format!(
                "Image {id} has no file '{}'.",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// CopyImage (destination side): checks the request, fetches the source's manifest,
    /// records the new AMI pending and starts pulling its files.
    pub async fn copy_image(
        self: &Arc<Self>,
        account: &str,
        token: Option<String>,
        source_region: &str,
        source_image_id: &str,
        name: &str,
        description: &str,
    ) -> ApiResult<Image> {
        if source_region.is_empty() {
            return Err(ApiError::missing("SourceRegion"));
        }
        let endpoint = self.region_endpoint(source_region)?;
        if source_image_id.is_empty() {
            return Err(ApiError::missing("SourceImageId"));
        }
        ids::check(Kind::Image, source_image_id)?;
        check_name(name)?;
        // Without a token the source sees the caller as its admin, which only its Unix socket
        // allows; a TCP peer needs the caller's token.
        let unix = endpoint.starts_with("unix:") || endpoint.starts_with('/');
        if token.is_none() && !unix {
            return Err(ApiError::new(
                ErrorCode::AuthFailure,
                format!("Copying from {source_region} over TCP needs an API token."),
            ));
        }
        let manifest = tokio::time::timeout(MANIFEST_TIMEOUT, async {
            let mut source = self.regions.connect(&endpoint).await?;
            source.export_image(source_image_id, token.as_deref()).await
        })
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::Unavailable,
                "The source region did not answer in time.",
            )
        })?
        .map_err(CopyError::api)?;

        let id = ids::new_id(Kind::Image);
        let dir = self.image_dir(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::cloud::host_io("Cannot create the image folder", e))?;
        let mut files = Vec::new();
        let mut snapshots = Vec::new();
        let mut mappings = Vec::new();
        for m in &manifest.mappings {
            let mut m: Mapping = m.clone();
            if !m.snapshot_id.is_empty() {
                let Some(f) = manifest.files.iter().find(|f| f.name == m.snapshot_id) else {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(ApiError::internal(format!(
                        "The source's manifest lacks snapshot {}.",
                        m.snapshot_id
                    )));
                };
                // A full, independent copy: new snapshot IDs in this region.
                let sid = ids::new_id(Kind::Snapshot);
                snapshots.push(Snapshot {
                    id: sid.clone(),
                    owner: account.to_string(),
                    volume_id: "vol-ffffffff".into(),
                    size_gib: m.volume_size,
                    state: SnapshotState::Pending,
                    progress: 0,
                    description: format!("Copied for {id} from {source_region}:{}", m.snapshot_id),
                    created: now_s(),
                    tags: Vec::new(),
                });
                files.push(JobFile {
                    source: f.clone(),
                    dest: self.snapshot_path(&sid),
                    snapshot_id: Some(sid.clone()),
                });
                m.snapshot_id = sid;
            }
            mappings.push(m);
        }
        let mut initrd = None;
        for f in &manifest.files {
            if f.name == "kernel" || f.name == "initrd" {
                let dest = dir.join(&f.name);
                if f.name == "initrd" {
                    initrd = Some(dest.display().to_string());
                }
                files.push(JobFile {
                    source: f.clone(),
                    dest,
                    snapshot_id: None,
                });
            }
        }
        let image = Image {
            id: id.clone(),
            owner: account.to_string(),
            name: name.to_string(),
            description: if description.is_empty() {
                manifest.description.clone()
            } else {
                description.to_string()
            },
            state: ImageState::Pending,
            state_reason: String::new(),
            progress: 0,
            architecture: manifest.architecture.clone(),
            kernel: dir.join("kernel").display().to_string(),
            initrd,
            boot_args: manifest.boot_args.clone(),
            root_device_name: manifest.root_device_name.clone(),
            mappings,
            created: now_s(),
            tags: Vec::new(),
            ena_support: manifest.ena_support,
        };
        let job = Job {
            source_region: source_region.to_string(),
            source_image_id: source_image_id.to_string(),
            token_sha256: token.as_deref().map(token_digest),
            token: None,
            files,
        };
        if let Err(e) = write_json(&dir.join("copy.json"), &job) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(crate::cloud::host_io("Cannot record the copy", e));
        }
        if !self.db.insert_image(&image)? {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::new(
                ErrorCode::InvalidAmiNameDuplicate,
                format!("AMI name {name} is already in use by another AMI."),
            ));
        }
        for s in &snapshots {
            self.db.insert_snapshot(s)?;
        }
        tracing::info!(image = %id, source = %source_image_id, region = %source_region, "copying image");
        let cloud = Arc::clone(self);
        tokio::spawn(cloud.run_copy(id));
        Ok(image)
    }

    /// Starts again the copies a restart interrupted (their partial files are kept).
    pub fn resume_copies(self: &Arc<Self>) {
        for image in self.db.images().unwrap_or_default() {
            if image.state == ImageState::Pending
                && self.image_dir(&image.id).join("copy.json").exists()
            {
                tracing::info!(image = %image.id, "resuming an interrupted copy");
                tokio::spawn(Arc::clone(self).run_copy(image.id));
            }
        }
    }

    /// Pulls a copy's files until they are all there, retrying with backoff while the
    /// source is unreachable; then marks the image available, or failed with the reason.
    async fn run_copy(self: Arc<Self>, image_id: String) {
        let job_path = self.image_dir(&image_id).join("copy.json");
        let mut job: Job = match std::fs::read(&job_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(j) => j,
            Err(e) => {
                let reason = format!("Server.InternalError: cannot read the copy job: {e}");
                let _ = self
                    .db
                    .set_image_state(&image_id, ImageState::Failed, &reason, 0);
                return;
            }
        };
        if let Some(legacy) = job.token.take() {
            // An older job with the token in clear: keep its digest only.
            job.token_sha256 = Some(token_digest(&legacy));
            if let Err(e) = write_json(&job_path, &job) {
                tracing::warn!(image = %image_id, error = %e, "cannot rewrite the copy job");
            }
        }
        if let Some(digest) = &job.token_sha256 {
            match token_by_digest(&self.cfg.tokens, digest) {
                Some(t) => job.token = Some(t.to_string()),
                None => {
                    let _ = self.db.set_image_state(
                        &image_id,
                        ImageState::Failed,
                        "Client.AuthFailure: the API token that started the copy is no longer configured",
                        0,
                    );
                    let _ = crate::cloud::remove_file(&job_path);
                    return;
                }
            }
        }
        let mut backoff = Duration::from_secs(1);
        // The give-up window starts again whenever an attempt moved the copy forward.
        let progress = |c: &Cloud| {
            c.db.image(&image_id)
                .ok()
                .flatten()
                .map_or(0, |i| i.progress)
        };
        let mut stalled_since = std::time::Instant::now();
        let mut last_progress = progress(&self);
        let result = loop {
            match self.copy_files(&image_id, &job).await {
                Err(CopyError::Unreachable(why)) => {
                    let p = progress(&self);
                    if p > last_progress {
                        last_progress = p;
                        stalled_since = std::time::Instant::now();
                        backoff = Duration::from_secs(1);
                    }
                    if stalled_since.elapsed() >= self.cfg.copy_give_up {
                        break Err(CopyError::GaveUp {
                            secs: self.cfg.copy_give_up.as_secs(),
                            why,
                        });
                    }
                    tracing::warn!(image = %image_id, error = %why, retry_in_s = backoff.as_secs(), "copy interrupted; will resume");
                    tokio::time::sleep(backoff.min(self.cfg.copy_give_up)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                other => break other,
            }
        };
        let snapshot_ids = job.files.iter().filter_map(|f| f.snapshot_id.as_ref());
        let recorded = match result {
            Ok(()) => {
                tracing::info!(image = %image_id, "copy complete");
                self.db
                    .set_image_state(&image_id, ImageState::Available, "", 100)
            }
            Err(e) => {
                tracing::warn!(image = %image_id, error = %e, "copy failed");
                for f in &job.files {
                    let _ = crate::cloud::remove_file(&part_path(&f.dest));
                    let _ = crate::cloud::remove_file(&sidecar_path(&f.dest));
                }
                for s in snapshot_ids {
                    let _ = self.db.set_snapshot_state(s, SnapshotState::Error, 0);
                }
                self.db
                    .set_image_state(&image_id, ImageState::Failed, &e.to_string(), 0)
            }
        };
        if let Err(e) = recorded {
            tracing::error!(image = %image_id, error = %e, "cannot record the copy's state");
        }
        let _ = crate::cloud::remove_file(&job_path);
        self.publish_image_state(&image_id).await;
    }

    /// One attempt at pulling the files not yet in place.
    async fn copy_files(&self, image_id: &str, job: &Job) -> Result<(), CopyError> {
        let endpoint =
            self.region_endpoint(&job.source_region)
                .map_err(|e| CopyError::Refused {
                    code: e.code.to_string(),
                    message: e.message,
                })?;
        let total = job.files.iter().map(|f| f.source.size).sum::<u64>().max(1);
        let mut done = 0;
        let mut source: Option<Box<dyn SourceRegion>> = None;
        for f in &job.files {
            // The final name appears only after the checksum matched.
            if f.dest.exists() && !part_path(&f.dest).exists() {
                done += f.source.size;
                continue;
            }
            let c = match &mut source {
                Some(c) => c,
                None => source.insert(self.regions.connect(&endpoint).await?),
            };
            let from = PullFrom {
                image_id: &job.source_image_id,
                token: job.token.as_deref(),
                report: Some(image_id),
            };
            self.copy_file(c.as_mut(), &from, f, done, total).await?;
            done += f.source.size;
        }
        Ok(())
    }

    /// Pulls one file into its `.part`, from the synced length on, verifies it and renames
    /// it into place.
    pub(super) async fn copy_file(
        &self,
        source: &mut dyn SourceRegion,
        from: &PullFrom<'_>,
        f: &JobFile,
        done: u64,
        total: u64,
    ) -> Result<(), CopyError> {
        let image_id = from.report.unwrap_or(from.image_id);
        let src = &f.source;
        let part = part_path(&f.dest);
        let side = sidecar_path(&f.dest);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(io("cannot open the partial file"))?;
        let len = file
            .metadata()
            .map_err(io("cannot stat the partial file"))?
            .len();
        let mut verified = std::fs::read(&side)
            .ok()
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
            .filter(|s| s.size == src.size && s.sha256 == src.sha256 && s.verified <= len)
            .map(|s| s.verified)
            .unwrap_or(0);
        verified = verified.min(src.size);
        // Bytes past the synced length may be torn writes: drop them, so that zero runs
        // (never written) read back as zeroes.
        file.set_len(verified)
            .and_then(|_| file.set_len(src.size))
            .map_err(io("cannot size the partial file"))?;
        if verified > 0 {
            tracing::info!(image = %image_id, file = %src.name, offset = verified, "resuming copy at offset {verified}");
            crate::metrics::inc(&self.metrics.copy_resumed_total);
        }
        let mut pos = verified;
        if pos < src.size {
            let mut stream = source
                .read_file(from.image_id, &src.name, pos, from.token)
                .await?;
            let started = Instant::now();
            let mut data_bytes: u64 = 0;
            let mut unsynced: u64 = 0;
            let mut last_pct = -1;
            while pos < src.size {
                let chunk = match stream.next().await? {
                    Some(c) => c,
                    None => {
                        return Err(CopyError::Unreachable(format!(
                            "the stream of {} ended at {pos} of {}",
                            src.name, src.size
                        )))
                    }
                };
                let n = if chunk.zero_length > 0 {
                    chunk.zero_length
                } else {
                    chunk.data.len() as u64
                };
                if chunk.offset != pos || n == 0 || pos + n > src.size {
                    return Err(CopyError::Refused {
                        code: ErrorCode::InternalError.to_string(),
                        message: format!(
                            "the source sent a bad chunk of {} at {}",
                            src.name, chunk.offset
                        ),
                    });
                }
                if chunk.zero_length == 0 {
                    file.write_all_at(&chunk.data, pos)
                        .map_err(io("cannot write the partial file"))?;
                    data_bytes += n;
                }
                pos += n;
                unsynced += n;
                if unsynced >= SYNC_EVERY || pos == src.size {
                    // Data first, then the sidecar: it never vouches for unsynced bytes.
                    file.sync_data()
                        .map_err(io("cannot sync the partial file"))?;
                    let sc = Sidecar {
                        verified: pos,
                        size: src.size,
                        sha256: src.sha256.clone(),
                    };
                    write_json(&side, &sc).map_err(io("cannot record the copy's progress"))?;
                    unsynced = 0;
                }
                if let Some(rate) = self.cfg.copy_rate {
                    let due = Duration::from_secs_f64(data_bytes as f64 / rate);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let pct = ((done + pos) * 100 / total).min(99) as i32;
                if pct != last_pct {
                    last_pct = pct;
                    if let Some(report) = from.report {
                        let _ = self
                            .db
                            .set_image_state(report, ImageState::Pending, "", pct);
                    }
                    if let Some(s) = &f.snapshot_id {
                        let own = (pos * 100 / src.size.max(1)).min(99) as i32;
                        let _ = self.db.set_snapshot_state(s, SnapshotState::Pending, own);
                    }
                }
            }
            self.metrics
                .copied_bytes_total
                .fetch_add(data_bytes, std::sync::atomic::Ordering::Relaxed);
        }
        drop(file);
        let p = part.clone();
        let actual = tokio::task::spawn_blocking(move || sha256_file(&p))
            .await
            .map_err(|e| CopyError::Io("hashing".into(), std::io::Error::other(e)))?
            .map_err(io("cannot hash the copy"))?;
        if actual != src.sha256 {
            let _ = crate::cloud::remove_file(&part);
            let _ = crate::cloud::remove_file(&side);
            return Err(CopyError::Checksum {
                file: src.name.clone(),
                expected: src.sha256.clone(),
                actual,
            });
        }
        std::fs::rename(&part, &f.dest).map_err(io("cannot rename the copy"))?;
        let _ = crate::cloud::remove_file(&side);
        if let Some(s) = &f.snapshot_id {
            let _ = self.db.set_snapshot_state(s, SnapshotState::Completed, 100);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
