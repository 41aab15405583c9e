//! The Vpcs service: VPCs and subnets.

use strato_proto::v1 as pb;
use strato_proto::v1::vpcs_server::Vpcs;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::network::ipv6::AssociateVpcCidr;
use crate::cloud::network::vpcs::SubnetView;
use crate::db::ipv6::{SubnetIpv6Block, VpcIpv6Block};
use crate::db::network::Vpc;

impl Api {
    fn vpc_block(&self, b: VpcIpv6Block, state: &str) -> pb::VpcIpv6CidrBlockAssociation {
        pb::VpcIpv6CidrBlockAssociation {
            association_id: b.association_id,
            ipv6_cidr_block: b.cidr,
            state: state.into(),
            ipv6_pool: b.pool,
            network_border_group: self.cloud.cfg.region.clone(),
        }
    }

    fn subnet_block(b: SubnetIpv6Block, state: &str) -> pb::SubnetIpv6CidrBlockAssociation {
        pb::SubnetIpv6CidrBlockAssociation {
            association_id: b.association_id,
            ipv6_cidr_block: b.cidr,
            state: state.into(),
        }
    }

    fn vpc(&self, v: Vpc, owner: String) -> pb::Vpc {
        // A block that cannot be read is left out of the answer rather than failing it.
        let v6 = self.cloud.vpc_ipv6(&v.id).ok().flatten();
        pb::Vpc {
            ipv6_cidr_block_associations: v6
                .into_iter()
                .map(|b| self.vpc_block(b, "associated"))
                .collect(),
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
            ipv6_cidr_block_associations: v
                .ipv6
                .into_iter()
                .map(|b| Self::subnet_block(b, "associated"))
                .collect(),
            assign_ipv6_address_on_creation: v.assign_ipv6_on_creation,
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
                .create_vpc_regional(&account, &r.cidr_block, convert::tags_in(&r.tags))
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
                .delete_vpc_regional(&account, &r.vpc_id)
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
                .create_subnet_regional(&account, &r.vpc_id, &r.cidr_block, &r.availability_zone)
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
                .delete_subnet_regional(&account, &r.subnet_id)
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
                    r.assign_ipv6_address_on_creation.map(|v| v.value),
                )
                .map(|()| pb::ModifySubnetAttributeResponse {})
        })
    }

    async fn associate_vpc_cidr_block(
        &self,
        req: Request<pb::AssociateVpcCidrBlockRequest>,
    ) -> Result<Response<pb::AssociateVpcCidrBlockResponse>, Status> {
        self.handle("AssociateVpcCidrBlock", req, |account, r| {
            let ask = AssociateVpcCidr {
                vpc_id: r.vpc_id,
                amazon_provided: r.amazon_provided_ipv6_cidr_block,
                ipv6_cidr_block: r.ipv6_cidr_block,
                ipv6_pool: r.ipv6_pool,
                cidr_block: r.cidr_block,
            };
            self.cloud.associate_vpc_cidr_block(account, &ask).map(|b| {
                pb::AssociateVpcCidrBlockResponse {
                    vpc_id: b.vpc_id.clone(),
                    ipv6_cidr_block_association: Some(self.vpc_block(b, "associated")),
                }
            })
        })
    }

    async fn disassociate_vpc_cidr_block(
        &self,
        req: Request<pb::DisassociateVpcCidrBlockRequest>,
    ) -> Result<Response<pb::DisassociateVpcCidrBlockResponse>, Status> {
        self.handle("DisassociateVpcCidrBlock", req, |account, r| {
            self.cloud
                .disassociate_vpc_cidr_block(account, &r.association_id)
                .map(|b| pb::DisassociateVpcCidrBlockResponse {
                    vpc_id: b.vpc_id.clone(),
                    ipv6_cidr_block_association: Some(self.vpc_block(b, "disassociated")),
                })
        })
    }

    async fn associate_subnet_cidr_block(
        &self,
        req: Request<pb::AssociateSubnetCidrBlockRequest>,
    ) -> Result<Response<pb::AssociateSubnetCidrBlockResponse>, Status> {
        self.handle_async("AssociateSubnetCidrBlock", req, |account, r| async move {
            self.cloud
                .associate_subnet_cidr_block(&account, &r.subnet_id, &r.ipv6_cidr_block)
                .await
                .map(|b| pb::AssociateSubnetCidrBlockResponse {
                    subnet_id: b.subnet_id.clone(),
                    ipv6_cidr_block_association: Some(Self::subnet_block(b, "associated")),
                })
        })
        .await
    }

    async fn disassociate_subnet_cidr_block(
        &self,
        req: Request<pb::DisassociateSubnetCidrBlockRequest>,
    ) -> Result<Response<pb::DisassociateSubnetCidrBlockResponse>, Status> {
        self.handle_async(
            "DisassociateSubnetCidrBlock",
            req,
            |account, r| async move {
                self.cloud
                    .disassociate_subnet_cidr_block(&account, &r.association_id)
                    .await
                    .map(|b| pb::DisassociateSubnetCidrBlockResponse {
                        subnet_id: b.subnet_id.clone(),
                        ipv6_cidr_block_association: Some(Self::subnet_block(b, "disassociated")),
                    })
            },
        )
        .await
    }
}
