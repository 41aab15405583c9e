//! The Addresses service: Elastic IPs.

use strato_proto::v1 as pb;
use strato_proto::v1::addresses_server::Addresses;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::network::addresses::POOL_NAME;
use crate::db::addresses::PublicIp;

impl Api {
    fn address(&self, e: PublicIp) -> pb::Address {
        pb::Address {
            tags: convert::tags(&e.tags),
            public_ip: e.public_ip,
            allocation_id: e.allocation_id.unwrap_or_default(),
            association_id: e.association_id.unwrap_or_default(),
            domain: "vpc".into(),
            instance_id: e.instance_id.unwrap_or_default(),
            network_interface_id: e.eni_id.unwrap_or_default(),
            network_interface_owner_id: e.eni_owner.unwrap_or_default(),
            private_ip_address: e.private_ip.unwrap_or_default(),
            public_ipv4_pool: POOL_NAME.into(),
            network_border_group: self.cloud.region().to_string(),
        }
    }
}

#[tonic::async_trait]
impl Addresses for Api {
    async fn allocate_address(
        &self,
        req: Request<pb::AllocateAddressRequest>,
    ) -> Result<Response<pb::AllocateAddressResponse>, Status> {
        self.handle_async("AllocateAddress", req, |account, r| async move {
            self.cloud
                .allocate_address(&account, &r.domain, convert::tags_in(&r.tags))
                .await
                .map(|a| pb::AllocateAddressResponse {
                    public_ip: a.public_ip,
                    allocation_id: a.allocation_id,
                    domain: "vpc".into(),
                    public_ipv4_pool: POOL_NAME.into(),
                    network_border_group: self.cloud.region().to_string(),
                })
        })
        .await
    }

    async fn associate_address(
        &self,
        req: Request<pb::AssociateAddressRequest>,
    ) -> Result<Response<pb::AssociateAddressResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("AssociateAddress", req, |account, r| async move {
            self.cloud
                .associate_address_routed(
                    &account,
                    &r.allocation_id,
                    &r.instance_id,
                    &r.network_interface_id,
                    &r.private_ip_address,
                    r.allow_reassociation,
                    origin,
                )
                .await
                .map(|association_id| pb::AssociateAddressResponse { association_id })
        })
        .await
    }

    async fn disassociate_address(
        &self,
        req: Request<pb::DisassociateAddressRequest>,
    ) -> Result<Response<pb::DisassociateAddressResponse>, Status> {
        self.handle_async("DisassociateAddress", req, |account, r| async move {
            self.cloud
                .disassociate_address(&account, &r.association_id)
                .await
                .map(|()| pb::DisassociateAddressResponse {})
        })
        .await
    }

    async fn release_address(
        &self,
        req: Request<pb::ReleaseAddressRequest>,
    ) -> Result<Response<pb::ReleaseAddressResponse>, Status> {
        self.handle_async("ReleaseAddress", req, |account, r| async move {
            self.cloud
                .release_address(&account, &r.allocation_id)
                .await
                .map(|()| pb::ReleaseAddressResponse {})
        })
        .await
    }

    async fn describe_addresses(
        &self,
        req: Request<pb::DescribeAddressesRequest>,
    ) -> Result<Response<pb::DescribeAddressesResponse>, Status> {
        self.handle("DescribeAddresses", req, |account, r| {
            self.cloud
                .describe_addresses(
                    account,
                    &r.allocation_ids,
                    &r.public_ips,
                    &convert::filters(&r.filters),
                )
                .map(|list| pb::DescribeAddressesResponse {
                    addresses: list.into_iter().map(|e| self.address(e)).collect(),
                })
        })
    }
}
