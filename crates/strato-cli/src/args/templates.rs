//! Arguments of the launch template commands.

use clap::{ArgGroup, Args};
use strato_proto::v1::{Filter, LaunchTemplateData};

use crate::parse::{self, Many, TagSpecification};

/// A template named by ID or by name.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("template")
        .required(true)
        .args(["launch_template_id", "launch_template_name"])
))]
pub struct Template {
    /// The template's ID.
    #[arg(long)]
    pub launch_template_id: Option<String>,

    /// The template's name.
    #[arg(long)]
    pub launch_template_name: Option<String>,
}

/// Arguments of `create-launch-template`.
#[derive(Debug, Args)]
pub struct CreateLaunchTemplate {
    /// The template's name, unique in the account.
    #[arg(long)]
    pub launch_template_name: String,

    /// A description of version 1.
    #[arg(long)]
    pub version_description: Option<String>,

    /// The parameters, in the AWS CLI's JSON (UserData base64), inline or file://PATH.
    #[arg(long, value_parser = parse::launch_template_data)]
    pub launch_template_data: LaunchTemplateData,

    /// ResourceType=launch-template,Tags=[{Key=k,Value=v}] (tags of the template).
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `create-launch-template-version`.
#[derive(Debug, Args)]
pub struct CreateLaunchTemplateVersion {
    /// The template.
    #[command(flatten)]
    pub template: Template,

    /// Start from this version's parameters ($Latest, $Default or a number).
    #[arg(long)]
    pub source_version: Option<String>,

    /// A description of the version.
    #[arg(long)]
    pub version_description: Option<String>,

    /// The parameters (over the source version's, if one is given).
    #[arg(long, value_parser = parse::launch_template_data)]
    pub launch_template_data: LaunchTemplateData,
}

/// Arguments of `modify-launch-template`.
#[derive(Debug, Args)]
pub struct ModifyLaunchTemplate {
    /// The template.
    #[command(flatten)]
    pub template: Template,

    /// The version run-instances uses by default (a number or $Latest).
    #[arg(long)]
    pub default_version: String,
}

/// Arguments of `describe-launch-templates`.
#[derive(Debug, Args)]
pub struct DescribeLaunchTemplates {
    /// Only these templates, by ID.
    #[arg(long, num_args = 1..)]
    pub launch_template_ids: Vec<String>,

    /// Only these templates, by name.
    #[arg(long, num_args = 1..)]
    pub launch_template_names: Vec<String>,

    /// Filters, e.g. Name=launch-template-name,Values=web*.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of `describe-launch-template-versions`.
#[derive(Debug, Args)]
pub struct DescribeLaunchTemplateVersions {
    /// The template.
    #[command(flatten)]
    pub template: Template,

    /// Only these versions: numbers, $Latest, $Default.
    #[arg(long, num_args = 1..)]
    pub versions: Vec<String>,

    /// The lowest version number to list.
    #[arg(long)]
    pub min_version: Option<i64>,

    /// The highest version number to list.
    #[arg(long)]
    pub max_version: Option<i64>,
}

/// Arguments of `delete-launch-template`.
#[derive(Debug, Args)]
pub struct DeleteLaunchTemplate {
    /// The template.
    #[command(flatten)]
    pub template: Template,
}
