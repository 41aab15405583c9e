//! Each Query action: the parsed input to one domain call, its result to the model's
//! output members. Grouped like the domain (`cloud/`).

use std::future::Future;
use std::pin::Pin;

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

/// An action's future, boxed where it is made.
type Action<'a> = Pin<Box<dyn Future<Output = ApiResult<Value>> + Send + 'a>>;

/// Makes an action's future on the heap, in a frame of its own. Unoptimised builds give
/// every arm of `ec2`'s match its own stack slot for the future it awaits; inline, those
/// slots summed to most of a worker thread's 2 MiB stack, which deep launch paths then
/// overflowed. Boxed here, `ec2` holds one pointer per arm.
#[inline(never)]
fn boxed<'a, F>(
    ctx: &'a Ctx<'a>,
    input: &'a Value,
    action: impl FnOnce(&'a Ctx<'a>, &'a Value) -> F,
) -> Action<'a>
where
    F: Future<Output = ApiResult<Value>> + Send + 'a,
{
    Box::pin(action(ctx, input))
}

/// Answers an EC2 action.
pub async fn ec2(ctx: &Ctx<'_>, action: &str, input: &Value) -> ApiResult<Value> {
    if input.bool("DryRun") == Some(true) && !read_only(action) && !dry_run::in_domain(action) {
        // Nothing may change: the checks the action can make without acting, then the
        // dry run's answer.
        Box::pin(dry_run::check(ctx, action, input)).await?;
        return Err(dry_run_ok());
    }
    let out = match action {
        "DescribeRegions" => regions::describe_regions(ctx, input),
        "DescribeAvailabilityZones" => regions::describe_zones(ctx, input),
        "RunInstances" => boxed(ctx, input, instances::run).await,
        "DescribeInstances" => boxed(ctx, input, instances::describe).await,
        "DescribeInstanceStatus" => boxed(ctx, input, instances::describe_status).await,
        "GetConsoleOutput" => boxed(ctx, input, instances::console).await,
        "DescribeInstanceAttribute" => boxed(ctx, input, instances::describe_attribute).await,
        "ModifyInstanceAttribute" => boxed(ctx, input, instances::modify_attribute).await,
        "ModifyInstanceMetadataOptions" => {
            boxed(ctx, input, instances::modify_metadata_options).await
        }
        "DescribeInstanceCreditSpecifications" => {
            instances::describe_credit_specifications(ctx, input)
        }
        "StopInstances" => boxed(ctx, input, compute::stop).await,
        "StartInstances" => boxed(ctx, input, compute::start).await,
        "TerminateInstances" => boxed(ctx, input, compute::terminate).await,
        "RebootInstances" => boxed(ctx, input, compute::reboot).await,
        "DescribeInstanceTypes" => compute::describe_types(ctx, input),
        "CreateVolume" => boxed(ctx, input, storage::create_volume).await,
        "AttachVolume" => boxed(ctx, input, storage::attach_volume).await,
        "DetachVolume" => boxed(ctx, input, storage::detach_volume).await,
        "DeleteVolume" => boxed(ctx, input, storage::delete_volume).await,
        "DescribeVolumes" => boxed(ctx, input, storage::describe_volumes).await,
        "CreateSnapshot" => boxed(ctx, input, storage::create_snapshot).await,
        "DescribeSnapshots" => boxed(ctx, input, storage::describe_snapshots).await,
        "DeleteSnapshot" => boxed(ctx, input, storage::delete_snapshot).await,
        "DescribeImages" => storage::describe_images(ctx, input),
        "RegisterImage" => boxed(ctx, input, storage::register_image).await,
        "DeregisterImage" => boxed(ctx, input, storage::deregister_image).await,
        "CreateImage" => boxed(ctx, input, storage::create_image).await,
        "ModifyImageAttribute" => boxed(ctx, input, storage::modify_image_attribute).await,
        "DescribeImageAttribute" => storage::describe_image_attribute(ctx, input),
        "CopyImage" => boxed(ctx, input, storage::copy_image).await,
        "CreateKeyPair" => boxed(ctx, input, keys::create).await,
        "ImportKeyPair" => boxed(ctx, input, keys::import).await,
        "DescribeKeyPairs" => keys::describe(ctx, input),
        "DeleteKeyPair" => boxed(ctx, input, keys::delete).await,
        "CreateTags" => boxed(ctx, input, tags::create).await,
        "DeleteTags" => boxed(ctx, input, tags::delete).await,
        "DescribeTags" => boxed(ctx, input, tags::describe).await,
        "CreateVpc" => boxed(ctx, input, vpc::create_vpc).await,
        "DescribeVpcs" => vpc::describe_vpcs(ctx, input),
        "DeleteVpc" => boxed(ctx, input, vpc::delete_vpc).await,
        "CreateSubnet" => boxed(ctx, input, vpc::create_subnet).await,
        "DescribeSubnets" => vpc::describe_subnets(ctx, input),
        "DeleteSubnet" => boxed(ctx, input, vpc::delete_subnet).await,
        "ModifySubnetAttribute" => vpc::modify_subnet_attribute(ctx, input),
        "CreateSecurityGroup" => boxed(ctx, input, security_groups::create).await,
        "DeleteSecurityGroup" => boxed(ctx, input, security_groups::delete).await,
        "DescribeSecurityGroups" => security_groups::describe(ctx, input),
        "AuthorizeSecurityGroupIngress" => {
            Box::pin(security_groups::rules(ctx, input, true, false)).await
        }
        "AuthorizeSecurityGroupEgress" => {
            Box::pin(security_groups::rules(ctx, input, true, true)).await
        }
        "RevokeSecurityGroupIngress" => {
            Box::pin(security_groups::rules(ctx, input, false, false)).await
        }
        "RevokeSecurityGroupEgress" => {
            Box::pin(security_groups::rules(ctx, input, false, true)).await
        }
        "AllocateAddress" => boxed(ctx, input, addresses::allocate).await,
        "AssociateAddress" => boxed(ctx, input, addresses::associate).await,
        "DisassociateAddress" => boxed(ctx, input, addresses::disassociate).await,
        "ReleaseAddress" => boxed(ctx, input, addresses::release).await,
        "DescribeAddresses" => addresses::describe(ctx, input),
        "CreateNetworkInterface" => boxed(ctx, input, network_interfaces::create).await,
        "DescribeNetworkInterfaces" => boxed(ctx, input, network_interfaces::describe).await,
        "AttachNetworkInterface" => boxed(ctx, input, network_interfaces::attach).await,
        "DetachNetworkInterface" => boxed(ctx, input, network_interfaces::detach).await,
        "DeleteNetworkInterface" => boxed(ctx, input, network_interfaces::delete).await,
        "AssignPrivateIpAddresses" => {
            boxed(ctx, input, network_interfaces::assign_private_ips).await
        }
        "UnassignPrivateIpAddresses" => {
            boxed(ctx, input, network_interfaces::unassign_private_ips).await
        }
        "ModifyNetworkInterfaceAttribute" => {
            boxed(ctx, input, network_interfaces::modify_attribute).await
        }
        "CreatePlacementGroup" => boxed(ctx, input, placement::create).await,
        "DescribePlacementGroups" => placement::describe(ctx, input),
        "DeletePlacementGroup" => boxed(ctx, input, placement::delete).await,
        "ModifyInstancePlacement" => placement::modify_instance_placement(ctx, input),
        "CreateLaunchTemplate" => boxed(ctx, input, launch_templates::create).await,
        "CreateLaunchTemplateVersion" => boxed(ctx, input, launch_templates::create_version).await,
        "ModifyLaunchTemplate" => boxed(ctx, input, launch_templates::modify).await,
        "DescribeLaunchTemplates" => launch_templates::describe(ctx, input),
        "DescribeLaunchTemplateVersions" => launch_templates::describe_versions(ctx, input),
        "DeleteLaunchTemplate" => boxed(ctx, input, launch_templates::delete).await,
        "AssociateVpcCidrBlock" => vpc::associate_vpc_cidr_block(ctx, input),
        "DisassociateVpcCidrBlock" => vpc::disassociate_vpc_cidr_block(ctx, input),
        "AssociateSubnetCidrBlock" => boxed(ctx, input, vpc::associate_subnet_cidr_block).await,
        "DisassociateSubnetCidrBlock" => {
            boxed(ctx, input, vpc::disassociate_subnet_cidr_block).await
        }
        "AssociateIamInstanceProfile" => iam::associate(ctx, input),
        "ReplaceIamInstanceProfileAssociation" => iam::replace(ctx, input),
        "DisassociateIamInstanceProfile" => iam::disassociate(ctx, input),
        "DescribeIamInstanceProfileAssociations" => iam::describe(ctx, input),
        "AssignIpv6Addresses" => boxed(ctx, input, vpc::assign_ipv6_addresses).await,
        "UnassignIpv6Addresses" => boxed(ctx, input, vpc::unassign_ipv6_addresses).await,
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
