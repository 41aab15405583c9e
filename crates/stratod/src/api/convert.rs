//! Conversions between the daemon's records and the API's messages.

use strato_proto::v1 as pb;

use crate::cloud::filters::Filter;
use crate::db::images::Mapping;
use crate::db::instances::{HttpTokens, MetadataOptions, Tag, Toggle};
use crate::db::launch_templates::{TemplateData, TemplateMapping};
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
}
