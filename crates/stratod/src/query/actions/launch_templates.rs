//! Launch templates and their versions.

use base64::Engine;

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::instances::{mapping, user_data};
use super::{filters, tag_list, tags_for, tags_in};
use crate::db::launch_templates::{Template, TemplateData, TemplateMapping, Version};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The members of `LaunchTemplateData` strato's templates hold.
const SUPPORTED: &[&str] = &[
    "BlockDeviceMappings",
    "DisableApiTermination",
    "IamInstanceProfile",
    "ImageId",
    "InstanceInitiatedShutdownBehavior",
    "InstanceType",
    "KeyName",
    "Placement",
    "SecurityGroupIds",
    "TagSpecifications",
    "UserData",
];

/// Template data from a request; a member strato's templates cannot hold is refused, not
/// dropped.
pub(super) fn data_in(d: Option<&Value>) -> ApiResult<TemplateData> {
    let empty = Value::obj([]);
    let d = d.unwrap_or(&empty);
    if let Value::Struct(m) = d {
        if let Some(k) = m.keys().find(|k| !SUPPORTED.contains(&k.as_str())) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!(
                    "LaunchTemplateData.{k} is not supported by strato's launch templates (they hold {}).",
                    SUPPORTED.join(", ")
                ),
            ));
        }
    }
    let placement = d.get("Placement").unwrap_or(&empty);
    if let Some(Value::Struct(m)) = d.get("Placement") {
        if let Some(k) = m
            .keys()
            .find(|k| !["AvailabilityZone", "GroupName", "PartitionNumber"].contains(&k.as_str()))
        {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!("LaunchTemplateData.Placement.{k} is not supported by strato."),
            ));
        }
    }
    if let Some(s) = d
        .items("TagSpecifications")
        .iter()
        .find(|s| s.str("ResourceType") != "instance")
    {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!(
                "strato's launch templates tag instances only, not '{}'.",
                s.str("ResourceType")
            ),
        ));
    }
    Ok(TemplateData {
        image_id: d.str("ImageId").to_string(),
        instance_type: d.str("InstanceType").to_string(),
        user_data: match d.opt_str("UserData") {
            Some(u) => user_data(u)?,
            None => vec![],
        },
        mappings: d
            .items("BlockDeviceMappings")
            .iter()
            .map(|m| {
                let o = mapping(m);
                TemplateMapping {
                    mapping: o.mapping,
                    delete_on_termination: o.delete_on_termination,
                }
            })
            .collect(),
        key_name: d.str("KeyName").to_string(),
        iam_instance_profile: match d.get("IamInstanceProfile") {
            Some(p) => match (p.opt_str("Arn"), p.opt_str("Name")) {
                (Some(arn), _) if !arn.is_empty() => arn.to_string(),
                (_, Some(name)) => name.to_string(),
                _ => String::new(),
            },
            None => String::new(),
        },
        availability_zone: placement.str("AvailabilityZone").to_string(),
        group_name: placement.str("GroupName").to_string(),
        partition_number: i32::try_from(placement.int("PartitionNumber").unwrap_or(0))
            .map_err(|_| ApiError::invalid("PartitionNumber is out of range."))?,
        security_group_ids: d.strs("SecurityGroupIds"),
        shutdown_behavior: d.str("InstanceInitiatedShutdownBehavior").to_string(),
        disable_api_termination: d.bool("DisableApiTermination"),
        tags: d
            .items("TagSpecifications")
            .iter()
            .flat_map(|s| tags_in(s.items("Tags")))
            .collect(),
    })
}

fn data(d: &TemplateData) -> Value {
    let placement = if d.availability_zone.is_empty() && d.group_name.is_empty() {
        Value::Null
    } else {
        Value::obj([
            ("AvailabilityZone", nonempty(&d.availability_zone)),
            ("GroupName", nonempty(&d.group_name)),
            (
                "PartitionNumber",
                if d.partition_number > 0 {
                    d.partition_number.into()
                } else {
                    Value::Null
                },
            ),
        ])
    };
    let list_or_null = |v: Value| match &v {
        Value::List(l) if l.is_empty() => Value::Null,
        _ => v,
    };
    Value::obj([
        ("ImageId", nonempty(&d.image_id)),
        ("InstanceType", nonempty(&d.instance_type)),
        (
            "UserData",
            if d.user_data.is_empty() {
                Value::Null
            } else {
                base64::engine::general_purpose::STANDARD
                    .encode(&d.user_data)
                    .into()
            },
        ),
        (
            "BlockDeviceMappings",
            list_or_null(Value::list(d.mappings.iter().map(|m| {
                let x = &m.mapping;
                Value::obj([
                    ("DeviceName", (&x.device_name).into()),
                    ("VirtualName", nonempty(&x.virtual_name)),
                    (
                        "NoDevice",
                        if x.no_device { "".into() } else { Value::Null },
                    ),
                    (
                        "Ebs",
                        if x.virtual_name.is_empty() && !x.no_device {
                            Value::obj([
                                ("SnapshotId", nonempty(&x.snapshot_id)),
                                (
                                    "VolumeSize",
                                    if x.volume_size > 0 {
                                        x.volume_size.into()
                                    } else {
                                        Value::Null
                                    },
                                ),
                                ("VolumeType", nonempty(&x.volume_type)),
                                (
                                    "DeleteOnTermination",
                                    m.delete_on_termination.map(Value::from).into(),
                                ),
                            ])
                        } else {
                            Value::Null
                        },
                    ),
                ])
            }))),
        ),
        ("KeyName", nonempty(&d.key_name)),
        (
            "IamInstanceProfile",
            if d.iam_instance_profile.is_empty() {
                Value::Null
            } else if d.iam_instance_profile.starts_with("arn:") {
                Value::obj([("Arn", d.iam_instance_profile.as_str().into())])
            } else {
                Value::obj([("Name", d.iam_instance_profile.as_str().into())])
            },
        ),
        ("Placement", placement),
        (
            "SecurityGroupIds",
            list_or_null(Value::list(d.security_group_ids.iter())),
        ),
        (
            "InstanceInitiatedShutdownBehavior",
            nonempty(&d.shutdown_behavior),
        ),
        (
            "DisableApiTermination",
            d.disable_api_termination.map(Value::from).into(),
        ),
        (
            "TagSpecifications",
            if d.tags.is_empty() {
                Value::Null
            } else {
                Value::list([Value::obj([
                    ("ResourceType", "instance".into()),
                    ("Tags", tag_list(&d.tags)),
                ])])
            },
        ),
    ])
}

fn template(t: &Template) -> Value {
    Value::obj([
        ("LaunchTemplateId", (&t.id).into()),
        ("LaunchTemplateName", (&t.name).into()),
        ("CreateTime", Value::Time(t.created)),
        ("CreatedBy", format!("arn:aws:iam::{}:root", t.owner).into()),
        ("DefaultVersionNumber", t.default_version.into()),
        ("LatestVersionNumber", t.latest_version.into()),
        ("Tags", tag_list(&t.tags)),
    ])
}

fn version(t: &Template, v: &Version) -> Value {
    Value::obj([
        ("LaunchTemplateId", (&t.id).into()),
        ("LaunchTemplateName", (&t.name).into()),
        ("VersionNumber", v.version.into()),
        ("VersionDescription", nonempty(&v.description)),
        ("CreateTime", Value::Time(v.created)),
        ("CreatedBy", format!("arn:aws:iam::{}:root", t.owner).into()),
        ("DefaultVersion", (v.version == t.default_version).into()),
        ("LaunchTemplateData", data(&v.data)),
    ])
}

/// A version bound (`MinVersion`/`MaxVersion`, text in EC2's model), 0 when absent.
fn bound(input: &Value, member: &str) -> ApiResult<i64> {
    match input.opt_str(member) {
        None | Some("") => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::invalid(format!("{member} must be a version number."))),
    }
}

/// CreateLaunchTemplate.
pub async fn create(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let t = ctx
        .cloud
        .create_launch_template_regional(
            ctx.account(),
            input.str("LaunchTemplateName"),
            input.str("VersionDescription"),
            data_in(input.get("LaunchTemplateData"))?,
            tags_for(input, "launch-template"),
        )
        .await?;
    Ok(Value::obj([("LaunchTemplate", template(&t))]))
}

/// CreateLaunchTemplateVersion.
pub async fn create_version(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let (t, v) = ctx
        .cloud
        .create_launch_template_version_regional(
            ctx.account(),
            input.str("LaunchTemplateId"),
            input.str("LaunchTemplateName"),
            input.str("SourceVersion"),
            input.str("VersionDescription"),
            data_in(input.get("LaunchTemplateData"))?,
        )
        .await?;
    Ok(Value::obj([("LaunchTemplateVersion", version(&t, &v))]))
}

/// ModifyLaunchTemplate (the default version).
pub async fn modify(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let t = ctx
        .cloud
        .modify_launch_template_regional(
            ctx.account(),
            input.str("LaunchTemplateId"),
            input.str("LaunchTemplateName"),
            input.str("DefaultVersion"),
        )
        .await?;
    Ok(Value::obj([("LaunchTemplate", template(&t))]))
}

/// DescribeLaunchTemplates.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_launch_templates(
        ctx.account(),
        &input.strs("LaunchTemplateIds"),
        &input.strs("LaunchTemplateNames"),
        &filters(input),
    )?;
    let (list, next) = super::page(list, input)?;
    Ok(Value::obj([
        ("LaunchTemplates", Value::list(list.iter().map(template))),
        ("NextToken", next),
    ]))
}

/// DescribeLaunchTemplateVersions (of one template, as strato keeps them).
pub fn describe_versions(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if !input.items("Filters").is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "Filters on DescribeLaunchTemplateVersions are not supported by strato: name the template.",
        ));
    }
    let (t, list) = ctx.cloud.describe_launch_template_versions(
        ctx.account(),
        input.str("LaunchTemplateId"),
        input.str("LaunchTemplateName"),
        &input.strs("Versions"),
        bound(input, "MinVersion")?,
        bound(input, "MaxVersion")?,
    )?;
    let (list, next) = super::page(list, input)?;
    Ok(Value::obj([
        (
            "LaunchTemplateVersions",
            Value::list(list.iter().map(|v| version(&t, v))),
        ),
        ("NextToken", next),
    ]))
}

/// DeleteLaunchTemplate.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let t = ctx
        .cloud
        .delete_launch_template_regional(
            ctx.account(),
            input.str("LaunchTemplateId"),
            input.str("LaunchTemplateName"),
        )
        .await?;
    Ok(Value::obj([("LaunchTemplate", template(&t))]))
}
