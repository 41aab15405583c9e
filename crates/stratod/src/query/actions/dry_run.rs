//! DryRun of a changing action: the checks the call would make that need no change, by the
//! domain's own lookups (the caller must own, or may change, every resource it names; an
//! admin-only call needs the admin), then `DryRunOperation`. RunInstances runs all of its
//! checks in the domain instead (`RunRequest::dry_run`). In a region of hosts, the calls
//! that reach another host's instances, volumes and snapshots have them checked by that
//! host (`cluster::checks`), as the call itself would be.

use super::super::value::Value;
use super::super::Ctx;
use crate::cloud::filters::Filter;
use crate::cluster::route::{Origin, Resource};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Whether the domain runs this action's dry run itself.
pub fn in_domain(action: &str) -> bool {
    action == "RunInstances"
}

fn nonempty<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.opt_str(member).filter(|s| !s.is_empty())
}

/// That the caller has `ids` of `kind`, on whichever host of the region has them.
async fn routed(ctx: &Ctx<'_>, kind: Resource, ids: &[String]) -> ApiResult<()> {
    ctx.cloud
        .check_owned_routed(kind, ctx.account(), ids, Origin::Caller)
        .await
}

/// The instances of a state change, on their hosts.
async fn instances(ctx: &Ctx<'_>, ids: &[String]) -> ApiResult<()> {
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    routed(ctx, Resource::Instance, ids).await
}

/// The instance of a call that reaches its host.
async fn routed_instance(ctx: &Ctx<'_>, input: &Value) -> ApiResult<()> {
    instances(ctx, &[input.str("InstanceId").to_string()]).await
}

/// The instance of a call that acts on the host asked only.
fn instance(ctx: &Ctx<'_>, input: &Value) -> ApiResult<()> {
    ctx.cloud
        .owned_instance(ctx.account(), input.str("InstanceId"))
        .map(drop)
}

fn one(id: &str) -> [String; 1] {
    [id.to_string()]
}

fn groups(ctx: &Ctx<'_>, ids: &[String]) -> ApiResult<()> {
    for id in ids {
        ctx.cloud.owned_group(ctx.account(), id)?;
    }
    Ok(())
}

fn subnet_vpc(ctx: &Ctx<'_>, id: &str) -> ApiResult<String> {
    let s = ctx
        .cloud
        .describe_subnets(ctx.account(), &[id.to_string()], &[])?;
    Ok(s.into_iter()
        .next()
        .map(|v| v.subnet.vpc_id)
        .unwrap_or_default())
}

fn filter(name: &str, value: &str) -> Vec<Filter> {
    vec![Filter {
        name: name.to_string(),
        values: vec![value.to_string()],
    }]
}

/// A resource a tag call names, by its kind (instances, volumes and snapshots on their
/// hosts, as CreateTags reaches them).
async fn taggable(ctx: &Ctx<'_>, id: &str) -> ApiResult<()> {
    let (a, c) = (ctx.account(), ctx.cloud);
    let one = [id.to_string()];
    let prefix = id.split_once('-').map_or("", |p| p.0);
    match prefix {
        "i" => routed(ctx, Resource::Instance, &one).await,
        "vol" => routed(ctx, Resource::Volume, &one).await,
        "snap" => routed(ctx, Resource::Snapshot, &one).await,
        "ami" => c.owned_image(a, id).map(drop),
        "sg" => c.owned_group(a, id).map(drop),
        "eni" => routed(ctx, Resource::NetworkInterface, &one).await,
        "vpc" => c.describe_vpcs(a, &one, &[]).map(drop),
        "subnet" => c.describe_subnets(a, &one, &[]).map(drop),
        "eipalloc" => c.owned_eip(a, id).map(drop),
        "lt" => c.owned_template(a, id, "").map(drop),
        // The other kinds are checked when the call runs.
        _ => Ok(()),
    }
}

/// The checks of `action` that change nothing.
pub async fn check(ctx: &Ctx<'_>, action: &str, input: &Value) -> ApiResult<()> {
    let (a, c) = (ctx.account(), ctx.cloud);
    match action {
        "StopInstances" | "StartInstances" | "TerminateInstances" | "RebootInstances" => {
            instances(ctx, &input.strs("InstanceIds")).await
        }
        "ModifyInstanceAttribute" => {
            routed_instance(ctx, input).await?;
            // Groups are per host: another host's instance has its groups checked there,
            // when the call runs.
            if instance(ctx, input).is_ok() {
                groups(ctx, &input.strs("Groups"))?;
            }
            Ok(())
        }
        "ModifyInstanceMetadataOptions" => routed_instance(ctx, input).await,
        "CreateImage" => routed_instance(ctx, input).await,
        "ModifyInstancePlacement" => {
            instance(ctx, input)?;
            match nonempty(input, "GroupName") {
                Some(name) => c.placement_group_named(a, name).map(drop),
                None => Ok(()),
            }
        }
        "CreateVolume" => match nonempty(input, "SnapshotId") {
            Some(s) => routed(ctx, Resource::Snapshot, &one(s)).await,
            None => Ok(()),
        },
        "AttachVolume" => {
            c.check_attach_routed(
                a,
                input.str("VolumeId"),
                input.str("InstanceId"),
                Origin::Caller,
            )
            .await
        }
        "DetachVolume" => {
            c.check_detach_routed(
                a,
                input.str("VolumeId"),
                nonempty(input, "InstanceId"),
                Origin::Caller,
            )
            .await
        }
        "DeleteVolume" | "CreateSnapshot" => {
            routed(ctx, Resource::Volume, &one(input.str("VolumeId"))).await
        }
        "DeleteSnapshot" => routed(ctx, Resource::Snapshot, &one(input.str("SnapshotId"))).await,
        "DeregisterImage" | "ModifyImageAttribute" => {
            c.owned_image(a, input.str("ImageId")).map(drop)
        }
        "RegisterImage" => c.may_register_images(a),
        "CreateTags" | "DeleteTags" => {
            for r in input.strs("Resources") {
                taggable(ctx, &r).await?;
            }
            crate::cloud::tags::check(&super::tags_in(input.items("Tags")))
        }
        "DeleteVpc" | "CreateSubnet" => c.changeable_vpc(a, input.str("VpcId")).map(drop),
        "DeleteSubnet" | "ModifySubnetAttribute" => {
            let vpc = subnet_vpc(ctx, input.str("SubnetId"))?;
            c.changeable_vpc(a, &vpc).map(drop)
        }
        "CreateSecurityGroup" => match nonempty(input, "VpcId") {
            Some(v) => c.describe_vpcs(a, &[v.to_string()], &[]).map(drop),
            None => Ok(()),
        },
        "DeleteSecurityGroup" => c
            .group_by_id_or_name(a, input.str("GroupId"), input.str("GroupName"))
            .map(drop),
        "AuthorizeSecurityGroupIngress"
        | "AuthorizeSecurityGroupEgress"
        | "RevokeSecurityGroupIngress"
        | "RevokeSecurityGroupEgress" => {
            c.group_by_id_or_name(a, input.str("GroupId"), input.str("GroupName"))?;
            let perms = super::security_groups::permissions_in(ctx, input)?;
            for p in &perms {
                groups(ctx, &p.groups)?;
                crate::cloud::network::security_groups::normalize(p)?;
            }
            Ok(())
        }
        "AssociateIamInstanceProfile" => {
            instance(ctx, input)?;
            c.launch_profile(a, &super::iam::profile(input)?).map(drop)
        }
        "ReplaceIamInstanceProfileAssociation" => {
            c.owned_association(a, input.str("AssociationId"))?;
            c.launch_profile(a, &super::iam::profile(input)?).map(drop)
        }
        "DisassociateIamInstanceProfile" => {
            c.owned_association(a, input.str("AssociationId")).map(drop)
        }
        "AllocateAddress" => c.uplink().map(drop),
        "AssociateAddress" => {
            let allocation = super::addresses::allocation_of(ctx, input, "AllocationId")?;
            c.owned_eip(a, &allocation)?;
            match (
                nonempty(input, "InstanceId"),
                nonempty(input, "NetworkInterfaceId"),
            ) {
                (Some(i), None) => c.owned_instance(a, i).map(drop),
                (None, Some(e)) => c.owned_eni(a, e).map(drop),
                (None, None) => Err(ApiError::missing("InstanceId")),
                (Some(_), Some(_)) => Err(ApiError::new(
                    ErrorCode::InvalidParameterCombination,
                    "InstanceId and NetworkInterfaceId cannot be given together.",
                )),
            }
        }
        "DisassociateAddress" => {
            let association = super::addresses::allocation_of(ctx, input, "AssociationId")?;
            if association.is_empty() {
                return Err(ApiError::missing("AssociationId"));
            }
            let found =
                c.describe_addresses(a, &[], &[], &filter("association-id", &association))?;
            if found.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidAssociationIdNotFound,
                    format!("The association ID '{association}' does not exist"),
                ));
            }
            Ok(())
        }
        "ReleaseAddress" => {
            let allocation = super::addresses::allocation_of(ctx, input, "AllocationId")?;
            c.owned_eip(a, &allocation).map(drop)
        }
        "CreateNetworkInterface" => {
            subnet_vpc(ctx, input.str("SubnetId"))?;
            groups(ctx, &input.strs("Groups"))
        }
        "AttachNetworkInterface" => {
            c.check_attach_interface_routed(
                a,
                input.str("NetworkInterfaceId"),
                input.str("InstanceId"),
                Origin::Caller,
            )
            .await
        }
        "DetachNetworkInterface" => {
            let id = input.str("AttachmentId");
            if id.is_empty() {
                return Err(ApiError::missing("AttachmentId"));
            }
            let there = c.attachment_host(a, id, Origin::Caller).await.is_some();
            let found =
                c.describe_network_interfaces(a, &[], &filter("attachment.attachment-id", id))?;
            if found.is_empty() && !there {
                return Err(ApiError::new(
                    ErrorCode::InvalidAttachmentIdNotFound,
                    format!("The attachment ID '{id}' does not exist"),
                ));
            }
            Ok(())
        }
        "AssignIpv6Addresses" | "UnassignIpv6Addresses" => {
            let eni = one(input.str("NetworkInterfaceId"));
            routed(ctx, Resource::NetworkInterface, &eni).await
        }
        "AssociateVpcCidrBlock" => c.changeable_vpc(a, input.str("VpcId")).map(drop),
        "AssociateSubnetCidrBlock" => c.changeable_subnet(a, input.str("SubnetId")).map(drop),
        "DeleteNetworkInterface"
        | "AssignPrivateIpAddresses"
        | "UnassignPrivateIpAddresses"
        | "ModifyNetworkInterfaceAttribute" => {
            let eni = one(input.str("NetworkInterfaceId"));
            routed(ctx, Resource::NetworkInterface, &eni).await?;
            // Groups are per host: another host's interface has its groups checked there,
            // when the call runs.
            if c.owned_eni(a, &eni[0]).is_ok() {
                groups(ctx, &input.strs("Groups"))?;
            }
            Ok(())
        }
        "DeletePlacementGroup" => c.placement_group_named(a, input.str("GroupName")).map(drop),
        "CreateLaunchTemplate" => {
            super::launch_templates::data_in(input.get("LaunchTemplateData")).map(drop)
        }
        "CreateLaunchTemplateVersion" => {
            c.owned_template(
                a,
                input.str("LaunchTemplateId"),
                input.str("LaunchTemplateName"),
            )?;
            super::launch_templates::data_in(input.get("LaunchTemplateData")).map(drop)
        }
        "ModifyLaunchTemplate" | "DeleteLaunchTemplate" => c
            .owned_template(
                a,
                input.str("LaunchTemplateId"),
                input.str("LaunchTemplateName"),
            )
            .map(drop),
        // The rest (CreateVpc, CreatePlacementGroup, key pairs, CopyImage) name no resource
        // of the caller's that must exist.
        _ => Ok(()),
    }
}
