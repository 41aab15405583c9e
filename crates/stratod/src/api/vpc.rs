//! The Vpcs service: VPCs and subnets.

use strato_proto::v1 as pb;
use strato_proto::v1::vpcs_server::Vpcs;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::network::vpcs::SubnetView;
use crate::db::network::Vpc;

impl Api {
    fn vpc(&self, v: Vpc, owner: String) -> pb::Vpc {
        pb::Vpc {
            tags: convert::tags(&v.tags),
            vpc_id: v.id,
            cidr_block: v.cidr,
            state: v.state,
            is_default: v.is_default,
            owner_id: owner,
            instance_tenancy: "default".into(),
        }
    }

    fn subnet(&self, v: SubnetView) -> pb::Subnet {
        let s = v.subnet;
        pb::Subnet {
            subnet_id: s.id,
            vpc_id: s.vpc_id,
            cidr_block: s.cidr,
            availability_zone: s.az,
            availability_zone_id: v.zone_id,
            available_ip_address_count: i32::try_from(v.available).unwrap_or(i32::MAX),
            default_for_az: s.is_default,
            state: "available".into(),
            owner_id: v.owner,
            map_public_ip_on_launch: v.map_public_ip_on_launch,
        }
    }
}

#[tonic::async_trait]
impl Vpcs for Api {
    async fn create_vpc(
        &self,
        req: Request<pb::CreateVpcRequest>,
    ) -> Result<Response<pb::CreateVpcResponse>, Status> {
        self.handle_async("CreateVpc", req, |account, r| async move {
            self.cloud
                .create_vpc(&account, &r.cidr_block, convert::tags_in(&r.tags))
                .await
                .map(|v| pb::CreateVpcResponse {
                    vpc: Some(self.vpc(v, account.clone())),
                })
        })
        .await
    }

    async fn describe_vpcs(
        &self,
        req: Request<pb::DescribeVpcsRequest>,
    ) -> Result<Response<pb::DescribeVpcsResponse>, Status> {
        self.handle("DescribeVpcs", req, |account, r| {
            self.cloud
                .describe_vpcs(account, &r.vpc_ids, &convert::filters(&r.filters))
                .map(|list| pb::DescribeVpcsResponse {
                    vpcs: list.into_iter().map(|(v, o)| self.vpc(v, o)).collect(),
                })
        })
    }

    async fn delete_vpc(
        &self,
        req: Request<pb::DeleteVpcRequest>,
    ) -> Result<Response<pb::DeleteVpcResponse>, Status> {
        self.handle_async("DeleteVpc", req, |account, r| async move {
            self.cloud
                .delete_vpc(&account, &r.vpc_id)
                .await
                .map(|()| pb::DeleteVpcResponse {})
        })
        .await
    }

    async fn create_subnet(
        &self,
        req: Request<pb::CreateSubnetRequest>,
    ) -> Result<Response<pb::CreateSubnetResponse>, Status> {
        self.handle_async("CreateSubnet", req, |account, r| async move {
            self.cloud
                .create_subnet(&account, &r.vpc_id, &r.cidr_block, &r.availability_zone)
                .await
                .map(|s| pb::CreateSubnetResponse {
                    subnet: Some(self.subnet(s)),
                })
        })
        .await
    }

    async fn describe_subnets(
        &self,
        req: Request<pb::DescribeSubnetsRequest>,
    ) -> Result<Response<pb::DescribeSubnetsResponse>, Status> {
        self.handle("DescribeSubnets", req, |account, r| {
            self.cloud
                .describe_subnets(account, &r.subnet_ids, &convert::filters(&r.filters))
                .map(|list| pb::DescribeSubnetsResponse {
                    subnets: list.into_iter().map(|v| self.subnet(v)).collect(),
                })
        })
    }

    async fn delete_subnet(
        &self,
        req: Request<pb::DeleteSubnetRequest>,
    ) -> Result<Response<pb::DeleteSubnetResponse>, Status> {
        self.handle_async("DeleteSubnet", req, |account, r| async move {
            self.cloud
                .delete_subnet(&account, &r.subnet_id)
                .await
                .map(|()| pb::DeleteSubnetResponse {})
        })
        .await
    }

    async fn modify_subnet_attribute(
        &self,
        req: Request<pb::ModifySubnetAttributeRequest>,
    ) -> Result<Response<pb::ModifySubnetAttributeResponse>, Status> {
        self.handle("ModifySubnetAttribute", req, |account, r| {
            self.cloud
                .modify_subnet_attribute(
                    account,
                    &r.subnet_id,
                    r.map_public_ip_on_launch.map(|v| v.value),
                )
                .map(|()| pb::ModifySubnetAttributeResponse {})
        })
    }
}
