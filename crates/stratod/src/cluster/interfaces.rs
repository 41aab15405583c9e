//! Calls about network interfaces in a region of hosts, for both front ends: an interface
//! lives on the host that created it (its tap, its firewall entries and its DHCP lease are
//! that host's), the region's index (`owners`) says which, and a call about another host's
//! interface is forwarded to that host, as calls about volumes are (`volumes`). A call
//! another host forwarded acts here only.
//!
//! Routed: DescribeNetworkInterfaces (with IDs: each interface's host answers for it;
//! without: every available host's), AttachNetworkInterface (on the interface's host,
//! which must be the instance's), DetachNetworkInterface (on the host that has the
//! attachment), DeleteNetworkInterface, ModifyNetworkInterfaceAttribute and the calls that
//! assign and unassign its addresses. CreateNetworkInterface creates on the host asked and
//! puts the interface in the index.

use strato_proto::v1 as pb;

use strato_proto::v1::network_interfaces_client::NetworkInterfacesClient;
use tonic::transport::Channel;

use super::forward::{pb_filters, Interfaces, Link};
use super::membership::HostState;
use super::route::{Origin, Resource};
use super::volumes::{pairing, Answer, Pairing};
use crate::cloud::filters::Filter;
use crate::cloud::network::network_interfaces::{CreateEni, EniAttribute, EniView};
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// An interface described here (its record) or by its host (its API form).
pub type Described = Answer<EniView, pb::NetworkInterface>;

/// The refusal of an interface and an instance on different hosts.
fn apart(eni_id: &str, instance_id: &str, eni: &str, instance: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterCombination,
        format!(
            "Network interface {eni_id} lives on host {eni} and instance {instance_id} on \
             host {instance}: an interface's tap is on its host and attaches only to an \
             instance on that host."
        ),
    )
}

/// The filter that finds an attachment's interface.
fn attachment_filter(attachment_id: &str) -> Vec<Filter> {
    vec![Filter {
        name: "attachment.attachment-id".into(),
        values: vec![attachment_id.to_string()],
    }]
}

impl Cloud {
    /// The other host that holds interface `id`, if one does (`None`: answer here).
    async fn interface_elsewhere(
        &self,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> Option<(Link, String)> {
        self.elsewhere(Resource::NetworkInterface, account, id, origin)
            .await
    }

    /// `call` with `msg` on the host of interface `eni_id` when that is another host
    /// (`None`: the call is this host's).
    async fn on_interface_host<Req, Resp, F, Fut>(
        &self,
        account: &str,
        eni_id: &str,
        origin: Origin,
        msg: impl FnOnce() -> Req,
        call: F,
    ) -> Option<ApiResult<Resp>>
    where
        F: FnOnce(NetworkInterfacesClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let (link, host) = self.interface_elsewhere(account, eni_id, origin).await?;
        Some(link.on(&host, account, msg(), call).await)
    }

    /// CreateNetworkInterface, on this host; indexed in the region at once (the reconciler
    /// indexes what this misses).
    pub async fn create_network_interface_indexed(
        &self,
        account: &str,
        create: CreateEni,
    ) -> ApiResult<EniView> {
        let v = self.create_network_interface(account, create).await?;
        self.index_volumes(&[(v.eni.id.clone(), v.eni.owner.clone())])
            .await;
        Ok(v)
    }

    /// DescribeNetworkInterfaces across the region: with IDs each interface's host answers
    /// for it; without, every available host answers for its own (one that does not answer
    /// is left out). This host's come first, then the others' by ID.
    pub async fn describe_network_interfaces_routed(
        &self,
        account: &str,
        ids: &[String],
        filters: &[Filter],
        origin: Origin,
    ) -> ApiResult<Vec<Described>> {
        let here = |ids: &[String]| -> ApiResult<Vec<Described>> {
            let list = self.describe_network_interfaces(account, ids, filters)?;
            Ok(list.into_iter().map(Answer::Here).collect())
        };
        if self.cluster.is_none() || origin == Origin::RegionHost {
            return here(ids);
        }
        if ids.is_empty() {
            let mut all = here(ids)?;
            let there = super::fanout::interfaces_of_other_hosts(self, account, filters).await;
            all.extend(there.into_iter().map(Answer::There));
            return Ok(all);
        }
        let found = self
            .described_by_owner(
                Resource::NetworkInterface,
                account,
                ids,
                origin,
                |ids| {
                    let items = self.describe_network_interfaces(account, &ids, filters)?;
                    Ok(crate::cloud::paging::Page {
                        items,
                        next_token: String::new(),
                    })
                },
                |link, host, ids| async move {
                    link.describe_network_interfaces(&host, account, ids, filters)
                        .await
                },
            )
            .await?;
        let mut all: Vec<Described> = found.local.into_iter().map(Answer::Here).collect();
        all.extend(found.remote.into_iter().map(Answer::There));
        Ok(all)
    }

    /// AttachNetworkInterface, on the interface's host; refused when the instance is on
    /// another. The answer is the attachment's ID.
    pub async fn attach_network_interface_routed(
        &self,
        account: &str,
        eni_id: &str,
        instance_id: &str,
        device_index: Option<i32>,
        origin: Origin,
    ) -> ApiResult<String> {
        let (Some(region), Origin::Caller) = (&self.cluster, origin) else {
            return self.attach_network_interface(account, eni_id, instance_id, device_index);
        };
        let eni = self
            .place(Resource::NetworkInterface, account, eni_id, origin)
            .await;
        let instance = self
            .place(Resource::Instance, account, instance_id, origin)
            .await;
        match (pairing(region.host(), &eni, &instance), self.link()) {
            (Pairing::Apart { volume, instance }, _) => {
                Err(apart(eni_id, instance_id, &volume, &instance))
            }
            (Pairing::There(host), Some(link)) => {
                let msg = pb::AttachNetworkInterfaceRequest {
                    network_interface_id: eni_id.to_string(),
                    instance_id: instance_id.to_string(),
                    device_index,
                };
                link.on(&host, account, msg, |mut c: Interfaces, r| async move {
                    c.attach_network_interface(r).await
                })
                .await
                .map(|r| r.attachment_id)
            }
            _ => self.attach_network_interface(account, eni_id, instance_id, device_index),
        }
    }

    /// The checks of an AttachNetworkInterface that change nothing (DryRun), where the call
    /// would run.
    pub async fn check_attach_interface_routed(
        &self,
        account: &str,
        eni_id: &str,
        instance_id: &str,
        origin: Origin,
    ) -> ApiResult<()> {
        let pair = (Resource::NetworkInterface, eni_id, instance_id);
        self.check_pair_routed(account, pair, origin, apart).await
    }

    /// The host that has `account`'s attachment `attachment_id`: this one (`None`) when it
    /// has it or answers for it, else the first other available host whose interfaces
    /// show it. Attachment IDs are not in the region's index; a region has few hosts.
    pub async fn attachment_host(
        &self,
        account: &str,
        attachment_id: &str,
        origin: Origin,
    ) -> Option<(Link, String)> {
        let region = self.cluster.as_ref()?;
        if origin == Origin::RegionHost || !region.etcd_reachable() {
            return None;
        }
        let filter = attachment_filter(attachment_id);
        let mine = self.describe_network_interfaces(account, &[], &filter);
        if mine.map_or(true, |m| !m.is_empty()) {
            return None;
        }
        let link = self.link()?;
        for (name, h) in region.hosts() {
            if name == region.host() || h.state() != HostState::Available {
                continue;
            }
            let theirs = link
                .describe_network_interfaces(&name, account, Vec::new(), &filter)
                .await;
            if theirs.is_ok_and(|t| !t.is_empty()) {
                return Some((link, name));
            }
        }
        None
    }

    /// DetachNetworkInterface, on the host that has the attachment.
    pub async fn detach_network_interface_routed(
        &self,
        account: &str,
        attachment_id: &str,
        origin: Origin,
    ) -> ApiResult<()> {
        if let Some((link, host)) = self.attachment_host(account, attachment_id, origin).await {
            let msg = pb::DetachNetworkInterfaceRequest {
                attachment_id: attachment_id.to_string(),
                force: false,
            };
            return link
                .on(&host, account, msg, |mut c: Interfaces, r| async move {
                    c.detach_network_interface(r).await
                })
                .await
                .map(drop);
        }
        self.detach_network_interface(account, attachment_id).await
    }

    /// DeleteNetworkInterface, on the interface's host, which takes it out of the index.
    pub async fn delete_network_interface_routed(
        &self,
        account: &str,
        eni_id: &str,
        origin: Origin,
    ) -> ApiResult<()> {
        let msg = || pb::DeleteNetworkInterfaceRequest {
            network_interface_id: eni_id.to_string(),
        };
        let there = self
            .on_interface_host(account, eni_id, origin, msg, |mut c, r| async move {
                c.delete_network_interface(r).await
            })
            .await;
        if let Some(r) = there {
            return r.map(drop);
        }
        self.delete_network_interface(account, eni_id).await?;
        self.unindex(eni_id).await;
        Ok(())
    }

    /// AssignPrivateIpAddresses, on the interface's host: the addresses it assigned.
    pub async fn assign_private_ips_routed(
        &self,
        account: &str,
        eni_id: &str,
        ips: &[String],
        count: i32,
        origin: Origin,
    ) -> ApiResult<Vec<String>> {
        let msg = || pb::AssignPrivateIpAddressesRequest {
            network_interface_id: eni_id.to_string(),
            private_ip_addresses: ips.to_vec(),
            secondary_private_ip_address_count: count,
        };
        let there = self
            .on_interface_host(account, eni_id, origin, msg, |mut c, r| async move {
                c.assign_private_ip_addresses(r).await
            })
            .await;
        if let Some(r) = there {
            return r.map(|r| r.assigned_private_ip_addresses);
        }
        self.assign_private_ips(account, eni_id, ips, count).await
    }

    /// UnassignPrivateIpAddresses, on the interface's host.
    pub async fn unassign_private_ips_routed(
        &self,
        account: &str,
        eni_id: &str,
        ips: &[String],
        origin: Origin,
    ) -> ApiResult<()> {
        let msg = || pb::UnassignPrivateIpAddressesRequest {
            network_interface_id: eni_id.to_string(),
            private_ip_addresses: ips.to_vec(),
        };
        let there = self
            .on_interface_host(account, eni_id, origin, msg, |mut c, r| async move {
                c.unassign_private_ip_addresses(r).await
            })
            .await;
        if let Some(r) = there {
            return r.map(drop);
        }
        self.unassign_private_ips(account, eni_id, ips).await
    }

    /// ModifyNetworkInterfaceAttribute, on the interface's host.
    pub async fn modify_network_interface_attribute_routed(
        &self,
        account: &str,
        eni_id: &str,
        change: &EniAttribute,
        origin: Origin,
    ) -> ApiResult<()> {
        let msg = || pb::ModifyNetworkInterfaceAttributeRequest {
            network_interface_id: eni_id.to_string(),
            description: change.description.clone(),
            source_dest_check: change.source_dest_check,
            attachment: change.attachment.as_ref().map(|(id, delete)| {
                pb::NetworkInterfaceAttachmentChanges {
                    attachment_id: id.clone(),
                    delete_on_termination: *delete,
                }
            }),
            groups: change.groups.clone(),
        };
        let there = self
            .on_interface_host(account, eni_id, origin, msg, |mut c, r| async move {
                c.modify_network_interface_attribute(r).await
            })
            .await;
        if let Some(r) = there {
            return r.map(drop);
        }
        self.modify_network_interface_attribute(account, eni_id, change)
            .await
    }

    /// AssignIpv6Addresses, on the interface's host: the addresses it assigned.
    pub async fn assign_ipv6_addresses_routed(
        &self,
        account: &str,
        eni_id: &str,
        addresses: &[String],
        count: i32,
        origin: Origin,
    ) -> ApiResult<Vec<String>> {
        let msg = || pb::AssignIpv6AddressesRequest {
            network_interface_id: eni_id.to_string(),
            ipv6_addresses: addresses.to_vec(),
            ipv6_address_count: count,
        };
        let there = self
            .on_interface_host(account, eni_id, origin, msg, |mut c, r| async move {
                c.assign_ipv6_addresses(r).await
            })
            .await;
        if let Some(r) = there {
            return r.map(|r| r.assigned_ipv6_addresses);
        }
        self.assign_ipv6_addresses(account, eni_id, addresses, count)
            .await
    }

    /// UnassignIpv6Addresses, on the interface's host: the addresses it unassigned.
    pub async fn unassign_ipv6_addresses_routed(
        &self,
        account: &str,
        eni_id: &str,
        addresses: &[String],
        origin: Origin,
    ) -> ApiResult<Vec<String>> {
        let msg = || pb::UnassignIpv6AddressesRequest {
            network_interface_id: eni_id.to_string(),
            ipv6_addresses: addresses.to_vec(),
        };
        let there = self
            .on_interface_host(account, eni_id, origin, msg, |mut c, r| async move {
                c.unassign_ipv6_addresses(r).await
            })
            .await;
        if let Some(r) = there {
            return r.map(|r| r.unassigned_ipv6_addresses);
        }
        self.unassign_ipv6_addresses(account, eni_id, addresses)
            .await
    }
}

impl Link {
    /// DescribeNetworkInterfaces on `host`, of its own interfaces only.
    pub async fn describe_network_interfaces(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        filters: &[Filter],
    ) -> ApiResult<Vec<pb::NetworkInterface>> {
        let msg = pb::DescribeNetworkInterfacesRequest {
            network_interface_ids: ids,
            filters: pb_filters(filters),
        };
        self.on(host, account, msg, |mut c: Interfaces, r| async move {
            c.describe_network_interfaces(r).await
        })
        .await
        .map(|r| r.network_interfaces)
    }
}
