//! The results of the region, placement group, launch template and key pair commands, as
//! the AWS CLI's JSON and as tables.

use base64::Engine;
use serde_json::{json, Value};
use strato_proto::v1::{
    AccessKeyInfo, AvailabilityZone, CreateAccessKeyResponse, CreateKeyPairResponse,
    DeleteKeyPairResponse, Host, IamInstanceProfileAssociation, ImportKeyPairResponse,
    InstanceMetadataOptions, InstanceProfileInfo, KeyPairInfo, LaunchTemplate, LaunchTemplateData,
    LaunchTemplateVersion, ModifyInstanceMetadataOptionsResponse, PlacementGroup, Region, RoleInfo,
    TagDescription,
};

use super::json::{block_device_mapping, tags, text, time};
use super::table::{self, Table};

/// An association as the aws CLI prints it.
fn association_json(a: &IamInstanceProfileAssociation) -> Value {
    json!({
        "AssociationId": a.association_id,
        "InstanceId": a.instance_id,
        "IamInstanceProfile": {"Arn": a.instance_profile_arn, "Id": a.instance_profile_id},
        "State": a.state,
        "Timestamp": time(a.timestamp_unix),
    })
}

fn association_table<'a>(list: impl Iterator<Item = &'a IamInstanceProfileAssociation>) -> String {
    let mut t = Table::new(&["ASSOCIATION", "INSTANCE", "STATE", "PROFILE"]);
    for a in list {
        t.row(vec![
            a.association_id.clone(),
            a.instance_id.clone(),
            a.state.clone(),
            a.instance_profile_arn.clone(),
        ]);
    }
    t.render()
}

/// A result of one of these commands.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlView {
    /// describe-regions
    Regions(Vec<Region>),
    /// describe-hosts
    Hosts(Vec<Host>),
    /// describe-availability-zones
    AvailabilityZones(Vec<AvailabilityZone>),
    /// create-placement-group
    PlacementGroup(PlacementGroup),
    /// describe-placement-groups
    PlacementGroups(Vec<PlacementGroup>),
    /// modify-instance-placement: `{"Return": true}`.
    Return(bool),
    /// create-, modify- and delete-launch-template
    LaunchTemplate(LaunchTemplate),
    /// describe-launch-templates
    LaunchTemplates(Vec<LaunchTemplate>),
    /// create-launch-template-version (boxed: by far the largest message)
    LaunchTemplateVersion(Box<LaunchTemplateVersion>),
    /// describe-launch-template-versions
    LaunchTemplateVersions(Vec<LaunchTemplateVersion>),
    /// create-key-pair (the only time the private key is seen)
    KeyPairCreated(CreateKeyPairResponse),
    /// import-key-pair
    KeyPairImported(ImportKeyPairResponse),
    /// describe-key-pairs
    KeyPairs(Vec<KeyPairInfo>),
    /// delete-key-pair
    KeyPairDeleted(DeleteKeyPairResponse),
    /// modify-instance-metadata-options
    MetadataOptions(ModifyInstanceMetadataOptionsResponse),
    /// describe-tags
    Tags(Vec<TagDescription>),
    /// create-access-key (the only time the secret is seen)
    AccessKeyCreated(CreateAccessKeyResponse),
    /// describe-access-keys
    AccessKeys(Vec<AccessKeyInfo>),
    /// create-role, describe-roles
    Roles(Vec<RoleInfo>),
    /// create-instance-profile, describe-instance-profiles
    InstanceProfiles(Vec<InstanceProfileInfo>),
    /// associate-, replace- and disassociate-iam-instance-profile
    Association(Option<IamInstanceProfileAssociation>),
    /// describe-iam-instance-profile-associations
    Associations(Vec<IamInstanceProfileAssociation>),
    /// A command that answers nothing (delete-access-key).
    Nothing,
}

/// An instance's metadata options in the AWS CLI's shape.
pub fn metadata_options(o: &InstanceMetadataOptions) -> Value {
    json!({
        "State": text(&o.state),
        "HttpTokens": text(&o.http_tokens),
        "HttpPutResponseHopLimit": o.http_put_response_hop_limit,
        "HttpEndpoint": text(&o.http_endpoint),
        "InstanceMetadataTags": text(&o.instance_metadata_tags),
        "HttpProtocolIpv6": text(&o.http_protocol_ipv6),
    })
}

/// One host in EC2's DescribeHosts shape.
fn host_json(h: &Host) -> Value {
    let p = h.host_properties.clone().unwrap_or_default();
    let a = h.available_capacity.unwrap_or_default();
    json!({
        "HostId": h.host_id,
        "State": h.state,
        "HostProperties": {
            "TotalVCpus": p.total_vcpus,
            "MemoryMiB": p.memory_mib,
            "Racks": p.racks,
        },
        "AvailableCapacity": {
            "AvailableVCpus": a.available_vcpus,
            "AvailableMemoryMiB": a.available_memory_mib,
        },
        "Instances": h.instances.iter().map(|i| json!({
            "InstanceId": i.instance_id,
            "InstanceType": i.instance_type,
            "OwnerId": i.owner_id,
        })).collect::<Vec<_>>(),
        "Underlay": text(&h.underlay),
        "ApiEndpoint": text(&h.api_endpoint),
        "AllocationTime": h.allocation_time_unix,
    })
}

/// The AWS CLI's JSON for `view` (nulls are stripped by the caller).
pub fn json(view: &ControlView) -> Value {
    match view {
        ControlView::Regions(list) => json!({
            "Regions": list.iter().map(|r| json!({
                "Endpoint": text(&r.endpoint),
                "RegionName": r.region_name,
                "OptInStatus": text(&r.opt_in_status),
            })).collect::<Vec<_>>(),
        }),
        ControlView::Hosts(list) => json!({
            "Hosts": list.iter().map(host_json).collect::<Vec<_>>(),
        }),
        ControlView::AvailabilityZones(list) => json!({
            "AvailabilityZones": list.iter().map(|z| json!({
                "State": z.state,
                "OptInStatus": text(&z.opt_in_status),
                "Messages": [],
                "RegionName": z.region_name,
                "ZoneName": z.zone_name,
                "ZoneId": z.zone_id,
                "GroupName": text(&z.group_name),
                "NetworkBorderGroup": text(&z.network_border_group),
                "ZoneType": text(&z.zone_type),
            })).collect::<Vec<_>>(),
        }),
        ControlView::PlacementGroup(g) => json!({ "PlacementGroup": placement_group(g) }),
        ControlView::PlacementGroups(list) => json!({
            "PlacementGroups": list.iter().map(placement_group).collect::<Vec<_>>(),
        }),
        ControlView::Return(r) => json!({ "Return": r }),
        // IAM's shape, with the account instead of a user name.
        ControlView::AccessKeyCreated(k) => json!({
            "AccessKey": {
                "AccessKeyId": k.access_key_id,
                "SecretAccessKey": k.secret_access_key,
                "AccountId": k.account_id,
                "Status": "Active",
                "CreateDate": time(k.create_time_unix),
            }
        }),
        ControlView::AccessKeys(list) => json!({
            "AccessKeyMetadata": list.iter().map(|k| json!({
                "AccessKeyId": k.access_key_id,
                "AccountId": k.account_id,
                "Status": "Active",
                "CreateDate": time(k.create_time_unix),
            })).collect::<Vec<_>>(),
        }),
        ControlView::Roles(list) => json!({
            "Roles": list.iter().map(|r| json!({
                "RoleName": r.role_name,
                "Actions": r.actions,
                "CreateDate": time(r.create_time_unix),
            })).collect::<Vec<_>>(),
        }),
        ControlView::InstanceProfiles(list) => json!({
            "InstanceProfiles": list.iter().map(|p| json!({
                "InstanceProfileName": p.instance_profile_name,
                "Arn": p.arn,
                "Roles": [{"RoleName": p.role_name}],
                "CreateDate": time(p.create_time_unix),
            })).collect::<Vec<_>>(),
        }),
        ControlView::Association(a) => json!({
            "IamInstanceProfileAssociation": a.as_ref().map(association_json),
        }),
        ControlView::Associations(list) => json!({
            "IamInstanceProfileAssociations":
                list.iter().map(association_json).collect::<Vec<_>>(),
        }),
        ControlView::Nothing => json!({}),
        ControlView::Tags(list) => json!({
            "Tags": list.iter().map(|t| json!({
                "Key": t.key,
                "ResourceId": t.resource_id,
                "ResourceType": t.resource_type,
                "Value": t.value,
            })).collect::<Vec<_>>(),
        }),
        ControlView::MetadataOptions(m) => json!({
            "InstanceId": m.instance_id,
            "InstanceMetadataOptions": m.instance_metadata_options.as_ref().map(metadata_options),
        }),
        ControlView::LaunchTemplate(t) => json!({ "LaunchTemplate": template(t) }),
        ControlView::LaunchTemplates(list) => json!({
            "LaunchTemplates": list.iter().map(template).collect::<Vec<_>>(),
        }),
        ControlView::LaunchTemplateVersion(v) => json!({ "LaunchTemplateVersion": version(v) }),
        ControlView::LaunchTemplateVersions(list) => json!({
            "LaunchTemplateVersions": list.iter().map(version).collect::<Vec<_>>(),
        }),
        ControlView::KeyPairCreated(k) => json!({
            "KeyFingerprint": k.key_fingerprint,
            "KeyMaterial": k.key_material,
            "KeyName": k.key_name,
            "KeyPairId": k.key_pair_id,
            "Tags": tags(&k.tags),
        }),
        ControlView::KeyPairImported(k) => json!({
            "KeyFingerprint": k.key_fingerprint,
            "KeyName": k.key_name,
            "KeyPairId": k.key_pair_id,
            "Tags": tags(&k.tags),
        }),
        ControlView::KeyPairs(list) => json!({
            "KeyPairs": list.iter().map(|k| json!({
                "KeyPairId": k.key_pair_id,
                "KeyFingerprint": k.key_fingerprint,
                "KeyName": k.key_name,
                "KeyType": text(&k.key_type),
                "Tags": tags(&k.tags),
                "PublicKey": text(&k.public_key),
                "CreateTime": time(k.create_time_unix),
            })).collect::<Vec<_>>(),
        }),
        ControlView::KeyPairDeleted(d) => json!({
            "Return": d.success,
            "KeyPairId": text(&d.key_pair_id),
        }),
    }
}

fn placement_group(g: &PlacementGroup) -> Value {
    json!({
        "GroupName": g.group_name,
        "State": g.state,
        "Strategy": g.strategy,
        "PartitionCount": (g.partition_count > 0).then_some(g.partition_count),
        "GroupId": g.group_id,
        "SpreadLevel": text(&g.spread_level),
        "Tags": tags(&g.tags),
    })
}

fn template(t: &LaunchTemplate) -> Value {
    json!({
        "LaunchTemplateId": t.launch_template_id,
        "LaunchTemplateName": t.launch_template_name,
        "CreateTime": time(t.create_time_unix),
        "CreatedBy": text(&t.created_by),
        "DefaultVersionNumber": t.default_version_number,
        "LatestVersionNumber": t.latest_version_number,
        "Tags": tags(&t.tags),
    })
}

fn version(v: &LaunchTemplateVersion) -> Value {
    json!({
        "LaunchTemplateId": v.launch_template_id,
        "LaunchTemplateName": v.launch_template_name,
        "VersionNumber": v.version_number,
        "VersionDescription": text(&v.version_description),
        "CreateTime": time(v.create_time_unix),
        "CreatedBy": text(&v.created_by),
        "DefaultVersion": v.default_version,
        "LaunchTemplateData": v.launch_template_data.as_ref().map(template_data),
    })
}

/// A version's parameters as the AWS API shows them: UserData base64-encoded.
fn template_data(d: &LaunchTemplateData) -> Value {
    let tag_specs =
        (!d.tags.is_empty()).then(|| json!([{"ResourceType": "instance", "Tags": tags(&d.tags)}]));
    json!({
        "ImageId": text(&d.image_id),
        "InstanceType": text(&d.instance_type),
        "UserData": (!d.user_data.is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(&d.user_data)),
        "BlockDeviceMappings": (!d.block_device_mappings.is_empty()).then(|| {
            d.block_device_mappings.iter().map(block_device_mapping).collect::<Vec<_>>()
        }),
        "KeyName": text(&d.key_name),
        "Placement": d.placement.as_ref().map(|p| json!({
            "AvailabilityZone": text(&p.availability_zone),
            "GroupName": text(&p.group_name),
            "PartitionNumber": (p.partition_number > 0).then_some(p.partition_number),
        })),
        "SecurityGroupIds": (!d.security_group_ids.is_empty()).then_some(&d.security_group_ids),
        "IamInstanceProfile": (!d.iam_instance_profile.is_empty()).then(|| {
            if d.iam_instance_profile.starts_with("arn:") {
                json!({ "Arn": &d.iam_instance_profile })
            } else {
                json!({ "Name": &d.iam_instance_profile })
            }
        }),
        "InstanceInitiatedShutdownBehavior": text(&d.instance_initiated_shutdown_behavior),
        "DisableApiTermination": d.disable_api_termination,
        "TagSpecifications": tag_specs,
    })
}

/// The table for `view`. create-key-pair prints the private key alone, so that
/// `strato create-key-pair --key-name k > k.pem` keeps it.
pub fn table(view: &ControlView) -> String {
    match view {
        ControlView::Regions(list) => {
            let mut t = Table::new(&["REGION", "ENDPOINT"]);
            for r in list {
                t.row(vec![r.region_name.clone(), r.endpoint.clone()]);
            }
            t.render()
        }
        ControlView::Hosts(list) => {
            let mut t = Table::new(&["HOST", "STATE", "VCPUS FREE", "MIB FREE", "INSTANCES"]);
            for h in list {
                let p = h.host_properties.clone().unwrap_or_default();
                let a = h.available_capacity.unwrap_or_default();
                t.row(vec![
                    h.host_id.clone(),
                    h.state.clone(),
                    format!("{}/{}", a.available_vcpus, p.total_vcpus),
                    format!("{}/{}", a.available_memory_mib, p.memory_mib),
                    h.instances.len().to_string(),
                ]);
            }
            t.render()
        }
        ControlView::AvailabilityZones(list) => {
            let mut t = Table::new(&["ZONE", "ZONE ID", "REGION", "STATE"]);
            for z in list {
                t.row(vec![
                    z.zone_name.clone(),
                    z.zone_id.clone(),
                    z.region_name.clone(),
                    z.state.clone(),
                ]);
            }
            t.render()
        }
        ControlView::PlacementGroup(g) => groups(std::slice::from_ref(g)),
        ControlView::PlacementGroups(list) => groups(list),
        ControlView::Return(_) | ControlView::KeyPairDeleted(_) | ControlView::Nothing => {
            String::new()
        }
        ControlView::AccessKeyCreated(k) => {
            let mut t = Table::new(&["ACCESS KEY ID", "SECRET ACCESS KEY", "ACCOUNT"]);
            t.row(vec![
                k.access_key_id.clone(),
                k.secret_access_key.clone(),
                k.account_id.clone(),
            ]);
            t.render()
        }
        ControlView::AccessKeys(list) => {
            let mut t = Table::new(&["ACCESS KEY ID", "ACCOUNT", "CREATED"]);
            for k in list {
                t.row(vec![
                    k.access_key_id.clone(),
                    k.account_id.clone(),
                    table::time(k.create_time_unix),
                ]);
            }
            t.render()
        }
        ControlView::Roles(list) => {
            let mut t = Table::new(&["ROLE", "ACTIONS", "CREATED"]);
            for r in list {
                t.row(vec![
                    r.role_name.clone(),
                    r.actions.join(","),
                    table::time(r.create_time_unix),
                ]);
            }
            t.render()
        }
        ControlView::Association(a) => association_table(a.iter()),
        ControlView::Associations(list) => association_table(list.iter()),
        ControlView::InstanceProfiles(list) => {
            let mut t = Table::new(&["INSTANCE PROFILE", "ROLE", "ARN"]);
            for p in list {
                t.row(vec![
                    p.instance_profile_name.clone(),
                    p.role_name.clone(),
                    p.arn.clone(),
                ]);
            }
            t.render()
        }
        ControlView::Tags(list) => {
            let mut t = Table::new(&["RESOURCE", "TYPE", "KEY", "VALUE"]);
            for d in list {
                t.row(vec![
                    d.resource_id.clone(),
                    d.resource_type.clone(),
                    d.key.clone(),
                    d.value.clone(),
                ]);
            }
            t.render()
        }
        ControlView::MetadataOptions(m) => {
            let mut t = Table::new(&["INSTANCE", "TOKENS", "HOP LIMIT", "ENDPOINT", "TAGS"]);
            if let Some(o) = &m.instance_metadata_options {
                t.row(vec![
                    m.instance_id.clone(),
                    o.http_tokens.clone(),
                    o.http_put_response_hop_limit.to_string(),
                    o.http_endpoint.clone(),
                    o.instance_metadata_tags.clone(),
                ]);
            }
            t.render()
        }
        ControlView::LaunchTemplate(t) => templates(std::slice::from_ref(t)),
        ControlView::LaunchTemplates(list) => templates(list),
        ControlView::LaunchTemplateVersion(v) => versions(std::slice::from_ref(v)),
        ControlView::LaunchTemplateVersions(list) => versions(list),
        ControlView::KeyPairCreated(k) => {
            let mut m = k.key_material.clone();
            if !m.ends_with('\n') {
                m.push('\n');
            }
            m
        }
        ControlView::KeyPairImported(k) => {
            let mut t = Table::new(&["KEY NAME", "KEY PAIR ID", "FINGERPRINT"]);
            t.row(vec![
                k.key_name.clone(),
                k.key_pair_id.clone(),
                k.key_fingerprint.clone(),
            ]);
            t.render()
        }
        ControlView::KeyPairs(list) => {
            let mut t = Table::new(&["KEY NAME", "KEY PAIR ID", "TYPE", "FINGERPRINT", "CREATED"]);
            for k in list {
                t.row(vec![
                    k.key_name.clone(),
                    k.key_pair_id.clone(),
                    k.key_type.clone(),
                    k.key_fingerprint.clone(),
                    table::time(k.create_time_unix),
                ]);
            }
            t.render()
        }
    }
}

fn groups(list: &[PlacementGroup]) -> String {
    let mut t = Table::new(&["GROUP", "GROUP ID", "STRATEGY", "PARTITIONS", "STATE"]);
    for g in list {
        t.row(vec![
            g.group_name.clone(),
            g.group_id.clone(),
            g.strategy.clone(),
            if g.partition_count > 0 {
                g.partition_count.to_string()
            } else {
                String::new()
            },
            g.state.clone(),
        ]);
    }
    t.render()
}

fn templates(list: &[LaunchTemplate]) -> String {
    let mut t = Table::new(&["TEMPLATE ID", "NAME", "DEFAULT", "LATEST", "CREATED"]);
    for lt in list {
        t.row(vec![
            lt.launch_template_id.clone(),
            lt.launch_template_name.clone(),
            lt.default_version_number.to_string(),
            lt.latest_version_number.to_string(),
            table::time(lt.create_time_unix),
        ]);
    }
    t.render()
}

fn versions(list: &[LaunchTemplateVersion]) -> String {
    let mut t = Table::new(&[
        "TEMPLATE ID",
        "VERSION",
        "DEFAULT",
        "IMAGE",
        "TYPE",
        "DESCRIPTION",
    ]);
    for v in list {
        let d = v.launch_template_data.clone().unwrap_or_default();
        t.row(vec![
            v.launch_template_id.clone(),
            v.version_number.to_string(),
            v.default_version.to_string(),
            d.image_id,
            d.instance_type,
            v.version_description.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{write, Format, View};

    fn render(view: ControlView, format: Format, query: Option<&str>) -> String {
        let q = query.map(|q| crate::query::parse(q).unwrap());
        let mut out = Vec::new();
        write(&View::Control(view), format, q.as_ref(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn created() -> ControlView {
        ControlView::KeyPairCreated(CreateKeyPairResponse {
            key_name: "k".into(),
            key_fingerprint: "SHA256:abc".into(),
            key_material:
                "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
            key_pair_id: "key-1".into(),
            tags: vec![],
        })
    }

    #[test]
    fn the_private_key_alone_in_text_and_with_the_query_idiom() {
        let material =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----\n";
        assert_eq!(render(created(), Format::Text, None), material);
        assert_eq!(render(created(), Format::Table, None), material);
        assert_eq!(
            render(created(), Format::Text, Some("KeyMaterial")),
            material
        );
        let v: Value = serde_json::from_str(&render(created(), Format::Json, None)).unwrap();
        assert_eq!(
            v,
            json!({"KeyFingerprint": "SHA256:abc", "KeyMaterial": material, "KeyName": "k",
                "KeyPairId": "key-1"})
        );
    }

    #[test]
    fn template_versions_in_the_aws_shape() {
        let v = ControlView::LaunchTemplateVersions(vec![LaunchTemplateVersion {
            launch_template_id: "lt-1".into(),
            launch_template_name: "web".into(),
            version_number: 2,
            default_version: true,
            launch_template_data: Some(LaunchTemplateData {
                image_id: "ami-1".into(),
                user_data: b"echo hi\n".to_vec(),
                disable_api_termination: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let out: Value = serde_json::from_str(&render(v, Format::Json, None)).unwrap();
        let got = &out["LaunchTemplateVersions"][0];
        assert_eq!(got["VersionNumber"], 2);
        assert_eq!(got["DefaultVersion"], true);
        assert_eq!(
            got["LaunchTemplateData"],
            json!({"ImageId": "ami-1", "UserData": "ZWNobyBoaQo=", "DisableApiTermination": false})
        );
    }

    #[test]
    fn groups_regions_and_zones() {
        let g = ControlView::PlacementGroups(vec![PlacementGroup {
            group_name: "hdfs".into(),
            group_id: "pg-1".into(),
            strategy: "partition".into(),
            partition_count: 3,
            state: "available".into(),
            ..Default::default()
        }]);
        let out: Value = serde_json::from_str(&render(g.clone(), Format::Json, None)).unwrap();
        assert_eq!(
            out,
            json!({"PlacementGroups": [{"GroupName": "hdfs", "State": "available",
                "Strategy": "partition", "PartitionCount": 3, "GroupId": "pg-1"}]})
        );
        assert!(render(g, Format::Table, None).contains("hdfs"));
        let r = ControlView::Regions(vec![Region {
            region_name: "home-1".into(),
            endpoint: "unix:/s".into(),
            opt_in_status: "opt-in-not-required".into(),
        }]);
        assert_eq!(
            render(r, Format::Text, Some("Regions[].RegionName")),
            "home-1\n"
        );
        assert_eq!(
            render(ControlView::Return(true), Format::Json, None),
            "{\n    \"Return\": true\n}\n"
        );
    }
}
