//! Launch templates: named sets of immutable, numbered versions of RunInstances parameters
//! (versions 1, 2, …; one is the default), and how RunInstances uses one: the version's
//! parameters fill whatever the request leaves empty, and the request's own win.

use super::launch::{check_device, Override, RunRequest, TemplateRef, MAX_USER_DATA};
use crate::cloud::filters::{self, Filter};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::launch_templates::{Added, Template, TemplateData, Version};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// Templates per account (EC2: 5,000 per region).
pub const MAX_TEMPLATES: usize = 5000;
/// Versions per template (EC2: 10,000).
pub const MAX_VERSIONS: i64 = 10_000;
/// Longest VersionDescription (EC2: 255 characters).
pub const MAX_DESCRIPTION: usize = 255;

/// Filter names of DescribeLaunchTemplates.
pub const FILTERS: &[&str] = &["launch-template-name", "launch-template-id", "tag-key"];

/// Tag keys EC2 puts on instances launched from a template.
pub const TAG_TEMPLATE_ID: &str = "aws:ec2launchtemplate:id";
/// See [`TAG_TEMPLATE_ID`].
pub const TAG_TEMPLATE_VERSION: &str = "aws:ec2launchtemplate:version";

/// A version as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// `$Default` (or nothing).
    Default,
    /// `$Latest`.
    Latest,
    /// A number.
    Number(i64),
}

/// Parses `$Default`, `$Latest` or a version number.
pub fn parse_version(s: &str) -> ApiResult<VersionSpec> {
    match s {
        "" | "$Default" => Ok(VersionSpec::Default),
        "$Latest" => Ok(VersionSpec::Latest),
        n => match n.parse::<i64>() {
            Ok(v) if v >= 1 => Ok(VersionSpec::Number(v)),
            _ => Err(ApiError::invalid(format!(
                "Invalid launch template version '{}': use $Latest, $Default or a number.",
                n.chars().take(32).collect::<String>()
            ))),
        },
    }
}

/// Checks a template name: 3 to 128 of `A-Z a-z 0-9 ( ) . - / _`.
pub fn check_template_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::missing("LaunchTemplateName"));
    }
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"().-/_".contains(&b));
    if !ok {
        return Err(ApiError::new(
            ErrorCode::InvalidLaunchTemplateNameMalformedException,
            format!(
                "The launch template name '{}' is not valid: use 3 to 128 characters of \
                 A-Z, a-z, 0-9, and ( ) . - / _",
                name.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// The light checks EC2 makes of template data: well-formed IDs, known words, sizes.
/// Whether the AMI exists and the type fits is checked at launch.
pub fn check_data(d: &TemplateData) -> ApiResult<()> {
    if !d.image_id.is_empty() {
        ids::check(Kind::Image, &d.image_id)?;
    }
    ids::check_all(Kind::SecurityGroup, &d.security_group_ids)?;
    if !matches!(d.shutdown_behavior.as_str(), "" | "stop" | "terminate") {
        return Err(ApiError::invalid(
            "InstanceInitiatedShutdownBehavior must be stop or terminate.",
        ));
    }
    if d.user_data.len() > MAX_USER_DATA {
        return Err(ApiError::invalid(format!(
            "User data is limited to {MAX_USER_DATA} bytes; got {}.",
            d.user_data.len()
        )));
    }
    if d.partition_number < 0 {
        return Err(ApiError::invalid("PartitionNumber must not be negative."));
    }
    for m in &d.mappings {
        check_device(&m.mapping.device_name)?;
    }
    Ok(())
}

/// `top` over `base`: each parameter `top` gives replaces `base`'s whole (a version made
/// from a source version).
pub fn overlay(base: &TemplateData, top: &TemplateData) -> TemplateData {
    let s = |t: &String, b: &String| if t.is_empty() { b.clone() } else { t.clone() };
    let v = |t: &Vec<String>, b: &Vec<String>| if t.is_empty() { b.clone() } else { t.clone() };
    let (availability_zone, group_name, partition_number) =
        if top.availability_zone.is_empty() && top.group_name.is_empty() {
            (
                base.availability_zone.clone(),
                base.group_name.clone(),
                base.partition_number,
            )
        } else {
            (
                top.availability_zone.clone(),
                top.group_name.clone(),
                top.partition_number,
            )
        };
    TemplateData {
        image_id: s(&top.image_id, &base.image_id),
        instance_type: s(&top.instance_type, &base.instance_type),
        user_data: if top.user_data.is_empty() {
            base.user_data.clone()
        } else {
            top.user_data.clone()
        },
        mappings: if top.mappings.is_empty() {
            base.mappings.clone()
        } else {
            top.mappings.clone()
        },
        key_name: s(&top.key_name, &base.key_name),
        iam_instance_profile: s(&top.iam_instance_profile, &base.iam_instance_profile),
        availability_zone,
        group_name,
        partition_number,
        security_group_ids: v(&top.security_group_ids, &base.security_group_ids),
        shutdown_behavior: s(&top.shutdown_behavior, &base.shutdown_behavior),
        disable_api_termination: top.disable_api_termination.or(base.disable_api_termination),
        tags: if top.tags.is_empty() {
            base.tags.clone()
        } else {
            top.tags.clone()
        },
    }
}

/// Fills what a RunInstances leaves empty from a template version, and tags the instances
/// with the template and version as EC2 does. The request's tags win over the template's of
/// the same key.
pub fn fill(mut req: RunRequest, t: &Template, v: &Version) -> RunRequest {
    let d = &v.data;
    let take = |r: &mut String, d: &String| {
        if r.is_empty() {
            *r = d.clone();
        }
    };
    take(&mut req.image_id, &d.image_id);
    take(&mut req.instance_type, &d.instance_type);
    take(&mut req.key_name, &d.key_name);
    take(&mut req.iam_instance_profile, &d.iam_instance_profile);
    take(&mut req.shutdown_behavior, &d.shutdown_behavior);
    // A subnet names the AZ itself.
    if req.subnet_id.is_empty() {
        take(&mut req.availability_zone, &d.availability_zone);
    }
    if req.group_name.is_empty() {
        req.group_name = d.group_name.clone();
        if req.partition_number == 0 {
            req.partition_number = d.partition_number;
        }
    }
    if req.security_group_ids.is_empty() && req.security_group_names.is_empty() {
        req.security_group_ids = d.security_group_ids.clone();
    }
    if req.user_data.is_empty() {
        req.user_data = d.user_data.clone();
    }
    if req.mappings.is_empty() {
        req.mappings = d
            .mappings
            .iter()
            .map(|m| Override {
                mapping: m.mapping.clone(),
                delete_on_termination: m.delete_on_termination,
            })
            .collect();
    }
    if req.disable_api_termination.is_none() {
        req.disable_api_termination = d.disable_api_termination;
    }
    let mut tags: Vec<Tag> = d
        .tags
        .iter()
        .filter(|t| !req.tags.iter().any(|r| r.key == t.key))
        .cloned()
        .collect();
    tags.append(&mut req.tags);
    tags.retain(|t| t.key != TAG_TEMPLATE_ID && t.key != TAG_TEMPLATE_VERSION);
    tags.push(Tag {
        key: TAG_TEMPLATE_ID.into(),
        value: t.id.clone(),
    });
    tags.push(Tag {
        key: TAG_TEMPLATE_VERSION.into(),
        value: v.version.to_string(),
    });
    req.tags = tags;
    req
}

fn version_not_found(t: &Template, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidLaunchTemplateIdVersionNotFound,
        format!(
            "Could not find launch template version {} for launch template {}.",
            what.chars().take(32).collect::<String>(),
            t.id
        ),
    )
}

fn name_not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidLaunchTemplateNameNotFoundException,
        format!(
            "The specified launch template, with template name {}, does not exist.",
            name.chars().take(128).collect::<String>()
        ),
    )
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::invalid(format!(
            "VersionDescription is limited to {MAX_DESCRIPTION} characters."
        )));
    }
    Ok(())
}

impl Cloud {
    /// One of an account's templates by ID or name.
    pub fn owned_template(&self, account: &str, id: &str, name: &str) -> ApiResult<Template> {
        if !id.is_empty() {
            ids::check(Kind::LaunchTemplate, id)?;
            return match self.db.template(id)? {
                Some(t) if t.owner == account => Ok(t),
                _ => Err(ApiError::new(
                    ErrorCode::InvalidLaunchTemplateIdNotFound,
                    format!(
                        "The specified launch template, with template ID {id}, does not exist."
                    ),
                )),
            };
        }
        if name.is_empty() {
            return Err(ApiError::missing("LaunchTemplateId or LaunchTemplateName"));
        }
        self.db
            .template_by_name(account, name)?
            .ok_or_else(|| name_not_found(name))
    }

    /// The version a spec names.
    pub fn template_version(&self, t: &Template, spec: &str) -> ApiResult<Version> {
        let n = match parse_version(spec)? {
            VersionSpec::Default => t.default_version,
            VersionSpec::Latest => t.latest_version,
            VersionSpec::Number(n) => n,
        };
        self.db
            .template_version(&t.id, n)?
            .ok_or_else(|| version_not_found(t, spec))
    }

    /// CreateLaunchTemplate: the template and its version 1, which is the default.
    pub fn create_launch_template(
        &self,
        account: &str,
        name: &str,
        description: &str,
        data: TemplateData,
        tags: Vec<Tag>,
    ) -> ApiResult<Template> {
        self.create_launch_template_limited(account, name, description, data, tags, MAX_TEMPLATES)
    }

    fn create_launch_template_limited(
        &self,
        account: &str,
        name: &str,
        description: &str,
        data: TemplateData,
        tags: Vec<Tag>,
        limit: usize,
    ) -> ApiResult<Template> {
        check_template_name(name)?;
        check_description(description)?;
        check_data(&data)?;
        let now = crate::db::now_s();
        let t = Template {
            id: ids::new_id(Kind::LaunchTemplate),
            owner: account.to_string(),
            name: name.to_string(),
            default_version: 1,
            latest_version: 1,
            tags,
            created: now,
        };
        let v = Version {
            template_id: t.id.clone(),
            version: 1,
            description: description.to_string(),
            data,
            created: now,
        };
        match self.db.insert_template(&t, &v, limit)? {
            Added::Done(_) => Ok(t),
            Added::Duplicate => Err(ApiError::new(
                ErrorCode::InvalidLaunchTemplateNameAlreadyExistsException,
                format!("Launch template name already in use: {name}."),
            )),
            Added::Limit | Added::Gone => Err(ApiError::new(
                ErrorCode::LaunchTemplateLimitExceeded,
                format!("An account may have at most {limit} launch templates; delete one first."),
            )),
        }
    }

    /// CreateLaunchTemplateVersion: the next version, from `data` alone or `data` over a
    /// source version.
    pub fn create_launch_template_version(
        &self,
        account: &str,
        id: &str,
        name: &str,
        source: &str,
        description: &str,
        data: TemplateData,
    ) -> ApiResult<(Template, Version)> {
        self.create_version_limited(account, id, name, source, description, data, MAX_VERSIONS)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_version_limited(
        &self,
        account: &str,
        id: &str,
        name: &str,
        source: &str,
        description: &str,
        data: TemplateData,
        limit: i64,
    ) -> ApiResult<(Template, Version)> {
        let t = self.owned_template(account, id, name)?;
        check_description(description)?;
        check_data(&data)?;
        let data = if source.is_empty() {
            data
        } else {
            overlay(&self.template_version(&t, source)?.data, &data)
        };
        match self
            .db
            .add_template_version(&t.id, description, &data, crate::db::now_s(), limit)?
        {
            Added::Done(n) => {
                let t = self.owned_template(account, &t.id, "")?;
                let v = self.template_version(&t, &n.to_string())?;
                Ok((t, v))
            }
            Added::Limit => Err(ApiError::new(
                ErrorCode::LaunchTemplateVersionLimitExceeded,
                format!(
                    "Launch template {} has {limit} versions, the most a template may have; \
                     create a new template.",
                    t.id
                ),
            )),
            Added::Duplicate | Added::Gone => Err(ApiError::new(
                ErrorCode::InvalidLaunchTemplateIdNotFound,
                format!(
                    "The specified launch template, with template ID {}, does not exist.",
                    t.id
                ),
            )),
        }
    }

    /// ModifyLaunchTemplate: sets the default version.
    pub fn modify_launch_template(
        &self,
        account: &str,
        id: &str,
        name: &str,
        default_version: &str,
    ) -> ApiResult<Template> {
        let t = self.owned_template(account, id, name)?;
        if default_version.is_empty() {
            return Err(ApiError::missing("DefaultVersion"));
        }
        let v = self.template_version(&t, default_version)?;
        self.db.set_default_version(&t.id, v.version)?;
        self.owned_template(account, &t.id, "")
    }

    /// DescribeLaunchTemplates: the named ones (each must exist) or all, filtered.
    pub fn describe_launch_templates(
        &self,
        account: &str,
        template_ids: &[String],
        names: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<Template>> {
        filters::check_names(f, FILTERS)?;
        ids::check_all(Kind::LaunchTemplate, template_ids)?;
        let all = self.db.templates(account)?;
        if let Some(n) = names.iter().find(|n| !all.iter().any(|t| &t.name == *n)) {
            return Err(name_not_found(n));
        }
        if let Some(id) = template_ids
            .iter()
            .find(|id| !all.iter().any(|t| &t.id == *id))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidLaunchTemplateIdNotFound,
                format!("The specified launch template, with template ID {id}, does not exist."),
            ));
        }
        let mut out = Vec::new();
        for t in all {
            if (!names.is_empty() || !template_ids.is_empty())
                && !names.contains(&t.name)
                && !template_ids.contains(&t.id)
            {
                continue;
            }
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "launch-template-name" => one(&t.name),
                    "launch-template-id" => one(&t.id),
                    n => filters::tag_values(&t.tags, n),
                }
            })?;
            if ok {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// DescribeLaunchTemplateVersions: the versions named (`$Latest`, `$Default`, numbers;
    /// each must exist), else every version within `min..=max` (0: unbounded).
    pub fn describe_launch_template_versions(
        &self,
        account: &str,
        id: &str,
        name: &str,
        versions: &[String],
        min: i64,
        max: i64,
    ) -> ApiResult<(Template, Vec<Version>)> {
        let t = self.owned_template(account, id, name)?;
        if min < 0 || max < 0 {
            return Err(ApiError::invalid(
                "MinVersion and MaxVersion must not be negative.",
            ));
        }
        let mut out: Vec<Version> = if versions.is_empty() {
            self.db.template_versions(&t.id)?
        } else {
            versions
                .iter()
                .map(|v| self.template_version(&t, v))
                .collect::<ApiResult<_>>()?
        };
        out.retain(|v| (min == 0 || v.version >= min) && (max == 0 || v.version <= max));
        out.sort_by_key(|v| v.version);
        out.dedup_by_key(|v| v.version);
        Ok((t, out))
    }

    /// DeleteLaunchTemplate, with all its versions; returns what was deleted.
    pub fn delete_launch_template(
        &self,
        account: &str,
        id: &str,
        name: &str,
    ) -> ApiResult<Template> {
        let t = self.owned_template(account, id, name)?;
        self.db.delete_template(&t.id)?;
        Ok(t)
    }

    /// RunInstances' use of a template: the request with the version's parameters filled
    /// in.
    pub fn apply_launch_template(
        &self,
        account: &str,
        r: &TemplateRef,
        req: RunRequest,
    ) -> ApiResult<RunRequest> {
        let t = self.owned_template(account, &r.id, &r.name)?;
        let v = self.template_version(&t, &r.version)?;
        Ok(fill(req, &t, &v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::launch_templates::TemplateMapping;

    fn data() -> TemplateData {
        TemplateData {
            image_id: "ami-0000000000000000a".into(),
            instance_type: "custom-1-64".into(),
            user_data: b"from template".to_vec(),
            key_name: "k".into(),
            iam_instance_profile: "web".into(),
            availability_zone: "home-1b".into(),
            disable_api_termination: Some(true),
            tags: vec![
                Tag {
                    key: "Name".into(),
                    value: "tpl".into(),
                },
                Tag {
                    key: "env".into(),
                    value: "prod".into(),
                },
            ],
            mappings: vec![TemplateMapping {
                mapping: crate::db::images::Mapping {
                    device_name: "/dev/vdb".into(),
                    volume_size: 2,
                    ..Default::default()
                },
                delete_on_termination: Some(true),
            }],
            ..Default::default()
        }
    }

    fn tv() -> (Template, Version) {
        let t = Template {
            id: "lt-0000000000000000a".into(),
            owner: "111111111111".into(),
            name: "web".into(),
            default_version: 1,
            latest_version: 2,
            tags: vec![],
            created: 1,
        };
        let v = Version {
            template_id: t.id.clone(),
            version: 2,
            description: String::new(),
            data: data(),
            created: 1,
        };
        (t, v)
    }

    #[test]
    fn the_template_fills_only_what_the_request_leaves_empty() {
        let (t, v) = tv();
        let got = fill(RunRequest::default(), &t, &v);
        assert_eq!(got.image_id, "ami-0000000000000000a");
        assert_eq!(got.instance_type, "custom-1-64");
        assert_eq!(got.user_data, b"from template");
        assert_eq!(got.availability_zone, "home-1b");
        assert_eq!(got.iam_instance_profile, "web");
        assert_eq!(got.disable_api_termination, Some(true));
        assert_eq!(got.mappings.len(), 1);
        assert_eq!(got.mappings[0].delete_on_termination, Some(true));
        let tag =
            |r: &RunRequest, k: &str| r.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        assert_eq!(
            tag(&got, TAG_TEMPLATE_ID).as_deref(),
            Some("lt-0000000000000000a")
        );
        assert_eq!(tag(&got, TAG_TEMPLATE_VERSION).as_deref(), Some("2"));

        let explicit = RunRequest {
            instance_type: "t3.micro".into(),
            subnet_id: "subnet-0000000000000000a".into(),
            disable_api_termination: Some(false),
            tags: vec![Tag {
                key: "Name".into(),
                value: "mine".into(),
            }],
            ..Default::default()
        };
        let got = fill(
            RunRequest {
                iam_instance_profile: "ops".into(),
                ..explicit
            },
            &t,
            &v,
        );
        assert_eq!(got.iam_instance_profile, "ops");
        assert_eq!(got.instance_type, "t3.micro");
        assert_eq!(got.image_id, "ami-0000000000000000a");
        // A subnet picks the AZ, so the template's AZ does not apply.
        assert_eq!(got.availability_zone, "");
        assert_eq!(got.disable_api_termination, Some(false));
        assert_eq!(tag(&got, "Name").as_deref(), Some("mine"));
        assert_eq!(tag(&got, "env").as_deref(), Some("prod"));
        assert_eq!(got.tags.iter().filter(|t| t.key == "Name").count(), 1);
    }

    #[test]
    fn a_new_version_replaces_whole_parameters_of_its_source() {
        let base = data();
        let top = TemplateData {
            instance_type: "t3.small".into(),
            group_name: "pg".into(),
            tags: vec![Tag {
                key: "x".into(),
                value: "y".into(),
            }],
            ..Default::default()
        };
        let got = overlay(&base, &top);
        assert_eq!(got.instance_type, "t3.small");
        assert_eq!(got.image_id, base.image_id);
        assert_eq!(got.user_data, base.user_data);
        // Placement is one parameter: the new one replaces the AZ too.
        assert_eq!(
            (got.group_name.as_str(), got.availability_zone.as_str()),
            ("pg", "")
        );
        assert_eq!(got.tags.len(), 1);
        assert_eq!(got.disable_api_termination, Some(true));
    }

    #[test]
    fn names_versions_and_data_are_checked() {
        assert!(check_template_name("web-1_(a)/b.c").is_ok());
        for bad in ["ab", "has space", &"x".repeat(129), "ünï"] {
            assert_eq!(
                check_template_name(bad).unwrap_err().code,
                "InvalidLaunchTemplateName.MalformedException"
            );
        }
        assert_eq!(parse_version("").unwrap(), VersionSpec::Default);
        assert_eq!(parse_version("$Latest").unwrap(), VersionSpec::Latest);
        assert_eq!(parse_version("7").unwrap(), VersionSpec::Number(7));
        for bad in ["0", "-1", "$latest", "x"] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        assert!(check_data(&data()).is_ok());
        for bad in [
            TemplateData {
                image_id: "i-0000000000000000a".into(),
                ..Default::default()
            },
            TemplateData {
                shutdown_behavior: "hibernate".into(),
                ..Default::default()
            },
            TemplateData {
                user_data: vec![0; MAX_USER_DATA + 1],
                ..Default::default()
            },
        ] {
            assert!(check_data(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_and_versions_through_the_cloud() {
        let (_dir, c) = crate::cloud::test_cloud();
        let a = "111111111111";
        let t = c
            .create_launch_template_limited(a, "web", "v1", data(), vec![], 2)
            .unwrap();
        let e = c
            .create_launch_template_limited(a, "web", "", data(), vec![], 2)
            .unwrap_err();
        assert_eq!(e.code, "InvalidLaunchTemplateName.AlreadyExistsException");
        c.create_launch_template_limited(a, "db1", "", data(), vec![], 2)
            .unwrap();
        let e = c
            .create_launch_template_limited(a, "db2", "", data(), vec![], 2)
            .unwrap_err();
        assert_eq!(e.code, "LaunchTemplateLimitExceeded");
        // Another account has its own names.
        c.create_launch_template_limited("222222222222", "web", "", data(), vec![], 2)
            .unwrap();

        let small = TemplateData {
            instance_type: "t3.small".into(),
            ..Default::default()
        };
        let (_, v2) = c
            .create_version_limited(a, &t.id, "", "1", "v2", small.clone(), 3)
            .unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.data.instance_type, "t3.small");
        assert_eq!(v2.data.image_id, "ami-0000000000000000a");
        let (_, v3) = c
            .create_version_limited(a, "", "web", "", "v3", small.clone(), 3)
            .unwrap();
        assert_eq!(v3.data.image_id, "");
        let e = c
            .create_version_limited(a, &t.id, "", "", "v4", small, 3)
            .unwrap_err();
        assert_eq!(e.code, "LaunchTemplateVersionLimitExceeded");

        // $Default stays 1 until modified; $Latest follows.
        assert_eq!(
            c.template_version(&c.owned_template(a, &t.id, "").unwrap(), "")
                .unwrap()
                .version,
            1
        );
        let m = c.modify_launch_template(a, "", "web", "2").unwrap();
        assert_eq!((m.default_version, m.latest_version), (2, 3));
        let e = c.modify_launch_template(a, "", "web", "9").unwrap_err();
        assert_eq!(e.code, "InvalidLaunchTemplateId.VersionNotFound");
        let (_, vs) = c
            .describe_launch_template_versions(
                a,
                &t.id,
                "",
                &["$Latest".into(), "$Default".into()],
                0,
                0,
            )
            .unwrap();
        assert_eq!(vs.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 3]);
        let (_, vs) = c
            .describe_launch_template_versions(a, &t.id, "", &[], 2, 0)
            .unwrap();
        assert_eq!(vs.len(), 2);

        let req = c
            .apply_launch_template(
                a,
                &TemplateRef {
                    name: "web".into(),
                    ..Default::default()
                },
                RunRequest::default(),
            )
            .unwrap();
        assert_eq!(req.instance_type, "t3.small");
        let e = c
            .apply_launch_template(
                a,
                &TemplateRef {
                    name: "nope".into(),
                    ..Default::default()
                },
                RunRequest::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, "InvalidLaunchTemplateName.NotFoundException");
        let e = c
            .apply_launch_template(
                "222222222222",
                &TemplateRef {
                    id: t.id.clone(),
                    ..Default::default()
                },
                RunRequest::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, "InvalidLaunchTemplateId.NotFound");

        let gone = c.delete_launch_template(a, &t.id, "").unwrap();
        assert_eq!(gone.name, "web");
        assert_eq!(
            c.describe_launch_templates(a, &[], &["web".into()], &[])
                .unwrap_err()
                .code,
            "InvalidLaunchTemplateName.NotFoundException"
        );
        assert_eq!(
            c.describe_launch_templates(a, &[], &[], &[]).unwrap().len(),
            1
        );
    }
}
