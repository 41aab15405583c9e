//! A region's AMI on a host that lacks its files: a launch placed here (by this host or
//! forwarded by another) pulls them first from a host that holds them, over the hosts' TLS
//! links with the region's secret, speaking for the AMI's owner. It is CopyImage's stream
//! (`ExportImage` for the manifest with each file's SHA-256, then `ReadImageFile` into a
//! resumable `.part`, checked before it is renamed into place: `copy::copy_file`).
//!
//! The pulled snapshots keep their IDs (the AMI's mapping names them region-wide) and are
//! *replicas* on this host: rows of its own, so that the launch's volumes are cloned from
//! them as for any AMI, but left out of DescribeSnapshots and the owner index (the holder's
//! snapshot is the one the region sees), and dropped with the AMI. Each host that has an
//! AMI's files has the key `owners/<host>/<ami-id>` (the reconciler keeps it); a pull asks
//! those hosts in turn.

use std::path::PathBuf;

use super::copy::{part_path, CopyError, ExportedFile, JobFile, PullFrom, MANIFEST_TIMEOUT};
use super::source::SourceRegion;
use crate::cloud::Cloud;
use crate::cluster::membership::HostState;
use crate::db::images::Image;
use crate::db::now_s;
use crate::db::volumes::Snapshot;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::Kind;
use crate::states::SnapshotState;

/// How many times (a second apart) a pull looks for a holder in the index.
const HOLDER_WAITS: u32 = 6;

impl Cloud {
    /// Makes sure this host has the files of image `image_id` before a launch uses them,
    /// pulling them from a host of the region that holds them. Concurrent launches of one
    /// AMI here share one pull: the later ones wait for it and find the files.
    pub async fn ensure_image_files(&self, image_id: &str) -> ApiResult<()> {
        let image = self
            .db
            .image(image_id)?
            .ok_or_else(|| Kind::Image.not_found(image_id))?;
        if self.has_image_files(&image)? {
            return Ok(());
        }
        let lock = self.lock(&format!("pull/{image_id}"));
        let _held = lock.lock().await;
        if self.has_image_files(&image)? {
            return Ok(());
        }
        let Some(region) = self.cluster.clone() else {
            return Err(ApiError::internal(format!(
                "The files of image {image_id} are missing on this host."
            )));
        };
        // An AMI that just became available may not be in the index yet (its maker puts its
        // key once it published the state; its reconciler within seconds anyway).
        let mut holders = Vec::new();
        for wait in 0..HOLDER_WAITS {
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            holders = region
                .hosts_holding(image_id)
                .await
                .map_err(|e| region.cut_off(&e))?;
            if holders.iter().any(|h| h.as_str() != region.host()) {
                break;
            }
        }
        let views = region.hosts();
        let mut why = Vec::new();
        for host in holders.iter().filter(|h| h.as_str() != region.host()) {
            let view = match views.get(host) {
                Some(v) if v.state() != HostState::Unavailable => v,
                Some(_) => {
                    why.push(format!("{host} is unavailable"));
                    continue;
                }
                None => {
                    why.push(format!("{host} is not a member"));
                    continue;
                }
            };
            tracing::info!(image = image_id, from = %host, "pulling the image's files");
            let pulled = async {
                let mut source = self
                    .regions
                    .connect_host(&view.record.api, &region.roots, &image.owner)
                    .await?;
                self.pull_with(source.as_mut(), &region.cfg.secret, &image)
                    .await
            }
            .await;
            match pulled {
                Ok(()) => {
                    tracing::info!(image = image_id, from = %host, "image files pulled");
                    // The reconciler would put it within seconds; at once, the next host
                    // that lacks the files may pull from here too.
                    let _ = region.put_owner(image_id, &image.owner).await;
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(image = image_id, from = %host, error = %e, "cannot pull the image's files");
                    why.push(format!("{host}: {e}"));
                }
            }
        }
        Err(ApiError::new(
            ErrorCode::Unavailable,
            if why.is_empty() {
                format!("No host of the region holds the files of image {image_id}.")
            } else {
                format!(
                    "No host of the region that holds image {image_id} gave its files: {}",
                    why.join("; ")
                )
            },
        ))
    }

    /// Pulls the files of `image` this host lacks from `source`, whose calls carry `token`.
    async fn pull_with(
        &self,
        source: &mut dyn SourceRegion,
        token: &str,
        image: &Image,
    ) -> Result<(), CopyError> {
        let manifest = tokio::time::timeout(
            MANIFEST_TIMEOUT,
            source.export_image(&image.id, Some(token)),
        )
        .await
        .map_err(|_| CopyError::Unreachable("the manifest did not come in time".into()))??;
        let files = self.pull_plan(image, &manifest.files)?;
        std::fs::create_dir_all(self.image_dir(&image.id))
            .map_err(|e| CopyError::Io("cannot create the image folder".into(), e))?;
        for f in &files {
            if let Some(sid) = &f.snapshot_id {
                let size = image
                    .mappings
                    .iter()
                    .find(|m| &m.snapshot_id == sid)
                    .map_or(1, |m| m.volume_size);
                let replica = Snapshot {
                    id: sid.clone(),
                    owner: image.owner.clone(),
                    volume_id: "vol-ffffffff".into(),
                    size_gib: size,
                    state: SnapshotState::Pending,
                    progress: 0,
                    description: format!("Replica for {} pulled from the region", image.id),
                    created: now_s(),
                    tags: Vec::new(),
                };
                self.db.insert_replica_snapshot(&replica).map_err(|e| {
                    CopyError::Io(
                        "cannot record the replica".into(),
                        std::io::Error::other(e.to_string()),
                    )
                })?;
            }
        }
        let from = PullFrom {
            image_id: &image.id,
            token: Some(token),
            report: None,
        };
        let total = files.iter().map(|f| f.source.size).sum::<u64>().max(1);
        let mut done = 0;
        for f in &files {
            // The final name appears only after the checksum matched.
            if !f.dest.exists() || part_path(&f.dest).exists() {
                self.copy_file(source, &from, f, done, total).await?;
            }
            if let Some(sid) = &f.snapshot_id {
                let _ = self
                    .db
                    .set_snapshot_state(sid, SnapshotState::Completed, 100);
            }
            done += f.source.size;
        }
        Ok(())
    }

    /// Where each file of the holder's manifest goes here; the manifest must list every
    /// snapshot of the AMI's mapping (the same IDs: it is the same AMI).
    fn pull_plan(&self, image: &Image, files: &[ExportedFile]) -> Result<Vec<JobFile>, CopyError> {
        let bad = |message: String| CopyError::Refused {
            code: ErrorCode::InternalError.to_string(),
            message,
        };
        let mut out = Vec::new();
        for name in ["kernel", "initrd"] {
            let wanted = name == "kernel" || image.initrd.is_some();
            match files.iter().find(|f| f.name == name) {
                Some(f) if wanted => out.push(JobFile {
                    source: f.clone(),
                    dest: PathBuf::from(if name == "kernel" {
                        image.kernel.clone()
                    } else {
                        image.initrd.clone().unwrap_or_default()
                    }),
                    snapshot_id: None,
                }),
                None if wanted => {
                    return Err(bad(format!("the holder's manifest lacks the {name}")))
                }
                _ => {}
            }
        }
        for m in image.mappings.iter().filter(|m| !m.snapshot_id.is_empty()) {
            let Some(f) = files.iter().find(|f| f.name == m.snapshot_id) else {
                return Err(bad(format!(
                    "the holder's manifest lacks snapshot {}",
                    m.snapshot_id
                )));
            };
            out.push(JobFile {
                source: f.clone(),
                dest: self.snapshot_path(&m.snapshot_id),
                snapshot_id: Some(m.snapshot_id.clone()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{BoxFuture, Chunk, ChunkStream, Manifest};
    use super::*;
    use crate::db::images::Mapping;
    use crate::states::ImageState;

    /// A holder that serves fixed files under a manifest that may lie about them.
    struct Holder {
        files: Vec<(ExportedFile, Vec<u8>)>,
    }

    struct Chunks(Vec<Chunk>);

    impl ChunkStream for Chunks {
        fn next(&mut self) -> BoxFuture<'_, Result<Option<Chunk>, CopyError>> {
            let c = (!self.0.is_empty()).then(|| self.0.remove(0));
            Box::pin(async move { Ok(c) })
        }
    }

    impl SourceRegion for Holder {
        fn export_image<'a>(
            &'a mut self,
            _image_id: &'a str,
            token: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Manifest, CopyError>> {
            assert_eq!(token, Some("region-secret"));
            let files = self.files.iter().map(|(f, _)| f.clone()).collect();
            Box::pin(async move {
                Ok(Manifest {
                    description: String::new(),
                    architecture: "x86_64".into(),
                    boot_args: String::new(),
                    root_device_name: "/dev/vda".into(),
                    mappings: Vec::new(),
                    files,
                    ena_support: true,
                })
            })
        }

        fn read_file<'a>(
            &'a mut self,
            _image_id: &'a str,
            file: &'a str,
            offset: u64,
            _token: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Box<dyn ChunkStream>, CopyError>> {
            let data = self
                .files
                .iter()
                .find(|(f, _)| f.name == file)
                .map(|(_, d)| d[offset as usize..].to_vec())
                .unwrap_or_default();
            Box::pin(async move {
                Ok(Box::new(Chunks(vec![Chunk {
                    offset,
                    data,
                    zero_length: 0,
                }])) as Box<dyn ChunkStream>)
            })
        }
    }

    fn sha(data: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn setup(cloud: &Cloud) -> Image {
        let id = "ami-0123456789abcdef0";
        let dir = cloud.image_dir(id);
        let image = Image {
            id: id.into(),
            owner: "100000000001".into(),
            name: "probe".into(),
            description: String::new(),
            state: ImageState::Available,
            state_reason: String::new(),
            progress: 100,
            architecture: "x86_64".into(),
            kernel: dir.join("kernel").display().to_string(),
            initrd: None,
            boot_args: String::new(),
            root_device_name: "/dev/vda".into(),
            mappings: vec![Mapping {
                device_name: "/dev/vda".into(),
                snapshot_id: "snap-0123456789abcdef0".into(),
                volume_size: 1,
                volume_type: "gp3".into(),
                delete_on_termination: true,
                ..Default::default()
            }],
            created: now_s(),
            tags: Vec::new(),
            ena_support: true,
        };
        assert!(cloud.db.insert_image(&image).unwrap());
        image
    }

    fn file(name: &str, data: &[u8], sha256: String) -> (ExportedFile, Vec<u8>) {
        (
            ExportedFile {
                name: name.into(),
                size: data.len() as u64,
                sha256,
            },
            data.to_vec(),
        )
    }

    #[tokio::test]
    async fn a_pull_checks_every_file_and_keeps_replicas() {
        let (_d, cloud) = crate::cloud::test_cloud();
        let image = setup(&cloud);
        let (kernel, root) = (b"kernel bytes".to_vec(), vec![7u8; 5000]);
        let mut holder = Holder {
            files: vec![
                file("kernel", &kernel, sha(&kernel)),
                file("snap-0123456789abcdef0", &root, sha(b"something else")),
            ],
        };
        // A snapshot that does not hash to the holder's SHA-256 is refused and not kept.
        let err = cloud
            .pull_with(&mut holder, "region-secret", &image)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CopyError::Checksum { file, .. } if file == "snap-0123456789abcdef0"),
            "{err}"
        );
        assert!(err.to_string().contains("ChecksumMismatch"), "{err}");
        assert!(!cloud.snapshot_path("snap-0123456789abcdef0").exists());
        assert!(!cloud.has_image_files(&image).unwrap());
        // The kernel matched: it stays, and the next pull fetches the snapshot only.
        assert_eq!(std::fs::read(&image.kernel).unwrap(), kernel);
        holder.files[1].0.sha256 = sha(&root);
        cloud
            .pull_with(&mut holder, "region-secret", &image)
            .await
            .unwrap();
        assert!(cloud.has_image_files(&image).unwrap());
        assert_eq!(
            std::fs::read(cloud.snapshot_path("snap-0123456789abcdef0")).unwrap(),
            root
        );
        // A replica: the same ID, out of the host's own snapshots and the owner index.
        assert!(cloud.db.is_replica("snap-0123456789abcdef0").unwrap());
        assert!(cloud.held_snapshots().unwrap().is_empty());
        assert_eq!(
            cloud.held_images().unwrap(),
            [(image.id.clone(), image.owner.clone())]
        );
        cloud.drop_image_here(&image.id).unwrap();
        assert!(!cloud.snapshot_path("snap-0123456789abcdef0").exists());
    }

    #[tokio::test]
    async fn a_manifest_without_the_amis_snapshot_is_refused() {
        let (_d, cloud) = crate::cloud::test_cloud();
        let image = setup(&cloud);
        let mut holder = Holder {
            files: vec![file("kernel", b"k", sha(b"k"))],
        };
        let err = cloud
            .pull_with(&mut holder, "region-secret", &image)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("lacks snapshot"), "{err}");
    }

    #[tokio::test]
    async fn without_a_region_missing_files_are_an_error() {
        let (_d, cloud) = crate::cloud::test_cloud();
        let image = setup(&cloud);
        let err = cloud.ensure_image_files(&image.id).await.unwrap_err();
        assert!(err.message.contains("missing"), "{}", err.message);
    }
}
