//! Regions, availability zones and placement groups.

use strato_proto::v1::{
    CreatePlacementGroupRequest, DeletePlacementGroupRequest, DescribeAvailabilityZonesRequest,
    DescribeHostsRequest, DescribePlacementGroupsRequest, DescribeRegionsRequest,
    ModifyInstancePlacementRequest,
};

use crate::args::placement::{
    CreatePlacementGroup, DeletePlacementGroup, DescribeAvailabilityZones, DescribeHosts,
    DescribePlacementGroups, DescribeRegions, ModifyInstancePlacement,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{ControlView, View};
use crate::parse::{flatten, tags_for};

/// `describe-regions`
pub async fn describe_regions(conn: &Conn, a: DescribeRegions) -> Result<View, CliError> {
    let request = DescribeRegionsRequest {
        region_names: a.region_names,
        filters: flatten(a.filters),
        all_regions: a.all_regions,
    };
    let response = conn
        .regions()
        .describe_regions(request)
        .await
        .map_err(conn.error("DescribeRegions"))?;
    Ok(View::Control(ControlView::Regions(
        response.into_inner().regions,
    )))
}

/// `describe-hosts`
pub async fn describe_hosts(conn: &Conn, a: DescribeHosts) -> Result<View, CliError> {
    let response = conn
        .hosts()
        .describe_hosts(DescribeHostsRequest {
            host_ids: a.host_ids,
        })
        .await
        .map_err(conn.error("DescribeHosts"))?;
    Ok(View::Control(ControlView::Hosts(
        response.into_inner().hosts,
    )))
}

/// `describe-availability-zones`
pub async fn describe_availability_zones(
    conn: &Conn,
    a: DescribeAvailabilityZones,
) -> Result<View, CliError> {
    let request = DescribeAvailabilityZonesRequest {
        zone_names: a.zone_names,
        zone_ids: a.zone_ids,
        filters: flatten(a.filters),
        all_availability_zones: a.all_availability_zones,
    };
    let response = conn
        .regions()
        .describe_availability_zones(request)
        .await
        .map_err(conn.error("DescribeAvailabilityZones"))?;
    Ok(View::Control(ControlView::AvailabilityZones(
        response.into_inner().availability_zones,
    )))
}

/// `create-placement-group`
pub async fn create_placement_group(
    conn: &Conn,
    a: CreatePlacementGroup,
) -> Result<View, CliError> {
    let tags = tags_for("placement-group", flatten(a.tag_specifications), Vec::new())
        .map_err(CliError::Usage)?;
    let request = CreatePlacementGroupRequest {
        group_name: a.group_name,
        strategy: a.strategy.unwrap_or_default(),
        partition_count: a.partition_count.unwrap_or_default(),
        spread_level: a.spread_level.unwrap_or_default(),
        tags,
    };
    let response = conn
        .placement_groups()
        .create_placement_group(request)
        .await
        .map_err(conn.error("CreatePlacementGroup"))?;
    Ok(View::Control(ControlView::PlacementGroup(
        response.into_inner().placement_group.unwrap_or_default(),
    )))
}

/// `describe-placement-groups`
pub async fn describe_placement_groups(
    conn: &Conn,
    a: DescribePlacementGroups,
) -> Result<View, CliError> {
    let request = DescribePlacementGroupsRequest {
        group_names: a.group_names,
        group_ids: a.group_ids,
        filters: flatten(a.filters),
    };
    let response = conn
        .placement_groups()
        .describe_placement_groups(request)
        .await
        .map_err(conn.error("DescribePlacementGroups"))?;
    Ok(View::Control(ControlView::PlacementGroups(
        response.into_inner().placement_groups,
    )))
}

/// `delete-placement-group`
pub async fn delete_placement_group(
    conn: &Conn,
    a: DeletePlacementGroup,
) -> Result<View, CliError> {
    let request = DeletePlacementGroupRequest {
        group_name: a.group_name,
    };
    conn.placement_groups()
        .delete_placement_group(request)
        .await
        .map_err(conn.error("DeletePlacementGroup"))?;
    Ok(View::Empty)
}

/// `modify-instance-placement`
pub async fn modify_instance_placement(
    conn: &Conn,
    a: ModifyInstancePlacement,
) -> Result<View, CliError> {
    let request = ModifyInstancePlacementRequest {
        instance_id: a.instance_id,
        group_name: a.group_name.unwrap_or_default(),
        group_id: a.group_id.unwrap_or_default(),
        partition_number: a.partition_number.unwrap_or_default(),
    };
    let response = conn
        .placement_groups()
        .modify_instance_placement(request)
        .await
        .map_err(conn.error("ModifyInstancePlacement"))?;
    Ok(View::Control(ControlView::Return(
        response.into_inner().success,
    )))
}
