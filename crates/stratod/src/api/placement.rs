//! The PlacementGroups service: placement groups and ModifyInstancePlacement.

use strato_proto::v1 as pb;
use strato_proto::v1::placement_groups_server::PlacementGroups;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::db::placement::PlacementGroup;

fn message(g: PlacementGroup) -> pb::PlacementGroup {
    pb::PlacementGroup {
        tags: convert::tags(&g.tags),
        group_name: g.name,
        group_id: g.id,
        strategy: g.strategy,
        partition_count: g.partition_count,
        spread_level: g.spread_level,
        state: "available".into(),
        create_time_unix: g.created,
        owner_id: g.owner,
    }
}

#[tonic::async_trait]
impl PlacementGroups for Api {
    async fn create_placement_group(
        &self,
        req: Request<pb::CreatePlacementGroupRequest>,
    ) -> Result<Response<pb::CreatePlacementGroupResponse>, Status> {
        self.handle_async("CreatePlacementGroup", req, |account, r| async move {
            self.cloud
                .create_placement_group_regional(
                    &account,
                    &r.group_name,
                    &r.strategy,
                    r.partition_count,
                    &r.spread_level,
                    convert::tags_in(&r.tags),
                )
                .await
                .map(|g| pb::CreatePlacementGroupResponse {
                    placement_group: Some(message(g)),
                })
        })
        .await
    }

    async fn describe_placement_groups(
        &self,
        req: Request<pb::DescribePlacementGroupsRequest>,
    ) -> Result<Response<pb::DescribePlacementGroupsResponse>, Status> {
        self.handle("DescribePlacementGroups", req, |account, r| {
            self.cloud
                .describe_placement_groups(
                    account,
                    &r.group_names,
                    &r.group_ids,
                    &convert::filters(&r.filters),
                )
                .map(|groups| pb::DescribePlacementGroupsResponse {
                    placement_groups: groups.into_iter().map(message).collect(),
                })
        })
    }

    async fn delete_placement_group(
        &self,
        req: Request<pb::DeletePlacementGroupRequest>,
    ) -> Result<Response<pb::DeletePlacementGroupResponse>, Status> {
        self.handle_async("DeletePlacementGroup", req, |account, r| async move {
            self.cloud
                .delete_placement_group_regional(&account, &r.group_name)
                .await
                .map(|_| pb::DeletePlacementGroupResponse {})
        })
        .await
    }

    async fn modify_instance_placement(
        &self,
        req: Request<pb::ModifyInstancePlacementRequest>,
    ) -> Result<Response<pb::ModifyInstancePlacementResponse>, Status> {
        self.handle("ModifyInstancePlacement", req, |account, r| {
            self.cloud
                .modify_instance_placement(
                    account,
                    &r.instance_id,
                    &r.group_name,
                    &r.group_id,
                    r.partition_number,
                )
                .map(|_| pb::ModifyInstancePlacementResponse { success: true })
        })
    }
}
