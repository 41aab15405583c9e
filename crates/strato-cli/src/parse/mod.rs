//! Parsers for structured arguments, used as clap value parsers so that a bad argument
//! is a usage error (exit status 2) reported against its flag.
//!
//! Each structured argument accepts the AWS CLI's three spellings: shorthand
//! (`Key=a,Value=b`), JSON (`{"Key":"a","Value":"b"}`), and `file://PATH` (or
//! `fileb://PATH`) holding either. Both syntaxes become a [`serde_json::Value`] first and
//! then go through one typed conversion that rejects unknown keys, so a typo such as
//! `VolumSize` fails loudly instead of being ignored.

mod control;
mod fields;
pub mod security_groups;
mod shorthand;

pub use control::{launch_template, launch_template_data, public_key_material, PublicKey};

use std::borrow::Cow;

use fields::Fields;
use serde_json::Value;
use strato_proto::v1::{
    BlockDeviceMapping, DeleteTag, EbsBlockDevice, Filter, InstanceMetadataOptions,
    LaunchPermission, NetworkInterfaceAttachmentChanges, Placement, Tag,
};

/// Why a structured argument is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Malformed shorthand syntax.
    #[error("invalid shorthand: {0}")]
    Shorthand(#[from] shorthand::SyntaxError),
    /// Malformed JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A `file://` argument that cannot be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The path after `file://`.
        path: String,
        /// What reading it reported.
        source: std::io::Error,
    },
    /// A key that the structure does not have.
    #[error("unknown key {key:?} in {context}")]
    UnknownKey {
        /// The offending key.
        key: String,
        /// The structure it appeared in.
        context: &'static str,
    },
    /// A required key that is absent.
    #[error("{context} needs {key}")]
    Missing {
        /// The missing key.
        key: &'static str,
        /// The structure lacking it.
        context: &'static str,
    },
    /// A value of the wrong kind, or otherwise unacceptable.
    #[error("{context}: {message}")]
    Invalid {
        /// The structure holding the value.
        context: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Several values from one argument (a JSON list yields many), flattened by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Many<T>(pub Vec<T>);

/// Concatenates the values of every occurrence of a repeated argument.
pub fn flatten<T>(occurrences: Vec<Many<T>>) -> Vec<T> {
    occurrences.into_iter().flat_map(|many| many.0).collect()
}

/// Raw user data; a newtype so that clap does not take `Vec<u8>` for a repeated argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData(pub Vec<u8>);

/// `--count N` or `--count MIN:MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Fewest instances to launch.
    pub min: i32,
    /// Most instances to launch.
    pub max: i32,
}

/// One `--tag-specifications` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSpecification {
    /// `instance`, `volume`, `snapshot`, ...
    pub resource_type: String,
    /// The tags for resources of that type.
    pub tags: Vec<Tag>,
}

/// The `--launch-permission` change of modify-image-attribute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchPermissionChange {
    /// Permissions to grant.
    pub add: Vec<LaunchPermission>,
    /// Permissions to revoke.
    pub remove: Vec<LaunchPermission>,
}

/// Parses `--count`: `N` or `MIN:MAX` with 1 <= MIN <= MAX.
pub fn count(raw: &str) -> Result<Count, ParseError> {
    let invalid = || ParseError::Invalid {
        context: "count",
        message: format!("{raw:?} is not N or MIN:MAX with 1 <= MIN <= MAX"),
    };
    let (min, max) = raw.split_once(':').unwrap_or((raw, raw));
    let min: i32 = min.trim().parse().map_err(|_| invalid())?;
    let max: i32 = max.trim().parse().map_err(|_| invalid())?;
    if min < 1 || min > max {
        return Err(invalid());
    }
    Ok(Count { min, max })
}

/// Parses `--user-data`: `file://PATH` and `fileb://PATH` read the file as is; anything
/// else is the user data itself.
pub fn user_data(raw: &str) -> Result<UserData, ParseError> {
    match file_path(raw) {
        Some(path) => std::fs::read(path)
            .map(UserData)
            .map_err(|source| ParseError::File {
                path: path.to_owned(),
                source,
            }),
        None => Ok(UserData(raw.as_bytes().to_vec())),
    }
}

/// Parses one `--filters` argument: `Name=N,Values=a,b` or JSON (an object or a list).
pub fn filters(raw: &str) -> Result<Many<Filter>, ParseError> {
    each(raw, "filter", |mut f| {
        let name = f.required_string("Name")?;
        let values = f.strings("Values")?;
        if values.is_empty() {
            return Err(f.missing("Values"));
        }
        f.finish()?;
        Ok(Filter { name, values })
    })
}

/// Parses one `--tags` argument: `Key=k,Value=v` or JSON.
pub fn tags(raw: &str) -> Result<Many<Tag>, ParseError> {
    each(raw, "tag", tag)
}

/// Parses one `--tags` argument of delete-tags: `Key=k` (any value) or `Key=k,Value=v`.
pub fn delete_tags(raw: &str) -> Result<Many<DeleteTag>, ParseError> {
    each(raw, "tag", |mut f| {
        let key = f.required_string("Key")?;
        let value = f.string("Value")?;
        f.finish()?;
        Ok(DeleteTag { key, value })
    })
}

/// Parses one `--tag-specifications` argument:
/// `ResourceType=instance,Tags=[{Key=k,Value=v}]` or JSON.
pub fn tag_specifications(raw: &str) -> Result<Many<TagSpecification>, ParseError> {
    each(raw, "tag specification", |mut f| {
        let resource_type = f.required_string("ResourceType")?;
        let tags = f
            .objects("Tags")?
            .into_iter()
            .map(|t| tag(Fields::new(t, "tag")?))
            .collect::<Result<_, _>>()?;
        f.finish()?;
        Ok(TagSpecification {
            resource_type,
            tags,
        })
    })
}

/// Parses `--placement`: `AvailabilityZone=az,GroupName=g,PartitionNumber=n` or JSON.
pub fn placement(raw: &str) -> Result<Placement, ParseError> {
    let mut f = Fields::new(document(raw)?, "placement")?;
    let placement = Placement {
        availability_zone: f.string("AvailabilityZone")?.unwrap_or_default(),
        group_name: f.string("GroupName")?.unwrap_or_default(),
        partition_number: f.int32("PartitionNumber")?.unwrap_or_default(),
        group_id: f.string("GroupId")?.unwrap_or_default(),
        ..Default::default()
    };
    f.finish()?;
    Ok(placement)
}

/// Parses `--metadata-options` (shorthand or JSON).
pub fn metadata_options(raw: &str) -> Result<InstanceMetadataOptions, ParseError> {
    let mut f = Fields::new(document(raw)?, "metadata options")?;
    let o = InstanceMetadataOptions {
        http_tokens: f.string("HttpTokens")?.unwrap_or_default(),
        http_put_response_hop_limit: f.int32("HttpPutResponseHopLimit")?.unwrap_or_default(),
        http_endpoint: f.string("HttpEndpoint")?.unwrap_or_default(),
        instance_metadata_tags: f.string("InstanceMetadataTags")?.unwrap_or_default(),
        http_protocol_ipv6: f.string("HttpProtocolIpv6")?.unwrap_or_default(),
        ..Default::default()
    };
    f.finish()?;
    Ok(o)
}

/// Parses one `--block-device-mappings` argument, usually a JSON list in the AWS CLI's
/// shape, or shorthand such as `DeviceName=/dev/vdb,Ebs={VolumeSize=1}`.
pub fn block_device_mappings(raw: &str) -> Result<Many<BlockDeviceMapping>, ParseError> {
    each(raw, "block device mapping", block_device_mapping)
}

/// One block device mapping object.
fn block_device_mapping(mut f: Fields) -> Result<BlockDeviceMapping, ParseError> {
    let device_name = f.required_string("DeviceName")?;
    let virtual_name = f.string("VirtualName")?.unwrap_or_default();
    // The AWS API spells "no device" as `"NoDevice": ""`; any value but false counts.
    let no_device = match f.take("NoDevice") {
        None | Some(Value::Bool(false)) => false,
        Some(_) => true,
    };
    let ebs = f
        .take("Ebs")
        .map(|ebs| ebs_block_device(Fields::new(ebs, "Ebs")?))
        .transpose()?;
    f.finish()?;
    let kinds =
        usize::from(ebs.is_some()) + usize::from(!virtual_name.is_empty()) + usize::from(no_device);
    if kinds != 1 {
        return Err(ParseError::Invalid {
            context: "block device mapping",
            message: format!("{device_name} needs exactly one of Ebs, VirtualName, NoDevice"),
        });
    }
    Ok(BlockDeviceMapping {
        device_name,
        virtual_name,
        no_device,
        ebs,
    })
}

/// Parses `--launch-permission`: `Add=[{UserId=123456789012}],Remove=[{Group=all}]` or
/// the JSON form `{"Add":[{"UserId":"..."}],"Remove":[{"Group":"all"}]}`.
pub fn launch_permission(raw: &str) -> Result<LaunchPermissionChange, ParseError> {
    let mut f = Fields::new(document(raw)?, "launch permission")?;
    let mut list = |key| -> Result<Vec<LaunchPermission>, ParseError> {
        f.objects(key)?
            .into_iter()
            .map(|p| {
                let mut p = Fields::new(p, "launch permission")?;
                let user_id = p.string("UserId")?.unwrap_or_default();
                let group = p.string("Group")?.unwrap_or_default();
                p.finish()?;
                if user_id.is_empty() == group.is_empty() {
                    return Err(p.invalid("each entry needs either UserId or Group"));
                }
                Ok(LaunchPermission { user_id, group })
            })
            .collect()
    };
    let change = LaunchPermissionChange {
        add: list("Add")?,
        remove: list("Remove")?,
    };
    f.finish()?;
    if change.add.is_empty() && change.remove.is_empty() {
        return Err(f.missing("Add or Remove"));
    }
    Ok(change)
}

/// Parses `--attachment` of modify-network-interface-attribute:
/// `AttachmentId=eni-attach-1,DeleteOnTermination=true` or the JSON form.
pub fn attachment_changes(raw: &str) -> Result<NetworkInterfaceAttachmentChanges, ParseError> {
    let mut f = Fields::new(document(raw)?, "attachment")?;
    let changes = NetworkInterfaceAttachmentChanges {
        attachment_id: f.required_string("AttachmentId")?,
        delete_on_termination: f
            .bool("DeleteOnTermination")?
            .ok_or_else(|| f.missing("DeleteOnTermination"))?,
    };
    f.finish()?;
    Ok(changes)
}

/// Parses an AWS `AttributeValue` argument: `Value=text`, `{"Value":"text"}`, or the text
/// itself.
pub fn attribute_value(raw: &str) -> Result<String, ParseError> {
    if !raw.starts_with("Value=") && !raw.starts_with('{') {
        return Ok(raw.to_string());
    }
    let mut f = Fields::new(document(raw)?, "attribute value")?;
    let v = f.required_string("Value")?;
    f.finish()?;
    Ok(v)
}

/// Picks the tags meant for `resource_type` from `--tag-specifications`, plus `--tags`.
///
/// The API tags only the resource a call creates, so a specification for any other
/// resource type is refused rather than silently dropped.
pub fn tags_for(
    resource_type: &str,
    specs: Vec<TagSpecification>,
    mut tags: Vec<Tag>,
) -> Result<Vec<Tag>, String> {
    for spec in specs {
        if spec.resource_type != resource_type {
            return Err(format!(
                "--tag-specifications: ResourceType={} is not supported here, only {resource_type}",
                spec.resource_type
            ));
        }
        tags.extend(spec.tags);
    }
    Ok(tags)
}

fn tag(mut f: Fields) -> Result<Tag, ParseError> {
    let key = f.required_string("Key")?;
    let value = f.string("Value")?.unwrap_or_default();
    f.finish()?;
    Ok(Tag { key, value })
}

fn ebs_block_device(mut f: Fields) -> Result<EbsBlockDevice, ParseError> {
    let delete_on_termination = f.bool("DeleteOnTermination")?;
    let ebs = EbsBlockDevice {
        delete_on_termination: delete_on_termination.unwrap_or_default(),
        has_delete_on_termination: delete_on_termination.is_some(),
        snapshot_id: f.string("SnapshotId")?.unwrap_or_default(),
        volume_size: f.int("VolumeSize")?.unwrap_or_default(),
        volume_type: f.string("VolumeType")?.unwrap_or_default(),
    };
    f.finish()?;
    if ebs.volume_size < 0 {
        return Err(f.invalid("VolumeSize must not be negative"));
    }
    Ok(ebs)
}

/// The path of a `file://` or `fileb://` argument.
fn file_path(raw: &str) -> Option<&str> {
    raw.strip_prefix("file://")
        .or_else(|| raw.strip_prefix("fileb://"))
}

/// Reads a structured argument (following `file://`) into JSON.
fn document(raw: &str) -> Result<Value, ParseError> {
    let text = match file_path(raw) {
        Some(path) => {
            Cow::Owned(
                std::fs::read_to_string(path).map_err(|source| ParseError::File {
                    path: path.to_owned(),
                    source,
                })?,
            )
        }
        None => Cow::Borrowed(raw),
    };
    let text = text.trim();
    if text.starts_with(['[', '{']) {
        Ok(serde_json::from_str(text)?)
    } else {
        Ok(shorthand::parse(text)?)
    }
}

/// Converts every object of a document that is one object or a list of them.
fn each<T>(
    raw: &str,
    context: &'static str,
    convert: impl Fn(Fields) -> Result<T, ParseError>,
) -> Result<Many<T>, ParseError> {
    let items = match document(raw)? {
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| convert(Fields::new(item, context)?))
        .collect::<Result<_, _>>()
        .map(Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("strato-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn counts() {
        assert_eq!(count("3").unwrap(), Count { min: 3, max: 3 });
        assert_eq!(count("1:4").unwrap(), Count { min: 1, max: 4 });
        for bad in ["0", "-1", "4:1", "a", "1:", ":2", "1:2:3", "99999999999"] {
            assert!(count(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn filters_from_shorthand_and_json() {
        let expected = vec![Filter {
            name: "instance-state-name".into(),
            values: vec!["running".into(), "stopped".into()],
        }];
        let shorthand = filters("Name=instance-state-name,Values=running,stopped").unwrap();
        assert_eq!(shorthand.0, expected);
        let json = filters(r#"[{"Name":"instance-state-name","Values":["running","stopped"]}]"#);
        assert_eq!(json.unwrap().0, expected);
        assert_eq!(filters("Name=a,Values=x").unwrap().0[0].values, ["x"]);
    }

    #[test]
    fn rejects_bad_filters() {
        assert!(matches!(
            filters("Name=a").unwrap_err(),
            ParseError::Missing { key: "Values", .. }
        ));
        assert!(matches!(
            filters("Name=a,Values=b,Vals=c").unwrap_err(),
            ParseError::UnknownKey { .. }
        ));
        assert!(matches!(
            filters("[1]").unwrap_err(),
            ParseError::Invalid { .. }
        ));
        assert!(matches!(
            filters("{\"Name\":").unwrap_err(),
            ParseError::Json(_)
        ));
        assert!(matches!(
            filters("Name").unwrap_err(),
            ParseError::Shorthand(_)
        ));
    }

    #[test]
    fn tags_and_tag_specifications() {
        let t = tags("Key=env,Value=prod").unwrap().0;
        assert_eq!(
            t,
            [Tag {
                key: "env".into(),
                value: "prod".into()
            }]
        );
        assert_eq!(tags("Key=empty").unwrap().0[0].value, "");
        assert!(tags("Value=orphan").is_err());

        let specs = tag_specifications("ResourceType=instance,Tags=[{Key=a,Value=b}]").unwrap();
        let tags = tags_for("instance", specs.0.clone(), t.clone()).unwrap();
        assert_eq!(tags.len(), 2);
        let err = tags_for("volume", specs.0, Vec::new()).unwrap_err();
        assert!(err.contains("ResourceType=instance"), "{err}");
    }

    #[test]
    fn placement_parses_numbers_and_rejects_unknown_keys() {
        let p = placement("AvailabilityZone=az1,GroupName=pg,PartitionNumber=2").unwrap();
        assert_eq!(p.availability_zone, "az1");
        assert_eq!(p.group_name, "pg");
        assert_eq!(p.partition_number, 2);
        assert!(placement("PartitionNumber=two").is_err());
        assert!(placement("PartitionNumber=4294967296").is_err());
        assert!(placement("Tenancy=dedicated").is_err());
    }

    #[test]
    fn block_device_mappings_in_the_aws_json_shape() {
        let raw = r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":1,"DeleteOnTermination":true,
            "SnapshotId":"snap-1","VolumeType":"gp3"}},
            {"DeviceName":"/dev/vdc","VirtualName":"ephemeral0"},
            {"DeviceName":"/dev/vdd","NoDevice":""}]"#;
        let bdms = block_device_mappings(raw).unwrap().0;
        assert_eq!(bdms.len(), 3);
        let ebs = bdms[0].ebs.clone().unwrap();
        assert_eq!(
            (
                ebs.volume_size,
                ebs.delete_on_termination,
                ebs.has_delete_on_termination
            ),
            (1, true, true)
        );
        assert_eq!(
            (ebs.snapshot_id.as_str(), ebs.volume_type.as_str()),
            ("snap-1", "gp3")
        );
        assert_eq!(bdms[1].virtual_name, "ephemeral0");
        assert!(bdms[2].no_device && bdms[2].ebs.is_none());

        let short = block_device_mappings("DeviceName=/dev/vdb,Ebs={VolumeSize=2}").unwrap();
        let ebs = short.0[0].ebs.clone().unwrap();
        assert_eq!((ebs.volume_size, ebs.has_delete_on_termination), (2, false));

        let path = temp_file("bdm.json", raw.as_bytes());
        let from_file = block_device_mappings(&format!("file://{}", path.display())).unwrap();
        assert_eq!(from_file.0, bdms);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rejects_bad_block_device_mappings() {
        for bad in [
            r#"[{"Ebs":{"VolumeSize":1}}]"#,
            r#"[{"DeviceName":"/dev/vdb"}]"#,
            r#"[{"DeviceName":"/dev/vdb","VirtualName":"ephemeral0","NoDevice":""}]"#,
            r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumSize":1}}]"#,
            r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":-1}}]"#,
            r#"[{"DeviceName":"/dev/vdb","Ebs":{"DeleteOnTermination":"maybe"}}]"#,
            r#"[{"DeviceName":"/dev/vdb","Ebs":"big"}]"#,
            "file:///nonexistent/strato-bdm.json",
        ] {
            assert!(block_device_mappings(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn launch_permissions_in_both_forms() {
        let expected = LaunchPermissionChange {
            add: vec![LaunchPermission {
                user_id: "123456789012".into(),
                group: String::new(),
            }],
            remove: vec![LaunchPermission {
                user_id: String::new(),
                group: "all".into(),
            }],
        };
        assert_eq!(
            launch_permission("Add=[{UserId=123456789012}],Remove=[{Group=all}]").unwrap(),
            expected
        );
        assert_eq!(
            launch_permission(r#"{"Add":[{"UserId":"123456789012"}],"Remove":[{"Group":"all"}]}"#)
                .unwrap(),
            expected
        );
        assert!(launch_permission("Add=[]").is_err());
        assert!(launch_permission("Add=[{UserId=1,Group=all}]").is_err());
        assert!(launch_permission("Add=[{Group=all}],Replace=[]").is_err());
    }

    #[test]
    fn user_data_reads_files_raw() {
        assert_eq!(user_data("#!/bin/sh").unwrap().0, b"#!/bin/sh");
        let path = temp_file("user-data", b"\x00\xffraw");
        for scheme in ["file", "fileb"] {
            let read = user_data(&format!("{scheme}://{}", path.display())).unwrap();
            assert_eq!(read.0, b"\x00\xffraw");
        }
        std::fs::remove_file(path).unwrap();
        let err = user_data("file:///nonexistent/strato-user-data").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot read /nonexistent/strato-user-data: "));
    }
}
