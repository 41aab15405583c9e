//! Launch templates.

use strato_proto::v1::{
    CreateLaunchTemplateRequest, CreateLaunchTemplateVersionRequest, DeleteLaunchTemplateRequest,
    DescribeLaunchTemplateVersionsRequest, DescribeLaunchTemplatesRequest,
    ModifyLaunchTemplateRequest,
};

use crate::args::templates::{
    CreateLaunchTemplate, CreateLaunchTemplateVersion, DeleteLaunchTemplate,
    DescribeLaunchTemplateVersions, DescribeLaunchTemplates, ModifyLaunchTemplate, Template,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{ControlView, View};
use crate::parse::{flatten, tags_for};

fn names(t: Template) -> (String, String) {
    (
        t.launch_template_id.unwrap_or_default(),
        t.launch_template_name.unwrap_or_default(),
    )
}

/// `create-launch-template`
pub async fn create_launch_template(
    conn: &Conn,
    a: CreateLaunchTemplate,
) -> Result<View, CliError> {
    let tags = tags_for("launch-template", flatten(a.tag_specifications), Vec::new())
        .map_err(CliError::Usage)?;
    let request = CreateLaunchTemplateRequest {
        launch_template_name: a.launch_template_name,
        version_description: a.version_description.unwrap_or_default(),
        launch_template_data: Some(a.launch_template_data),
        tags,
    };
    let response = conn
        .launch_templates()
        .create_launch_template(request)
        .await
        .map_err(conn.error("CreateLaunchTemplate"))?;
    Ok(View::Control(ControlView::LaunchTemplate(
        response.into_inner().launch_template.unwrap_or_default(),
    )))
}

/// `create-launch-template-version`
pub async fn create_launch_template_version(
    conn: &Conn,
    a: CreateLaunchTemplateVersion,
) -> Result<View, CliError> {
    let (id, name) = names(a.template);
    let request = CreateLaunchTemplateVersionRequest {
        launch_template_id: id,
        launch_template_name: name,
        source_version: a.source_version.unwrap_or_default(),
        version_description: a.version_description.unwrap_or_default(),
        launch_template_data: Some(a.launch_template_data),
    };
    let response = conn
        .launch_templates()
        .create_launch_template_version(request)
        .await
        .map_err(conn.error("CreateLaunchTemplateVersion"))?;
    Ok(View::Control(ControlView::LaunchTemplateVersion(Box::new(
        response
            .into_inner()
            .launch_template_version
            .unwrap_or_default(),
    ))))
}

/// `modify-launch-template`
pub async fn modify_launch_template(
    conn: &Conn,
    a: ModifyLaunchTemplate,
) -> Result<View, CliError> {
    let (id, name) = names(a.template);
    let request = ModifyLaunchTemplateRequest {
        launch_template_id: id,
        launch_template_name: name,
        default_version: a.default_version,
    };
    let response = conn
        .launch_templates()
        .modify_launch_template(request)
        .await
        .map_err(conn.error("ModifyLaunchTemplate"))?;
    Ok(View::Control(ControlView::LaunchTemplate(
        response.into_inner().launch_template.unwrap_or_default(),
    )))
}

/// `describe-launch-templates`
pub async fn describe_launch_templates(
    conn: &Conn,
    a: DescribeLaunchTemplates,
) -> Result<View, CliError> {
    let request = DescribeLaunchTemplatesRequest {
        launch_template_ids: a.launch_template_ids,
        launch_template_names: a.launch_template_names,
        filters: flatten(a.filters),
    };
    let response = conn
        .launch_templates()
        .describe_launch_templates(request)
        .await
        .map_err(conn.error("DescribeLaunchTemplates"))?;
    Ok(View::Control(ControlView::LaunchTemplates(
        response.into_inner().launch_templates,
    )))
}

/// `describe-launch-template-versions`
pub async fn describe_launch_template_versions(
    conn: &Conn,
    a: DescribeLaunchTemplateVersions,
) -> Result<View, CliError> {
    let (id, name) = names(a.template);
    let request = DescribeLaunchTemplateVersionsRequest {
        launch_template_id: id,
        launch_template_name: name,
        versions: a.versions,
        min_version: a.min_version.unwrap_or_default(),
        max_version: a.max_version.unwrap_or_default(),
    };
    let response = conn
        .launch_templates()
        .describe_launch_template_versions(request)
        .await
        .map_err(conn.error("DescribeLaunchTemplateVersions"))?;
    Ok(View::Control(ControlView::LaunchTemplateVersions(
        response.into_inner().launch_template_versions,
    )))
}

/// `delete-launch-template`
pub async fn delete_launch_template(
    conn: &Conn,
    a: DeleteLaunchTemplate,
) -> Result<View, CliError> {
    let (id, name) = names(a.template);
    let request = DeleteLaunchTemplateRequest {
        launch_template_id: id,
        launch_template_name: name,
    };
    let response = conn
        .launch_templates()
        .delete_launch_template(request)
        .await
        .map_err(conn.error("DeleteLaunchTemplate"))?;
    Ok(View::Control(ControlView::LaunchTemplate(
        response.into_inner().launch_template.unwrap_or_default(),
    )))
}
