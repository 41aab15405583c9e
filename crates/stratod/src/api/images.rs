//! The Images service.

use std::path::PathBuf;
use std::pin::Pin;

use strato_proto::v1 as pb;
use strato_proto::v1::images_server::Images;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert;
use super::peer::chunk_message;
use super::Api;

type FileStream = Pin<Box<dyn Stream<Item = Result<pb::FileChunk, Status>> + Send>>;
use crate::cloud::paging::PageRequest;
use crate::cloud::storage::copy;
use crate::cloud::storage::describe::{DescribeImages, ImageView};
use crate::cloud::storage::images::RegisterRequest;
use crate::db::images::PUBLIC;

fn message(v: ImageView) -> pb::Image {
    let i = &v.image;
    pb::Image {
        image_id: i.id.clone(),
        name: i.name.clone(),
        description: i.description.clone(),
        state: i.state.to_string(),
        owner_id: i.owner.clone(),
        public: v.public,
        architecture: i.architecture.clone(),
        root_device_name: i.root_device_name.clone(),
        root_device_type: "ebs".into(),
        block_device_mappings: i.mappings.iter().map(convert::mapping).collect(),
        creation_time_unix: i.created,
        boot_args: i.boot_args.clone(),
        tags: convert::tags(&i.tags),
        progress: i.progress,
        state_reason: i.state_reason.clone(),
        ena_support: i.ena_support,
    }
}

fn permissions(perms: Vec<String>) -> Vec<pb::LaunchPermission> {
    perms
        .into_iter()
        .map(|g| {
            if g == PUBLIC {
                pb::LaunchPermission {
                    user_id: String::new(),
                    group: g,
                }
            } else {
                pb::LaunchPermission {
                    user_id: g,
                    group: String::new(),
                }
            }
        })
        .collect()
}

fn grantees(p: &[pb::LaunchPermission]) -> Vec<String> {
    p.iter()
        .map(|p| {
            if p.group.is_empty() {
                p.user_id.clone()
            } else {
                p.group.clone()
            }
        })
        .collect()
}

#[tonic::async_trait]
impl Images for Api {
    async fn register_image(
        &self,
        req: Request<pb::RegisterImageRequest>,
    ) -> Result<Response<pb::RegisterImageResponse>, Status> {
        self.handle_async("RegisterImage", req, |account, r| async move {
            let nonempty = |s: String| (!s.is_empty()).then(|| PathBuf::from(s));
            let reg = RegisterRequest {
                name: r.name,
                description: r.description,
                bundle: nonempty(r.bundle_path),
                kernel: nonempty(r.kernel_path),
                root_volume: nonempty(r.root_volume_path),
                boot_args: r.boot_args,
                root_device_name: r.root_device_name,
                mappings: r
                    .block_device_mappings
                    .iter()
                    .map(convert::mapping_in)
                    .collect(),
                ena_support: r.ena_support,
            };
            self.cloud
                .register_image_regional(&account, reg)
                .await
                .map(|i| pb::RegisterImageResponse { image_id: i.id })
        })
        .await
    }

    async fn describe_images(
        &self,
        req: Request<pb::DescribeImagesRequest>,
    ) -> Result<Response<pb::DescribeImagesResponse>, Status> {
        self.handle("DescribeImages", req, |account, r| {
            self.cloud
                .describe_images(
                    account,
                    &DescribeImages {
                        image_ids: r.image_ids,
                        owners: r.owners,
                        executable_users: r.executable_users,
                        filters: convert::filters(&r.filters),
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                )
                .map(|p| pb::DescribeImagesResponse {
                    next_token: p.next_token,
                    images: p.items.into_iter().map(message).collect(),
                })
        })
    }

    async fn deregister_image(
        &self,
        req: Request<pb::DeregisterImageRequest>,
    ) -> Result<Response<pb::DeregisterImageResponse>, Status> {
        self.handle_async("DeregisterImage", req, |account, r| async move {
            self.cloud
                .deregister_image_regional(&account, &r.image_id)
                .await
                .map(|_| pb::DeregisterImageResponse {})
        })
        .await
    }

    async fn create_image(
        &self,
        req: Request<pb::CreateImageRequest>,
    ) -> Result<Response<pb::CreateImageResponse>, Status> {
        self.handle_async("CreateImage", req, |account, r| async move {
            self.cloud
                .create_image_regional(
                    &account,
                    &r.instance_id,
                    &r.name,
                    &r.description,
                    r.no_reboot,
                )
                .await
                .map(|i| pb::CreateImageResponse { image_id: i.id })
        })
        .await
    }

    async fn modify_image_attribute(
        &self,
        req: Request<pb::ModifyImageAttributeRequest>,
    ) -> Result<Response<pb::ModifyImageAttributeResponse>, Status> {
        self.handle_async("ModifyImageAttribute", req, |account, r| async move {
            self.cloud
                .modify_launch_permissions_regional(
                    &account,
                    &r.image_id,
                    &grantees(&r.add),
                    &grantees(&r.remove),
                )
                .await
                .map(|_| pb::ModifyImageAttributeResponse {})
        })
        .await
    }

    async fn copy_image(
        &self,
        req: Request<pb::CopyImageRequest>,
    ) -> Result<Response<pb::CopyImageResponse>, Status> {
        // The source is asked with the caller's own token, so that it applies its own launch
        // permissions (docs/daemon.md, CopyImage).
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(|s| s.trim().to_string());
        self.handle_async("CopyImage", req, |account, r| async move {
            self.cloud
                .copy_image_regional(
                    &account,
                    token,
                    &r.source_region,
                    &r.source_image_id,
                    &r.name,
                    &r.description,
                )
                .await
                .map(|i| pb::CopyImageResponse { image_id: i.id })
        })
        .await
    }

    async fn export_image(
        &self,
        req: Request<pb::ExportImageRequest>,
    ) -> Result<Response<pb::ExportImageManifest>, Status> {
        self.handle_async("ExportImage", req, |account, r| async move {
            self.cloud
                .export_image(&account, &r.image_id)
                .await
                .map(|e| pb::ExportImageManifest {
                    image_id: e.image.id.clone(),
                    name: e.image.name.clone(),
                    description: e.image.description.clone(),
                    architecture: e.image.architecture.clone(),
                    boot_args: e.image.boot_args.clone(),
                    root_device_name: e.image.root_device_name.clone(),
                    block_device_mappings: e.image.mappings.iter().map(convert::mapping).collect(),
                    files: e
                        .files
                        .into_iter()
                        .map(|f| pb::ExportedFile {
                            name: f.name,
                            size: f.size,
                            sha256: f.sha256,
                        })
                        .collect(),
                    ena_support: Some(e.image.ena_support),
                })
        })
        .await
    }

    type ReadImageFileStream = FileStream;

    async fn read_image_file(
        &self,
        req: Request<pb::ReadImageFileRequest>,
    ) -> Result<Response<Self::ReadImageFileStream>, Status> {
        self.handle("ReadImageFile", req, |account, r| {
            let path = self.cloud.image_file(account, &r.image_id, &r.file)?;
            // A few chunks in flight: reading runs ahead of the network without holding the
            // file.
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::task::spawn_blocking(move || copy::send_file(&path, r.offset, &tx));
            let stream: FileStream = Box::pin(
                ReceiverStream::new(rx).map(|c| c.map(chunk_message).map_err(Status::from)),
            );
            Ok(stream)
        })
    }

    async fn describe_image_attribute(
        &self,
        req: Request<pb::DescribeImageAttributeRequest>,
    ) -> Result<Response<pb::DescribeImageAttributeResponse>, Status> {
        self.handle("DescribeImageAttribute", req, |account, r| {
            self.cloud
                .describe_image_attribute(account, &r.image_id, &r.attribute)
                .map(|perms| pb::DescribeImageAttributeResponse {
                    image_id: r.image_id.clone(),
                    launch_permissions: permissions(perms),
                })
        })
    }
}
