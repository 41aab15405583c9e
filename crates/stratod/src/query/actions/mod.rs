//! Each Query action: the parsed input to one domain call, its result to the model's
//! output members. Grouped like the domain (`cloud/`).

use super::value::Value;
use super::Ctx;
use crate::cloud::paging::{self, PageRequest};
use crate::error::{ApiError, ApiResult, ErrorCode};

mod addresses;
mod compute;
mod dry_run;
mod iam;
mod instances;
mod keys;
mod launch_templates;
mod network_interfaces;
mod placement;
mod regions;
mod security_groups;
mod shapes;
mod storage;
mod tags;
mod vpc;

/// Answers an EC2 action.
pub async fn ec2(ctx: &Ctx<'_>, action: &str, input: &Value) -> ApiResult<Value> {
    if input.bool("DryRun") == Some(true) && !read_only(action) && !dry_run::in_domain(action) {
        // Nothing may change: the checks the action can make without acting, then the
        // dry run's answer.
        dry_run::check(ctx, action, input).await?;
        return Err(dry_run_ok());
    }
    let out = match action {
        "DescribeRegions" => regions::describe_regions(ctx, input),
        "DescribeAvailabilityZones" => regions::describe_zones(ctx, input),
        "RunInstances" => instances::run(ctx, input).await,
        "DescribeInstances" => instances::describe(ctx, input).await,
        "DescribeInstanceStatus" => instances::describe_status(ctx, input).await,
        "GetConsoleOutput" => instances::console(ctx, input).await,
        "DescribeInstanceAttribute" => instances::describe_attribute(ctx, input).await,
        "ModifyInstanceAttribute" => instances::modify_attribute(ctx, input).await,
        "ModifyInstanceMetadataOptions" => instances::modify_metadata_options(ctx, input).await,
        "DescribeInstanceCreditSpecifications" => {
            instances::describe_credit_specifications(ctx, input)
        }
        "StopInstances" => compute::stop(ctx, input).await,
        "StartInstances" => compute::start(ctx, input).await,
        "TerminateInstances" => compute::terminate(ctx, input).await,
        "RebootInstances" => compute::reboot(ctx, input).await,
        "DescribeInstanceTypes" => compute::describe_types(ctx, input),
        "CreateVolume" => storage::create_volume(ctx, input).await,
        "AttachVolume" => storage::attach_volume(ctx, input).await,
        "DetachVolume" => storage::detach_volume(ctx, input).await,
        "DeleteVolume" => storage::delete_volume(ctx, input).await,
        "DescribeVolumes" => storage::describe_volumes(ctx, input).await,
        "CreateSnapshot" => storage::create_snapshot(ctx, input).await,
        "DescribeSnapshots" => storage::describe_snapshots(ctx, input).await,
        "DeleteSnapshot" => storage::delete_snapshot(ctx, input).await,
        "DescribeImages" => storage::describe_images(ctx, input),
        "RegisterImage" => storage::register_image(ctx, input),
        "DeregisterImage" => storage::deregister_image(ctx, input),
        "CreateImage" => storage::create_image(ctx, input),
        "ModifyImageAttribute" => storage::modify_image_attribute(ctx, input),
        "DescribeImageAttribute" => storage::describe_image_attribute(ctx, input),
        "CopyImage" => storage::copy_image(ctx, input).await,
        "CreateKeyPair" => keys::create(ctx, input).await,
        "ImportKeyPair" => keys::import(ctx, input).await,
        "DescribeKeyPairs" => keys::describe(ctx, input),
        "DeleteKeyPair" => keys::delete(ctx, input).await,
        "CreateTags" => tags::create(ctx, input).await,
        "DeleteTags" => tags::delete(ctx, input).await,
        "DescribeTags" => tags::describe(ctx, input).await,
        "CreateVpc" => vpc::create_vpc(ctx, input).await,
        "DescribeVpcs" => vpc::describe_vpcs(ctx, input),
        "DeleteVpc" => vpc::delete_vpc(ctx, input).await,
        "CreateSubnet" => vpc::create_subnet(ctx, input).await,
        "DescribeSubnets" => vpc::describe_subnets(ctx, input),
        "DeleteSubnet" => vpc::delete_subnet(ctx, input).await,
        "ModifySubnetAttribute" => vpc::modify_subnet_attribute(ctx, input),
        "CreateSecurityGroup" => security_groups::create(ctx, input).await,
        "DeleteSecurityGroup" => security_groups::delete(ctx, input).await,
        "DescribeSecurityGroups" => security_groups::describe(ctx, input),
        "AuthorizeSecurityGroupIngress" => security_groups::rules(ctx, input, true, false).await,
        "AuthorizeSecurityGroupEgress" => security_groups::rules(ctx, input, true, true).await,
        "RevokeSecurityGroupIngress" => security_groups::rules(ctx, input, false, false).await,
        "RevokeSecurityGroupEgress" => security_groups::rules(ctx, input, false, true).await,
        "AllocateAddress" => addresses::allocate(ctx, input).await,
        "AssociateAddress" => addresses::associate(ctx, input).await,
        "DisassociateAddress" => addresses::disassociate(ctx, input).await,
        "ReleaseAddress" => addresses::release(ctx, input),
        "DescribeAddresses" => addresses::describe(ctx, input),
        "CreateNetworkInterface" => network_interfaces::create(ctx, input).await,
        "DescribeNetworkInterfaces" => network_interfaces::describe(ctx, input),
        "AttachNetworkInterface" => network_interfaces::attach(ctx, input),
        "DetachNetworkInterface" => network_interfaces::detach(ctx, input).await,
        "DeleteNetworkInterface" => network_interfaces::delete(ctx, input).await,
        "AssignPrivateIpAddresses" => network_interfaces::assign_private_ips(ctx, input).await,
        "UnassignPrivateIpAddresses" => network_interfaces::unassign_private_ips(ctx, input).await,
        "ModifyNetworkInterfaceAttribute" => network_interfaces::modify_attribute(ctx, input).await,
        "CreatePlacementGroup" => placement::create(ctx, input).await,
        "DescribePlacementGroups" => placement::describe(ctx, input),
        "DeletePlacementGroup" => placement::delete(ctx, input).await,
        "ModifyInstancePlacement" => placement::modify_instance_placement(ctx, input),
        "CreateLaunchTemplate" => launch_templates::create(ctx, input),
        "CreateLaunchTemplateVersion" => launch_templates::create_version(ctx, input),
        "ModifyLaunchTemplate" => launch_templates::modify(ctx, input),
        "DescribeLaunchTemplates" => launch_templates::describe(ctx, input),
        "DescribeLaunchTemplateVersions" => launch_templates::describe_versions(ctx, input),
        "DeleteLaunchTemplate" => launch_templates::delete(ctx, input),
        "AssociateVpcCidrBlock" => vpc::associate_vpc_cidr_block(ctx, input),
        "DisassociateVpcCidrBlock" => vpc::disassociate_vpc_cidr_block(ctx, input),
        "AssociateSubnetCidrBlock" => vpc::associate_subnet_cidr_block(ctx, input).await,
        "DisassociateSubnetCidrBlock" => vpc::disassociate_subnet_cidr_block(ctx, input).await,
        "AssociateIamInstanceProfile" => iam::associate(ctx, input),
        "ReplaceIamInstanceProfileAssociation" => iam::replace(ctx, input),
        "DisassociateIamInstanceProfile" => iam::disassociate(ctx, input),
        "DescribeIamInstanceProfileAssociations" => iam::describe(ctx, input),
        "AssignIpv6Addresses" => vpc::assign_ipv6_addresses(ctx, input).await,
        "UnassignIpv6Addresses" => vpc::unassign_ipv6_addresses(ctx, input).await,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidAction,
                format!("The action {action} is not valid for this web service."),
            ))
        }
    }?;
    dry_run(input, out)
}

/// Answers an STS action.
pub fn sts(ctx: &Ctx<'_>, action: &str, _input: &Value) -> ApiResult<Value> {
    match action {
        "GetCallerIdentity" => {
            let account = ctx.account();
            let (arn, user) = match &ctx.caller.role {
                Some(r) => (
                    r.arn(account),
                    format!(
                        "{}:{}",
                        crate::cloud::identity::sessions::role_id(account, &r.role),
                        r.instance_id
                    ),
                ),
                None => (format!("arn:aws:iam::{account}:root"), account.to_string()),
            };
            Ok(Value::obj([
                ("Account", account.into()),
                ("Arn", arn.into()),
                ("UserId", user.into()),
            ]))
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

/// Whether an action only reads (it then runs whole under DryRun).
fn read_only(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("Get")
}

/// A read-only call with DryRun answers DryRunOperation once it has run.
fn dry_run(input: &Value, out: Value) -> ApiResult<Value> {
    if input.bool("DryRun") == Some(true) {
        return Err(dry_run_ok());
    }
    Ok(out)
}

/// EC2's answer to a dry run that would have succeeded.
pub fn dry_run_ok() -> ApiError {
    ApiError::new(
        ErrorCode::DryRunOperation,
        "Request would have succeeded, but DryRun flag is set.",
    )
}

/// Filters of a Describe call, for the domain.
pub fn filters(input: &Value) -> Vec<crate::cloud::filters::Filter> {
    input
        .items("Filters")
        .iter()
        .map(|f| crate::cloud::filters::Filter {
            name: f.str("Name").to_string(),
            values: f.strs("Values"),
        })
        .collect()
}

/// The request's `MaxResults` and `NextToken`.
pub fn page_request(input: &Value) -> ApiResult<PageRequest> {
    Ok(PageRequest {
        max_results: i32::try_from(input.int("MaxResults").unwrap_or(0))
            .map_err(|_| ApiError::invalid("MaxResults must be between 5 and 1000."))?,
        next_token: input.str("NextToken").to_string(),
    })
}

/// One page of a listing the domain does not page itself, and the next page's token
/// (absent on the last page).
pub fn page<T>(items: Vec<T>, input: &Value) -> ApiResult<(Vec<T>, Value)> {
    let p = paging::paginate(items, &page_request(input)?)?;
    Ok((p.items, super::value::nonempty(&p.next_token)))
}

/// An instance state.
pub fn state(s: crate::lifecycle::State) -> Value {
    Value::obj([("Code", s.code().into()), ("Name", s.name().into())])
}

/// Tags as the model's `TagList`.
pub fn tag_list(tags: &[crate::db::instances::Tag]) -> Value {
    Value::list(
        tags.iter()
            .map(|t| Value::obj([("Key", (&t.key).into()), ("Value", (&t.value).into())])),
    )
}

/// Tags of a `TagList` input.
pub fn tags_in(items: &[Value]) -> Vec<crate::db::instances::Tag> {
    items
        .iter()
        .map(|t| crate::db::instances::Tag {
            key: t.str("Key").to_string(),
            value: t.str("Value").to_string(),
        })
        .collect()
}

/// The tags a request's `TagSpecifications` give resources of one type.
pub fn tags_for(input: &Value, resource_type: &str) -> Vec<crate::db::instances::Tag> {
    input
        .items("TagSpecifications")
        .iter()
        .filter(|s| s.str("ResourceType") == resource_type)
        .flat_map(|s| tags_in(s.items("Tags")))
        .collect()
}
