//! Dispatch: connects, runs the chosen command, and prints what it returns.

mod addresses;
mod compute;
mod images;
mod keys;
mod network_interfaces;
mod placement;
mod roles;
mod security_groups;
mod tags;
mod templates;
mod usage;
mod volumes;
mod vpc;

use std::io::{self, Write};

use crate::args::{Cli, Command};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output;
use security_groups::RuleOp;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let conn = Conn::connect(
        &cli.endpoint,
        cli.token.as_deref(),
        cli.ca_bundle.as_deref(),
    )
    .await?;
    let view = match cli.command {
        Command::RunInstances(a) => compute::run_instances(&conn, *a).await?,
        Command::DescribeInstances(a) => compute::describe_instances(&conn, a).await?,
        Command::DescribeInstanceStatus(a) => compute::describe_instance_status(&conn, a).await?,
        Command::StopInstances(a) => compute::stop_instances(&conn, a).await?,
        Command::StartInstances(a) => compute::start_instances(&conn, a).await?,
        Command::RebootInstances(a) => compute::reboot_instances(&conn, a).await?,
        Command::TerminateInstances(a) => compute::terminate_instances(&conn, a).await?,
        Command::ModifyInstanceAttribute(a) => compute::modify_instance_attribute(&conn, a).await?,
        Command::ModifyInstanceMetadataOptions(a) => {
            compute::modify_instance_metadata_options(&conn, a).await?
        }
        Command::DescribeInstanceTypes(a) => compute::describe_instance_types(&conn, a).await?,
        Command::GetConsoleOutput(a) => compute::get_console_output(&conn, a).await?,
        Command::Console(a) => compute::console(&conn, a).await?,
        Command::RegisterImage(a) => images::register_image(&conn, a).await?,
        Command::DescribeImages(a) => images::describe_images(&conn, a).await?,
        Command::DeregisterImage(a) => images::deregister_image(&conn, a).await?,
        Command::CreateImage(a) => images::create_image(&conn, a).await?,
        Command::CopyImage(a) => images::copy_image(&conn, a).await?,
        Command::ModifyImageAttribute(a) => images::modify_image_attribute(&conn, a).await?,
        Command::DescribeImageAttribute(a) => images::describe_image_attribute(&conn, a).await?,
        Command::CreateVolume(a) => volumes::create_volume(&conn, a).await?,
        Command::AttachVolume(a) => volumes::attach_volume(&conn, a).await?,
        Command::DetachVolume(a) => volumes::detach_volume(&conn, a).await?,
        Command::DeleteVolume(a) => volumes::delete_volume(&conn, a).await?,
        Command::DescribeVolumes(a) => volumes::describe_volumes(&conn, a).await?,
        Command::CreateSnapshot(a) => volumes::create_snapshot(&conn, a).await?,
        Command::DescribeSnapshots(a) => volumes::describe_snapshots(&conn, a).await?,
        Command::DeleteSnapshot(a) => volumes::delete_snapshot(&conn, a).await?,
        Command::DescribeRegions(a) => placement::describe_regions(&conn, a).await?,
        Command::DescribeHosts(a) => placement::describe_hosts(&conn, a).await?,
        Command::DescribeAvailabilityZones(a) => {
            placement::describe_availability_zones(&conn, a).await?
        }
        Command::CreatePlacementGroup(a) => placement::create_placement_group(&conn, a).await?,
        Command::DescribePlacementGroups(a) => {
            placement::describe_placement_groups(&conn, a).await?
        }
        Command::DeletePlacementGroup(a) => placement::delete_placement_group(&conn, a).await?,
        Command::ModifyInstancePlacement(a) => {
            placement::modify_instance_placement(&conn, a).await?
        }
        Command::CreateLaunchTemplate(a) => templates::create_launch_template(&conn, a).await?,
        Command::CreateLaunchTemplateVersion(a) => {
            templates::create_launch_template_version(&conn, a).await?
        }
        Command::ModifyLaunchTemplate(a) => templates::modify_launch_template(&conn, a).await?,
        Command::DescribeLaunchTemplates(a) => {
            templates::describe_launch_templates(&conn, a).await?
        }
        Command::DescribeLaunchTemplateVersions(a) => {
            templates::describe_launch_template_versions(&conn, a).await?
        }
        Command::DeleteLaunchTemplate(a) => templates::delete_launch_template(&conn, a).await?,
        Command::CreateKeyPair(a) => keys::create_key_pair(&conn, a).await?,
        Command::ImportKeyPair(a) => keys::import_key_pair(&conn, a).await?,
        Command::DescribeKeyPairs(a) => keys::describe_key_pairs(&conn, a).await?,
        Command::DeleteKeyPair(a) => keys::delete_key_pair(&conn, a).await?,
        Command::CreateAccessKey(a) => keys::create_access_key(&conn, a).await?,
        Command::DescribeAccessKeys(a) => keys::describe_access_keys(&conn, a).await?,
        Command::DeleteAccessKey(a) => keys::delete_access_key(&conn, a).await?,
        Command::CreateRole(a) => roles::create_role(&conn, a).await?,
        Command::DescribeRoles => roles::describe_roles(&conn).await?,
        Command::DeleteRole(a) => roles::delete_role(&conn, a).await?,
        Command::CreateInstanceProfile(a) => roles::create_instance_profile(&conn, a).await?,
        Command::DescribeInstanceProfiles => roles::describe_instance_profiles(&conn).await?,
        Command::DeleteInstanceProfile(a) => roles::delete_instance_profile(&conn, a).await?,
        Command::AssociateIamInstanceProfile(a) => roles::associate(&conn, a).await?,
        Command::ReplaceIamInstanceProfileAssociation(a) => roles::replace(&conn, a).await?,
        Command::DisassociateIamInstanceProfile(a) => roles::disassociate(&conn, a).await?,
        Command::DescribeIamInstanceProfileAssociations(a) => {
            roles::describe_associations(&conn, a).await?
        }
        Command::CreateVpc(a) => vpc::create_vpc(&conn, a).await?,
        Command::DescribeVpcs(a) => vpc::describe_vpcs(&conn, a).await?,
        Command::DeleteVpc(a) => vpc::delete_vpc(&conn, a).await?,
        Command::CreateSubnet(a) => vpc::create_subnet(&conn, a).await?,
        Command::DescribeSubnets(a) => vpc::describe_subnets(&conn, a).await?,
        Command::DeleteSubnet(a) => vpc::delete_subnet(&conn, a).await?,
        Command::CreateSecurityGroup(a) => security_groups::create_security_group(&conn, a).await?,
        Command::DescribeSecurityGroups(a) => {
            security_groups::describe_security_groups(&conn, a).await?
        }
        Command::DeleteSecurityGroup(a) => security_groups::delete_security_group(&conn, a).await?,
        Command::AuthorizeSecurityGroupIngress(a) => {
            security_groups::rules(&conn, RuleOp::AuthorizeIngress, a).await?
        }
        Command::AuthorizeSecurityGroupEgress(a) => {
            security_groups::rules(&conn, RuleOp::AuthorizeEgress, a).await?
        }
        Command::RevokeSecurityGroupIngress(a) => {
            security_groups::rules(&conn, RuleOp::RevokeIngress, a).await?
        }
        Command::RevokeSecurityGroupEgress(a) => {
            security_groups::rules(&conn, RuleOp::RevokeEgress, a).await?
        }
        Command::CreateNetworkInterface(a) => network_interfaces::create(&conn, a).await?,
        Command::DescribeNetworkInterfaces(a) => network_interfaces::describe(&conn, a).await?,
        Command::AttachNetworkInterface(a) => network_interfaces::attach(&conn, a).await?,
        Command::DetachNetworkInterface(a) => network_interfaces::detach(&conn, a).await?,
        Command::DeleteNetworkInterface(a) => network_interfaces::delete(&conn, a).await?,
        Command::AssignPrivateIpAddresses(a) => network_interfaces::assign(&conn, a).await?,
        Command::UnassignPrivateIpAddresses(a) => network_interfaces::unassign(&conn, a).await?,
        Command::ModifyNetworkInterfaceAttribute(a) => network_interfaces::modify(&conn, a).await?,
        Command::ModifySubnetAttribute(a) => vpc::modify_subnet_attribute(&conn, a).await?,
        Command::AssociateVpcCidrBlock(a) => vpc::associate_vpc_cidr_block(&conn, a).await?,
        Command::DisassociateVpcCidrBlock(a) => vpc::disassociate_vpc_cidr_block(&conn, a).await?,
        Command::AssociateSubnetCidrBlock(a) => vpc::associate_subnet_cidr_block(&conn, a).await?,
        Command::DisassociateSubnetCidrBlock(a) => {
            vpc::disassociate_subnet_cidr_block(&conn, a).await?
        }
        Command::AssignIpv6Addresses(a) => network_interfaces::assign_ipv6(&conn, a).await?,
        Command::UnassignIpv6Addresses(a) => network_interfaces::unassign_ipv6(&conn, a).await?,
        Command::AllocateAddress(a) => addresses::allocate_address(&conn, a).await?,
        Command::AssociateAddress(a) => addresses::associate_address(&conn, a).await?,
        Command::DisassociateAddress(a) => addresses::disassociate_address(&conn, a).await?,
        Command::ReleaseAddress(a) => addresses::release_address(&conn, a).await?,
        Command::DescribeAddresses(a) => addresses::describe_addresses(&conn, a).await?,
        Command::CreateTags(a) => tags::create_tags(&conn, a).await?,
        Command::DeleteTags(a) => tags::delete_tags(&conn, a).await?,
        Command::DescribeTags(a) => tags::describe_tags(&conn, a).await?,
        Command::Usage(a) => usage::describe_usage(&conn, a).await?,
    };
    let mut stdout = io::stdout().lock();
    output::write(&view, cli.output, cli.query.as_ref(), &mut stdout)?;
    stdout.flush()?;
    Ok(())
}

/// Every item of a paged listing: `fetch` gets a NextToken (empty at first) and returns a
/// page and the token after it. Stops at an empty token, or at one that does not move
/// (which would loop forever).
pub(crate) async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), CliError>>,
{
    let mut token = String::new();
    let mut all = Vec::new();
    loop {
        let (items, next) = fetch(token.clone()).await?;
        all.extend(items);
        if next.is_empty() || next == token {
            return Ok(all);
        }
        token = next;
    }
}
