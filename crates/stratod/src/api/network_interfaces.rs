//! The NetworkInterfaces service: elastic network interfaces.

use strato_proto::v1 as pb;
use strato_proto::v1::network_interfaces_server::NetworkInterfaces;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::network::dns::name_in;
use crate::cloud::network::network_interfaces::{CreateEni, EniAttribute, EniView};
use crate::cluster::interfaces::Described;
use crate::cluster::volumes::Answer;

/// An ENI as the API shows it.
pub fn eni_message(v: EniView) -> pb::NetworkInterface {
    let dns = |ip: &str| name_in(ip, &v.dns_domain);
    let e = v.eni;
    let status = crate::cloud::network::network_interfaces::status(&e).to_string();
    let mut addresses = vec![pb::PrivateIpAddress {
        private_ip_address: e.private_ip.clone(),
        primary: true,
        private_dns_name: dns(&e.private_ip),
    }];
    addresses.extend(v.secondary.iter().map(|ip| pb::PrivateIpAddress {
        private_ip_address: ip.clone(),
        primary: false,
        private_dns_name: dns(ip),
    }));
    let attachment = match (&e.attachment_id, &e.instance_id) {
        (Some(att), Some(inst)) => Some(pb::NetworkInterfaceAttachment {
            attachment_id: att.clone(),
            instance_id: inst.clone(),
            instance_owner_id: e.owner.clone(),
            device_index: e.device_index,
            status: "attached".into(),
            attach_time_unix: e.attach_time.unwrap_or(0),
            delete_on_termination: e.delete_on_termination,
        }),
        _ => None,
    };
    pb::NetworkInterface {
        private_dns_name: dns(&e.private_ip),
        network_interface_id: e.id,
        subnet_id: e.subnet_id,
        vpc_id: v.subnet.vpc_id,
        availability_zone: v.subnet.az,
        description: e.description,
        owner_id: e.owner,
        status,
        mac_address: e.mac,
        private_ip_address: e.private_ip,
        private_ip_addresses: addresses,
        source_dest_check: e.source_dest_check,
        interface_type: "interface".into(),
        attachment,
        group_ids: v.groups,
        ipv6_addresses: v
            .ipv6
            .into_iter()
            .map(|a| pb::NetworkInterfaceIpv6Address {
                ipv6_address: a,
                is_primary_ipv6: false,
            })
            .collect(),
        tags: convert::tags(&e.tags),
    }
}

/// An interface described here or by its host, as the API shows it.
fn message(d: Described) -> pb::NetworkInterface {
    match d {
        Answer::Here(v) => eni_message(v),
        Answer::There(m) => m,
    }
}

#[tonic::async_trait]
impl NetworkInterfaces for Api {
    async fn create_network_interface(
        &self,
        req: Request<pb::CreateNetworkInterfaceRequest>,
    ) -> Result<Response<pb::CreateNetworkInterfaceResponse>, Status> {
        self.handle_async("CreateNetworkInterface", req, |account, r| async move {
            let create = CreateEni {
                subnet_id: r.subnet_id,
                private_ip: r.private_ip_address,
                description: r.description,
                groups: r.groups,
                secondary_count: r.secondary_private_ip_address_count,
                secondary_ips: r.private_ip_addresses,
                tags: convert::tags_in(&r.tags),
                ipv6_count: r.ipv6_address_count,
                ipv6_addresses: r.ipv6_addresses,
            };
            self.cloud
                .create_network_interface_indexed(&account, create)
                .await
                .map(|v| pb::CreateNetworkInterfaceResponse {
                    network_interface: Some(eni_message(v)),
                })
        })
        .await
    }

    async fn describe_network_interfaces(
        &self,
        req: Request<pb::DescribeNetworkInterfacesRequest>,
    ) -> Result<Response<pb::DescribeNetworkInterfacesResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DescribeNetworkInterfaces", req, |account, r| async move {
            self.cloud
                .describe_network_interfaces_routed(
                    &account,
                    &r.network_interface_ids,
                    &convert::filters(&r.filters),
                    origin,
                )
                .await
                .map(|list| pb::DescribeNetworkInterfacesResponse {
                    network_interfaces: list.into_iter().map(message).collect(),
                })
        })
        .await
    }

    async fn attach_network_interface(
        &self,
        req: Request<pb::AttachNetworkInterfaceRequest>,
    ) -> Result<Response<pb::AttachNetworkInterfaceResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("AttachNetworkInterface", req, |account, r| async move {
            self.cloud
                .attach_network_interface_routed(
                    &account,
                    &r.network_interface_id,
                    &r.instance_id,
                    r.device_index,
                    origin,
                )
                .await
                .map(|attachment_id| pb::AttachNetworkInterfaceResponse { attachment_id })
        })
        .await
    }

    async fn detach_network_interface(
        &self,
        req: Request<pb::DetachNetworkInterfaceRequest>,
    ) -> Result<Response<pb::DetachNetworkInterfaceResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DetachNetworkInterface", req, |account, r| async move {
            self.cloud
                .detach_network_interface_routed(&account, &r.attachment_id, origin)
                .await
                .map(|()| pb::DetachNetworkInterfaceResponse {})
        })
        .await
    }

    async fn delete_network_interface(
        &self,
        req: Request<pb::DeleteNetworkInterfaceRequest>,
    ) -> Result<Response<pb::DeleteNetworkInterfaceResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DeleteNetworkInterface", req, |account, r| async move {
            self.cloud
                .delete_network_interface_routed(&account, &r.network_interface_id, origin)
                .await
                .map(|()| pb::DeleteNetworkInterfaceResponse {})
        })
        .await
    }

    async fn assign_private_ip_addresses(
        &self,
        req: Request<pb::AssignPrivateIpAddressesRequest>,
    ) -> Result<Response<pb::AssignPrivateIpAddressesResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("AssignPrivateIpAddresses", req, |account, r| async move {
            self.cloud
                .assign_private_ips_routed(
                    &account,
                    &r.network_interface_id,
                    &r.private_ip_addresses,
                    r.secondary_private_ip_address_count,
                    origin,
                )
                .await
                .map(|added| pb::AssignPrivateIpAddressesResponse {
                    network_interface_id: r.network_interface_id.clone(),
                    assigned_private_ip_addresses: added,
                })
        })
        .await
    }

    async fn unassign_private_ip_addresses(
        &self,
        req: Request<pb::UnassignPrivateIpAddressesRequest>,
    ) -> Result<Response<pb::UnassignPrivateIpAddressesResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("UnassignPrivateIpAddresses", req, |account, r| async move {
            self.cloud
                .unassign_private_ips_routed(
                    &account,
                    &r.network_interface_id,
                    &r.private_ip_addresses,
                    origin,
                )
                .await
                .map(|()| pb::UnassignPrivateIpAddressesResponse {})
        })
        .await
    }

    async fn modify_network_interface_attribute(
        &self,
        req: Request<pb::ModifyNetworkInterfaceAttributeRequest>,
    ) -> Result<Response<pb::ModifyNetworkInterfaceAttributeResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async(
            "ModifyNetworkInterfaceAttribute",
            req,
            |account, r| async move {
                let change = EniAttribute {
                    description: r.description,
                    source_dest_check: r.source_dest_check,
                    attachment: r
                        .attachment
                        .map(|a| (a.attachment_id, a.delete_on_termination)),
                    groups: r.groups,
                };
                self.cloud
                    .modify_network_interface_attribute_routed(
                        &account,
                        &r.network_interface_id,
                        &change,
                        origin,
                    )
                    .await
                    .map(|()| pb::ModifyNetworkInterfaceAttributeResponse {})
            },
        )
        .await
    }

    async fn assign_ipv6_addresses(
        &self,
        req: Request<pb::AssignIpv6AddressesRequest>,
    ) -> Result<Response<pb::AssignIpv6AddressesResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("AssignIpv6Addresses", req, |account, r| async move {
            self.cloud
                .assign_ipv6_addresses_routed(
                    &account,
                    &r.network_interface_id,
                    &r.ipv6_addresses,
                    r.ipv6_address_count,
                    origin,
                )
                .await
                .map(|added| pb::AssignIpv6AddressesResponse {
                    network_interface_id: r.network_interface_id.clone(),
                    assigned_ipv6_addresses: added,
                })
        })
        .await
    }

    async fn unassign_ipv6_addresses(
        &self,
        req: Request<pb::UnassignIpv6AddressesRequest>,
    ) -> Result<Response<pb::UnassignIpv6AddressesResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("UnassignIpv6Addresses", req, |account, r| async move {
            self.cloud
                .unassign_ipv6_addresses_routed(
                    &account,
                    &r.network_interface_id,
                    &r.ipv6_addresses,
                    origin,
                )
                .await
                .map(|gone| pb::UnassignIpv6AddressesResponse {
                    network_interface_id: r.network_interface_id.clone(),
                    unassigned_ipv6_addresses: gone,
                })
        })
        .await
    }
}
