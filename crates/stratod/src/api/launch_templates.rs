//! The LaunchTemplates service.

use strato_proto::v1 as pb;
use strato_proto::v1::launch_templates_server::LaunchTemplates;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::db::launch_templates::{Template, Version};

fn template(t: &Template) -> pb::LaunchTemplate {
    pb::LaunchTemplate {
        launch_template_id: t.id.clone(),
        launch_template_name: t.name.clone(),
        create_time_unix: t.created,
        created_by: t.owner.clone(),
        default_version_number: t.default_version,
        latest_version_number: t.latest_version,
        tags: convert::tags(&t.tags),
    }
}

fn version(t: &Template, v: &Version) -> pb::LaunchTemplateVersion {
    pb::LaunchTemplateVersion {
        launch_template_id: t.id.clone(),
        launch_template_name: t.name.clone(),
        version_number: v.version,
        version_description: v.description.clone(),
        create_time_unix: v.created,
        created_by: t.owner.clone(),
        default_version: v.version == t.default_version,
        launch_template_data: Some(convert::template_data(&v.data)),
    }
}

#[tonic::async_trait]
impl LaunchTemplates for Api {
    async fn create_launch_template(
        &self,
        req: Request<pb::CreateLaunchTemplateRequest>,
    ) -> Result<Response<pb::CreateLaunchTemplateResponse>, Status> {
        self.handle_async("CreateLaunchTemplate", req, |account, r| async move {
            let data = convert::template_data_in(&r.launch_template_data.unwrap_or_default());
            self.cloud
                .create_launch_template_regional(
                    &account,
                    &r.launch_template_name,
                    &r.version_description,
                    data,
                    convert::tags_in(&r.tags),
                )
                .await
                .map(|t| pb::CreateLaunchTemplateResponse {
                    launch_template: Some(template(&t)),
                })
        })
        .await
    }

    async fn create_launch_template_version(
        &self,
        req: Request<pb::CreateLaunchTemplateVersionRequest>,
    ) -> Result<Response<pb::CreateLaunchTemplateVersionResponse>, Status> {
        self.handle_async(
            "CreateLaunchTemplateVersion",
            req,
            |account, r| async move {
                let data = convert::template_data_in(&r.launch_template_data.unwrap_or_default());
                self.cloud
                    .create_launch_template_version_regional(
                        &account,
                        &r.launch_template_id,
                        &r.launch_template_name,
                        &r.source_version,
                        &r.version_description,
                        data,
                    )
                    .await
                    .map(|(t, v)| pb::CreateLaunchTemplateVersionResponse {
                        launch_template_version: Some(version(&t, &v)),
                    })
            },
        )
        .await
    }

    async fn modify_launch_template(
        &self,
        req: Request<pb::ModifyLaunchTemplateRequest>,
    ) -> Result<Response<pb::ModifyLaunchTemplateResponse>, Status> {
        self.handle_async("ModifyLaunchTemplate", req, |account, r| async move {
            self.cloud
                .modify_launch_template_regional(
                    &account,
                    &r.launch_template_id,
                    &r.launch_template_name,
                    &r.default_version,
                )
                .await
                .map(|t| pb::ModifyLaunchTemplateResponse {
                    launch_template: Some(template(&t)),
                })
        })
        .await
    }

    async fn describe_launch_templates(
        &self,
        req: Request<pb::DescribeLaunchTemplatesRequest>,
    ) -> Result<Response<pb::DescribeLaunchTemplatesResponse>, Status> {
        self.handle("DescribeLaunchTemplates", req, |account, r| {
            self.cloud
                .describe_launch_templates(
                    account,
                    &r.launch_template_ids,
                    &r.launch_template_names,
                    &convert::filters(&r.filters),
                )
                .map(|list| pb::DescribeLaunchTemplatesResponse {
                    launch_templates: list.iter().map(template).collect(),
                })
        })
    }

    async fn describe_launch_template_versions(
        &self,
        req: Request<pb::DescribeLaunchTemplateVersionsRequest>,
    ) -> Result<Response<pb::DescribeLaunchTemplateVersionsResponse>, Status> {
        self.handle("DescribeLaunchTemplateVersions", req, |account, r| {
            self.cloud
                .describe_launch_template_versions(
                    account,
                    &r.launch_template_id,
                    &r.launch_template_name,
                    &r.versions,
                    r.min_version,
                    r.max_version,
                )
                .map(|(t, list)| pb::DescribeLaunchTemplateVersionsResponse {
                    launch_template_versions: list.iter().map(|v| version(&t, v)).collect(),
                })
        })
    }

    async fn delete_launch_template(
        &self,
        req: Request<pb::DeleteLaunchTemplateRequest>,
    ) -> Result<Response<pb::DeleteLaunchTemplateResponse>, Status> {
        self.handle_async("DeleteLaunchTemplate", req, |account, r| async move {
            self.cloud
                .delete_launch_template_regional(
                    &account,
                    &r.launch_template_id,
                    &r.launch_template_name,
                )
                .await
                .map(|t| pb::DeleteLaunchTemplateResponse {
                    launch_template: Some(template(&t)),
                })
        })
        .await
    }
}
