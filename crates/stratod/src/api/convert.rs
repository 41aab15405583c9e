//! Conversions between the daemon's records and the API's messages.

use strato_proto::v1 as pb;

use crate::cloud::compute::launch::{Override, Pinned, RunRequest, TemplateRef};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cloud::filters::Filter;
use crate::db::images::Mapping;
use crate::db::instances::{HttpTokens, MetadataOptions, Tag, Toggle};
use crate::db::launch_templates::{TemplateData, TemplateMapping};
use crate::error::ApiResult;
use crate::lifecycle::State;

/// An instance state message.
pub fn state(s: State) -> pb::InstanceState {
    pb::InstanceState {
        code: s.code(),
        name: s.name().to_string(),
    }
}

/// Tags to messages.
pub fn tags(t: &[Tag]) -> Vec<pb::Tag> {
    t.iter()
        .map(|t| pb::Tag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

/// Tags from messages.
pub fn tags_in(t: &[pb::Tag]) -> Vec<Tag> {
    t.iter()
        .map(|t| Tag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

/// Filters from messages.
pub fn filters(f: &[pb::Filter]) -> Vec<Filter> {
    f.iter()
        .map(|f| Filter {
            name: f.name.clone(),
            values: f.values.clone(),
        })
        .collect()
}

/// A mapping message to a stored mapping.
pub fn mapping_in(m: &pb::BlockDeviceMapping) -> Mapping {
    let ebs = m.ebs.clone().unwrap_or_default();
    Mapping {
        device_name: m.device_name.clone(),
        snapshot_id: ebs.snapshot_id,
        volume_size: ebs.volume_size,
        volume_type: ebs.volume_type,
        delete_on_termination: ebs.delete_on_termination,
        virtual_name: m.virtual_name.clone(),
        no_device: m.no_device,
    }
}

/// DeleteOnTermination of a mapping message, if the caller gave it (else the AMI's or EC2's
/// default applies).
pub fn delete_on_termination(m: &pb::BlockDeviceMapping) -> Option<bool> {
    m.ebs
        .as_ref()
        .filter(|e| e.has_delete_on_termination)
        .map(|e| e.delete_on_termination)
}

/// A stored mapping to a message.
pub fn mapping(m: &Mapping) -> pb::BlockDeviceMapping {
    pb::BlockDeviceMapping {
        device_name: m.device_name.clone(),
        virtual_name: m.virtual_name.clone(),
        no_device: m.no_device,
        ebs: m.virtual_name.is_empty().then(|| pb::EbsBlockDevice {
            delete_on_termination: m.delete_on_termination,
            snapshot_id: m.snapshot_id.clone(),
            volume_size: m.volume_size,
            volume_type: m.volume_type.clone(),
            has_delete_on_termination: true,
        }),
    }
}

/// Template data from a message.
pub fn template_data_in(d: &pb::LaunchTemplateData) -> TemplateData {
    let placement = d.placement.clone().unwrap_or_default();
    TemplateData {
        image_id: d.image_id.clone(),
        instance_type: d.instance_type.clone(),
        user_data: d.user_data.clone(),
        mappings: d
            .block_device_mappings
            .iter()
            .map(|m| TemplateMapping {
                mapping: mapping_in(m),
                delete_on_termination: delete_on_termination(m),
            })
            .collect(),
        key_name: d.key_name.clone(),
        iam_instance_profile: d.iam_instance_profile.clone(),
        availability_zone: placement.availability_zone,
        group_name: placement.group_name,
        partition_number: placement.partition_number,
        security_group_ids: d.security_group_ids.clone(),
        shutdown_behavior: d.instance_initiated_shutdown_behavior.clone(),
        disable_api_termination: d.disable_api_termination,
        tags: tags_in(&d.tags),
    }
}

/// Template data to a message.
pub fn template_data(d: &TemplateData) -> pb::LaunchTemplateData {
    let placement =
        (!d.availability_zone.is_empty() || !d.group_name.is_empty()).then(|| pb::Placement {
            availability_zone: d.availability_zone.clone(),
            group_name: d.group_name.clone(),
            partition_number: d.partition_number,
            ..Default::default()
        });
    pb::LaunchTemplateData {
        image_id: d.image_id.clone(),
        instance_type: d.instance_type.clone(),
        user_data: d.user_data.clone(),
        block_device_mappings: d
            .mappings
            .iter()
            .map(|m| {
                let mut out = mapping(&m.mapping);
                if let Some(ebs) = out.ebs.as_mut() {
                    ebs.has_delete_on_termination = m.delete_on_termination.is_some();
                    ebs.delete_on_termination = m.delete_on_termination.unwrap_or(false);
                }
                out
            })
            .collect(),
        key_name: d.key_name.clone(),
        iam_instance_profile: d.iam_instance_profile.clone(),
        placement,
        security_group_ids: d.security_group_ids.clone(),
        instance_initiated_shutdown_behavior: d.shutdown_behavior.clone(),
        disable_api_termination: d.disable_api_termination,
        tags: tags(&d.tags),
    }
}

/// An instance's metadata service settings as the API shows them.
pub fn metadata_options(o: &MetadataOptions) -> pb::InstanceMetadataOptions {
    let toggle = |t: Toggle| match t {
        Toggle::Enabled => "enabled",
        Toggle::Disabled => "disabled",
    };
    pb::InstanceMetadataOptions {
        http_tokens: match o.http_tokens {
            HttpTokens::Optional => "optional",
            HttpTokens::Required => "required",
        }
        .into(),
        http_put_response_hop_limit: i32::from(o.http_put_response_hop_limit),
        http_endpoint: toggle(o.http_endpoint).into(),
        instance_metadata_tags: toggle(o.instance_metadata_tags).into(),
        http_protocol_ipv6: toggle(o.http_protocol_ipv6).into(),
        state: "applied".into(),
    }
}

/// A change of the metadata service settings as a message: a setting left as it is is
/// empty (0 for the hop limit), as [`MetadataChange::parse`] reads it back.
pub fn metadata_change(c: MetadataChange) -> pb::InstanceMetadataOptions {
    let toggle = |t: Option<Toggle>| match t {
        None => "",
        Some(Toggle::Enabled) => "enabled",
        Some(Toggle::Disabled) => "disabled",
    };
    pb::InstanceMetadataOptions {
        http_tokens: match c.http_tokens {
            None => "",
            Some(HttpTokens::Optional) => "optional",
            Some(HttpTokens::Required) => "required",
        }
        .into(),
        http_put_response_hop_limit: c.hop_limit.map(i32::from).unwrap_or(0),
        http_endpoint: toggle(c.http_endpoint).into(),
        instance_metadata_tags: toggle(c.instance_metadata_tags).into(),
        http_protocol_ipv6: toggle(c.http_protocol_ipv6).into(),
        state: String::new(),
    }
}

/// A RunInstances message in the daemon's terms; `pinned` is what its RegionPlacement
/// said (the caller checks who may set it). A message has no DryRun: gRPC has none, and a
/// dry run is never forwarded.
pub fn run_request_in(r: pb::RunInstancesRequest, pinned: Option<Pinned>) -> ApiResult<RunRequest> {
    let placement = r.placement.unwrap_or_default();
    let md = r.metadata_options.unwrap_or_default();
    let metadata = MetadataChange::parse(
        &md.http_tokens,
        md.http_put_response_hop_limit,
        &md.http_endpoint,
        &md.instance_metadata_tags,
    )?
    .with_protocol_ipv6(&md.http_protocol_ipv6)?;
    Ok(RunRequest {
        image_id: r.image_id,
        instance_type: r.instance_type,
        min_count: r.min_count,
        max_count: r.max_count,
        subnet_id: r.subnet_id,
        security_group_ids: r.security_group_ids,
        security_group_names: r.security_groups,
        user_data: r.user_data,
        mappings: r
            .block_device_mappings
            .iter()
            .map(|m| Override {
                mapping: mapping_in(m),
                delete_on_termination: delete_on_termination(m),
            })
            .collect(),
        key_name: r.key_name,
        availability_zone: placement.availability_zone,
        group_name: placement.group_name,
        partition_number: placement.partition_number,
        shutdown_behavior: r.instance_initiated_shutdown_behavior,
        // A true is explicit by itself; a false only when the caller says so.
        disable_api_termination: (r.disable_api_termination || r.has_disable_api_termination)
            .then_some(r.disable_api_termination),
        tags: tags_in(&r.tags),
        volume_tags: tags_in(&r.volume_tags),
        client_token: r.client_token,
        iam_instance_profile: r.iam_instance_profile,
        associate_public_ip: r
            .has_associate_public_ip_address
            .then_some(r.associate_public_ip_address),
        ipv6_count: r.ipv6_address_count,
        ipv6_addresses: r.ipv6_addresses,
        launch_template: r.launch_template.map(|t| TemplateRef {
            id: t.launch_template_id,
            name: t.launch_template_name,
            version: t.version,
        }),
        metadata,
        dry_run: false,
        pinned,
    })
}

/// A RunInstances as its message, for the host a region's launch forwards a share to (the
/// forwarding host sets the RegionPlacement; DryRun has no field, see [`run_request_in`]).
pub fn run_request(run: &RunRequest) -> pb::RunInstancesRequest {
    pb::RunInstancesRequest {
        image_id: run.image_id.clone(),
        instance_type: run.instance_type.clone(),
        min_count: run.min_count,
        max_count: run.max_count,
        subnet_id: run.subnet_id.clone(),
        security_group_ids: run.security_group_ids.clone(),
        user_data: run.user_data.clone(),
        block_device_mappings: run
            .mappings
            .iter()
            .map(|o| pb::BlockDeviceMapping {
                device_name: o.mapping.device_name.clone(),
                virtual_name: o.mapping.virtual_name.clone(),
                no_device: o.mapping.no_device,
                ebs: Some(pb::EbsBlockDevice {
                    delete_on_termination: o
                        .delete_on_termination
                        .unwrap_or(o.mapping.delete_on_termination),
                    snapshot_id: o.mapping.snapshot_id.clone(),
                    volume_size: o.mapping.volume_size,
                    volume_type: o.mapping.volume_type.clone(),
                    has_delete_on_termination: o.delete_on_termination.is_some(),
                }),
            })
            .collect(),
        key_name: run.key_name.clone(),
        placement: Some(pb::Placement {
            availability_zone: run.availability_zone.clone(),
            group_name: run.group_name.clone(),
            partition_number: run.partition_number,
            ..Default::default()
        }),
        instance_initiated_shutdown_behavior: run.shutdown_behavior.clone(),
        disable_api_termination: run.disable_api_termination.unwrap_or(false),
        has_disable_api_termination: run.disable_api_termination.is_some(),
        tags: tags(&run.tags),
        client_token: run.client_token.clone(),
        launch_template: run
            .launch_template
            .as_ref()
            .map(|t| pb::LaunchTemplateSpecification {
                launch_template_id: t.id.clone(),
                launch_template_name: t.name.clone(),
                version: t.version.clone(),
            }),
        associate_public_ip_address: run.associate_public_ip.unwrap_or(false),
        has_associate_public_ip_address: run.associate_public_ip.is_some(),
        metadata_options: Some(metadata_change(run.metadata)),
        security_groups: run.security_group_names.clone(),
        ipv6_address_count: run.ipv6_count,
        ipv6_addresses: run.ipv6_addresses.clone(),
        iam_instance_profile: run.iam_instance_profile.clone(),
        volume_tags: tags(&run.volume_tags),
        region_placement: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_data_round_trips() {
        let msg = pb::LaunchTemplateData {
            image_id: "ami-1".into(),
            user_data: b"x".to_vec(),
            block_device_mappings: vec![
                pb::BlockDeviceMapping {
                    device_name: "/dev/vdb".into(),
                    ebs: Some(pb::EbsBlockDevice {
                        volume_size: 2,
                        volume_type: "gp3".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                pb::BlockDeviceMapping {
                    device_name: "/dev/vdc".into(),
                    ebs: Some(pb::EbsBlockDevice {
                        volume_size: 1,
                        volume_type: "gp3".into(),
                        delete_on_termination: true,
                        has_delete_on_termination: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            placement: Some(pb::Placement {
                group_name: "pg".into(),
                partition_number: 2,
                ..Default::default()
            }),
            disable_api_termination: Some(false),
            ..Default::default()
        };
        let d = template_data_in(&msg);
        assert_eq!(d.mappings[0].delete_on_termination, None);
        assert_eq!(d.mappings[1].delete_on_termination, Some(true));
        assert_eq!(template_data(&d), msg);
    }

    #[test]
    fn a_run_request_round_trips_through_its_message() {
        let run = RunRequest {
            image_id: "ami-0123456789abcdef0".into(),
            instance_type: "t3.small".into(),
            min_count: 2,
            max_count: 3,
            subnet_id: "subnet-0123456789abcdef0".into(),
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
            security_group_names: vec!["web".into()],
            user_data: b"#!/bin/sh\n".to_vec(),
            mappings: vec![
                Override {
                    mapping: Mapping {
                        device_name: "/dev/vdb".into(),
                        snapshot_id: "snap-0123456789abcdef0".into(),
                        volume_size: 8,
                        volume_type: "gp3".into(),
                        delete_on_termination: true,
                        virtual_name: String::new(),
                        no_device: false,
                    },
                    delete_on_termination: Some(true),
                },
                Override {
                    mapping: Mapping {
                        device_name: "/dev/vdc".into(),
                        no_device: true,
                        ..Mapping::default()
                    },
                    delete_on_termination: None,
                },
                Override {
                    mapping: Mapping {
                        device_name: "/dev/vdd".into(),
                        virtual_name: "ephemeral0".into(),
                        ..Mapping::default()
                    },
                    delete_on_termination: Some(false),
                },
            ],
            key_name: "k".into(),
            availability_zone: "strato-1b".into(),
            group_name: "spread".into(),
            partition_number: 2,
            shutdown_behavior: "terminate".into(),
            disable_api_termination: Some(false),
            tags: vec![Tag {
                key: "Name".into(),
                value: "a".into(),
            }],
            volume_tags: vec![Tag {
                key: "v".into(),
                value: "1".into(),
            }],
            client_token: "token-1".into(),
            launch_template: Some(TemplateRef {
                id: "lt-0123456789abcdef0".into(),
                name: "web".into(),
                version: "$Latest".into(),
            }),
            metadata: MetadataChange::parse("required", 3, "enabled", "disabled")
                .unwrap()
                .with_protocol_ipv6("enabled")
                .unwrap(),
            associate_public_ip: Some(false),
            ipv6_count: Some(1),
            ipv6_addresses: vec!["fd00::5".into()],
            dry_run: false,
            iam_instance_profile: "p".into(),
            pinned: None,
        };
        let msg = run_request(&run);
        let back = run_request_in(msg.clone(), None).unwrap();
        // RunRequest has no PartialEq (its parts are compared elsewhere by value); its
        // Debug form shows every field.
        assert_eq!(format!("{back:?}"), format!("{run:?}"));
        // And the message form is stable: out of the domain and back out gives the same.
        assert_eq!(run_request(&back), msg);
        // Options left unset stay unset (not false, not 0).
        let plain = RunRequest {
            image_id: "ami-0123456789abcdef0".into(),
            ..RunRequest::default()
        };
        let back = run_request_in(run_request(&plain), None).unwrap();
        assert_eq!(format!("{back:?}"), format!("{plain:?}"));
        assert_eq!(back.disable_api_termination, None);
        assert_eq!(back.associate_public_ip, None);
        assert_eq!(back.ipv6_count, None);
        assert!(back.launch_template.is_none());
    }
}
