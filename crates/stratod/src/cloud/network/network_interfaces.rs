//! Elastic network interfaces of their own: CreateNetworkInterface,
//! DescribeNetworkInterfaces, Attach-, Detach- and DeleteNetworkInterface, Assign- and
//! UnassignPrivateIpAddresses and ModifyNetworkInterfaceAttribute.
//!
//! An ENI lives in one subnet with a primary private address and a MAC that never change.
//! While attached it is a tap on its subnet's VPC bridge (created when its instance boots,
//! removed when it is detached), which the monitor shows the guest as `eth<n>` in device
//! index order. Attaching and detaching need a stopped instance: the monitor has no net
//! hot-plug. Secondary addresses are only recorded: the guest configures them itself, and
//! DHCP serves the primary address only.

use std::net::Ipv4Addr;

use super::plumbing::{netmask, parse_cidr};
use crate::cloud::filters::{self, Filter};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::network::{Eni, EniInsert, Subnet};
use crate::db::network_interfaces::Attach;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::lifecycle::State;

/// Filter names of DescribeNetworkInterfaces.
pub const ENI_FILTERS: &[&str] = &[
    "network-interface-id",
    "subnet-id",
    "vpc-id",
    "availability-zone",
    "attachment.instance-id",
    "attachment.attachment-id",
    "attachment.device-index",
    "attachment.status",
    "status",
    "private-ip-address",
    "addresses.private-ip-address",
    "mac-address",
    "owner-id",
    "description",
    "source-dest-check",
    "interface-type",
    "tag-key",
    "ipv6-addresses.ipv6-address",
    "ipv6-address",
];

/// Most ENIs per instance (EC2's limit for small instance types; the catalog has no
/// per-type figure).
pub const MAX_ENIS: usize = 4;
/// Most secondary private addresses per ENI.
pub const MAX_SECONDARY: usize = 10;
/// Highest device index.
const MAX_DEVICE_INDEX: i32 = 15;

/// What CreateNetworkInterface asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateEni {
    /// Subnet.
    pub subnet_id: String,
    /// Primary private address (empty: the lowest free one).
    pub private_ip: String,
    /// Description.
    pub description: String,
    /// Security groups.
    pub groups: Vec<String>,
    /// Secondary addresses picked by the daemon.
    pub secondary_count: i32,
    /// Secondary addresses named by the caller.
    pub secondary_ips: Vec<String>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// IPv6 addresses the daemon picks (absent: the subnet's AssignIpv6AddressOnCreation
    /// decides whether it picks one).
    pub ipv6_count: Option<i32>,
    /// IPv6 addresses named by the caller.
    pub ipv6_addresses: Vec<String>,
}

/// ModifyNetworkInterfaceAttribute's change: exactly one of these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EniAttribute {
    /// A new description.
    pub description: Option<String>,
    /// The source/destination check flag.
    pub source_dest_check: Option<bool>,
    /// DeleteOnTermination of the attachment with this ID.
    pub attachment: Option<(String, bool)>,
    /// The security groups that replace the interface's.
    pub groups: Vec<String>,
}

/// An ENI as the API shows it.
#[derive(Debug, Clone)]
pub struct EniView {
    /// The record.
    pub eni: Eni,
    /// Its subnet.
    pub subnet: Subnet,
    /// Secondary private addresses.
    pub secondary: Vec<String>,
    /// Its security groups.
    pub groups: Vec<String>,
    /// Its IPv6 addresses.
    pub ipv6: Vec<String>,
    /// The region's private DNS domain (`dns::domain`).
    pub dns_domain: String,
}

impl EniView {
    /// The private DNS name of one of its addresses.
    pub fn private_dns_name(&self, ip: &str) -> String {
        super::dns::name_in(ip, &self.dns_domain)
    }

    /// `in-use` while attached, else `available`.
    pub fn status(&self) -> &'static str {
        status(&self.eni)
    }
}

/// `in-use` while attached, else `available`.
pub fn status(eni: &Eni) -> &'static str {
    if eni.instance_id.is_some() {
        "in-use"
    } else {
        "available"
    }
}

/// Checks that `ip` is a usable instance address of `cidr`: inside it and not one of the
/// five EC2 reserves (the network address, the next three, the broadcast address).
pub fn check_address(cidr: &str, ip: &str) -> ApiResult<Ipv4Addr> {
    let shown: String = ip.chars().take(64).collect();
    let addr: Ipv4Addr = ip
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid IPv4 address: {shown}.")))?;
    let (net, prefix) =
        parse_cidr(cidr).ok_or_else(|| ApiError::internal(format!("bad subnet range {cidr}")))?;
    let mask = u32::from(netmask(prefix));
    let base = u32::from(net) & mask;
    let a = u32::from(addr);
    if a & mask != base {
        return Err(ApiError::invalid(format!(
            "Address {addr} does not fall within the subnet's address range {cidr}."
        )));
    }
    let off = a - base;
    if off < 4 || off == !mask {
        return Err(ApiError::invalid(format!(
            "Address {addr} is in subnet {cidr}'s reserved address range."
        )));
    }
    Ok(addr)
}

/// The `n` lowest free instance addresses of `cidr`, or None if there are fewer.
pub fn pick_ips(cidr: &str, used: &[String], n: usize) -> Option<Vec<Ipv4Addr>> {
    let mut used = used.to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ip = super::plumbing::pick_ip(cidr, &used)?;
        used.push(ip.to_string());
        out.push(ip);
    }
    Some(out)
}

pub(super) fn in_use(ip: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidIpAddressInUse,
        format!("The specified address {ip} is already in use."),
    )
}

/// How many times a call picks again when hosts of the region take its picks meanwhile.
pub(super) const CLAIM_TRIES: usize = 4;

pub(super) fn contended() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "Other hosts of the region kept taking the free addresses of the subnet; try again.",
    )
}

pub(super) fn no_addresses(subnet: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InsufficientFreeAddressesInSubnet,
        format!("The subnet {subnet} has not enough free addresses."),
    )
}

pub(super) fn too_many_secondary() -> ApiError {
    ApiError::new(
        ErrorCode::PrivateIpAddressLimitExceeded,
        format!("A network interface has at most {MAX_SECONDARY} secondary private addresses."),
    )
}

impl Cloud {
    /// The `(ENI ID, account)` of every network interface on this host (the region's index
    /// follows them).
    pub fn held_interfaces(&self) -> ApiResult<Vec<(String, String)>> {
        Ok(self.db.eni_owners()?)
    }

    /// The name of each of security groups `ids` this host knows (empty for one it does
    /// not), for an interface another host of the region described.
    pub fn group_names(&self, ids: &[String]) -> ApiResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for id in ids {
            let name = self.db.security_group(id)?.map(|g| g.name);
            out.push((id.clone(), name.unwrap_or_default()));
        }
        Ok(out)
    }

    /// The caller's ENI.
    pub fn owned_eni(&self, account: &str, id: &str) -> ApiResult<Eni> {
        if id.is_empty() {
            return Err(ApiError::missing("NetworkInterfaceId"));
        }
        ids::check(Kind::NetworkInterface, id)?;
        match self.db.eni(id)? {
            Some(e) if e.owner == account => Ok(e),
            _ => Err(Kind::NetworkInterface.not_found(id)),
        }
    }

    pub(super) fn eni_subnet(&self, eni: &Eni) -> ApiResult<Subnet> {
        self.db
            .subnet(&eni.subnet_id)?
            .ok_or_else(|| ApiError::internal(format!("subnet {} is gone", eni.subnet_id)))
    }

    /// CreateNetworkInterface: the records, then the firewall, so that the interface's
    /// rules and anti-spoofing entries exist before anything can use its tap.
    /// In a region subnet its addresses are claimed in the region first: addresses other
    /// hosts claimed are never picked, and one another host claimed in the meantime is
    /// given back and another picked (or, named by the caller, refused).
    pub async fn create_network_interface(
        &self,
        account: &str,
        req: CreateEni,
    ) -> ApiResult<EniView> {
        let mut avoid = Vec::new();
        for _ in 0..CLAIM_TRIES {
            avoid.extend(self.claimed_ips(&req.subnet_id).await?);
            let view = self.new_network_interface(account, req.clone(), &avoid)?;
            let mut addrs = vec![view.eni.private_ip.clone()];
            addrs.extend(view.secondary.iter().cloned());
            match self.claim_these(account, &req.subnet_id, &addrs).await {
                Ok(None) => {
                    self.apply_firewall().await?;
                    return Ok(view);
                }
                Ok(Some(lost)) => {
                    self.db.delete_eni(&view.eni.id)?;
                    if lost == req.private_ip || req.secondary_ips.contains(&lost) {
                        return Err(in_use(&lost));
                    }
                    avoid.push(lost);
                }
                Err(e) => {
                    self.db.delete_eni(&view.eni.id)?;
                    return Err(e);
                }
            }
        }
        Err(contended())
    }

    /// The records of CreateNetworkInterface; addresses in `avoid` (claimed by hosts of the
    /// region) are in use.
    fn new_network_interface(
        &self,
        account: &str,
        req: CreateEni,
        avoid: &[String],
    ) -> ApiResult<EniView> {
        if req.subnet_id.is_empty() {
            return Err(ApiError::missing("SubnetId"));
        }
        ids::check(Kind::Subnet, &req.subnet_id)?;
        let subnet = self
            .db
            .subnet(&req.subnet_id)?
            .ok_or_else(|| Kind::Subnet.not_found(&req.subnet_id))?;
        if !self.subnet_visible(account, &subnet)? {
            return Err(Kind::Subnet.not_found(&req.subnet_id));
        }
        ids::check_all(Kind::SecurityGroup, &req.groups)?;
        // None named: the VPC's default group.
        let groups = self.launch_groups(account, &subnet.vpc_id, &req.groups, &[])?;
        if req.description.chars().count() > 255 {
            return Err(ApiError::invalid(
                "A description is at most 255 characters.",
            ));
        }
        if req.secondary_count != 0 && !req.secondary_ips.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "Give SecondaryPrivateIpAddressCount or PrivateIpAddresses, not both.",
            ));
        }
        let count = usize::try_from(req.secondary_count)
            .map_err(|_| ApiError::invalid("SecondaryPrivateIpAddressCount must be positive."))?;
        if count.max(req.secondary_ips.len()) > MAX_SECONDARY {
            return Err(too_many_secondary());
        }
        let primary = if req.private_ip.is_empty() {
            None
        } else {
            Some(check_address(&subnet.cidr, &req.private_ip)?.to_string())
        };
        let mut named = Vec::new();
        for ip in &req.secondary_ips {
            named.push(check_address(&subnet.cidr, ip)?.to_string());
        }
        if let Some(p) = &primary {
            if named.contains(p) {
                return Err(ApiError::invalid(format!(
                    "{p} is given as primary and as secondary address."
                )));
            }
        }
        let ask = self.ipv6_ask(&subnet, &req.ipv6_addresses, req.ipv6_count)?;
        let now = crate::db::now_s();
        // A concurrent create or launch may take a picked address first; the insert refuses
        // and the loop picks again. Addresses the caller named are not picked again.
        for _ in 0..64 {
            let mut used = self.db.used_ips(&subnet.id)?;
            used.extend(avoid.iter().cloned());
            for ip in primary.iter().chain(&named) {
                if used.contains(ip) {
                    return Err(in_use(ip));
                }
            }
            let mut taken = used.clone();
            taken.extend(primary.iter().cloned());
            taken.extend(named.iter().cloned());
            let ip = match &primary {
                Some(p) => p.clone(),
                None => super::plumbing::pick_ip(&subnet.cidr, &taken)
                    .ok_or_else(|| no_addresses(&subnet.id))?
                    .to_string(),
            };
            taken.push(ip.clone());
            let mut secondary = named.clone();
            secondary.extend(
                pick_ips(&subnet.cidr, &taken, count)
                    .ok_or_else(|| no_addresses(&subnet.id))?
                    .into_iter()
                    .map(|a| a.to_string()),
            );
            let id = ids::new_id(Kind::NetworkInterface);
            let eni = Eni {
                tap: format!("tap{}", &id[4..16]),
                id,
                owner: account.to_string(),
                subnet_id: subnet.id.clone(),
                instance_id: None,
                device_index: 0,
                private_ip: ip,
                mac: strato_net::MacAddr::random().to_string(),
                description: req.description.clone(),
                attachment_id: None,
                attach_time: None,
                delete_on_termination: false,
                source_dest_check: true,
                tags: req.tags.clone(),
                created: now,
            };
            match self.db.insert_eni_with(&eni, &secondary)? {
                EniInsert::Inserted => {
                    let ipv6 = match self.give_ipv6(&eni.id, &subnet, &ask) {
                        Ok(v) => v,
                        Err(e) => {
                            // All or nothing: the interface goes with its addresses.
                            self.db.delete_eni(&eni.id)?;
                            return Err(e);
                        }
                    };
                    self.db.set_eni_groups(&eni.id, &groups)?;
                    return Ok(EniView {
                        ipv6,
                        groups: self.db.eni_groups(&eni.id)?,
                        eni,
                        subnet,
                        secondary,
                        dns_domain: super::dns::domain(&self.cfg.region),
                    });
                }
                EniInsert::AddressTaken => {}
                EniInsert::SubnetGone => return Err(Kind::Subnet.not_found(&subnet.id)),
            }
        }
        Err(ApiError::internal("Could not allocate a private address."))
    }

    /// DescribeNetworkInterfaces: the named ones (each must be the caller's) or all of the
    /// caller's, filtered.
    pub fn describe_network_interfaces(
        &self,
        account: &str,
        eni_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<EniView>> {
        filters::check_names(f, ENI_FILTERS)?;
        ids::check_all(Kind::NetworkInterface, eni_ids)?;
        let all = self.db.account_enis(account)?;
        if let Some(id) = eni_ids.iter().find(|id| !all.iter().any(|e| &e.id == *id)) {
            return Err(Kind::NetworkInterface.not_found(id));
        }
        let mut out = Vec::new();
        for eni in all {
            if !eni_ids.is_empty() && !eni_ids.contains(&eni.id) {
                continue;
            }
            let Some(subnet) = self.db.subnet(&eni.subnet_id)? else {
                continue;
            };
            let mut view = EniView {
                secondary: self.db.secondary_ips(&eni.id)?,
                ipv6: self.db.eni_ipv6(&eni.id)?,
                eni,
                subnet,
                groups: Vec::new(),
                dns_domain: super::dns::domain(&self.cfg.region),
            };
            let ok = filters::matches(f, |name| {
                let e = &view.eni;
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "network-interface-id" => one(&e.id),
                    "subnet-id" => one(&e.subnet_id),
                    "vpc-id" => one(&view.subnet.vpc_id),
                    "availability-zone" => one(&view.subnet.az),
                    "attachment.instance-id" => Some(e.instance_id.iter().cloned().collect()),
                    "attachment.attachment-id" => Some(e.attachment_id.iter().cloned().collect()),
                    "attachment.device-index" => Some(
                        e.attachment_id
                            .iter()
                            .map(|_| e.device_index.to_string())
                            .collect(),
                    ),
                    "attachment.status" => Some(
                        e.attachment_id
                            .iter()
                            .map(|_| "attached".to_string())
                            .collect(),
                    ),
                    "status" => one(view.status()),
                    "private-ip-address" | "addresses.private-ip-address" => {
                        let mut v = vec![e.private_ip.clone()];
                        v.extend(view.secondary.iter().cloned());
                        Some(v)
                    }
                    "mac-address" => one(&e.mac),
                    "owner-id" => one(&e.owner),
                    "description" => one(&e.description),
                    "source-dest-check" => one(&e.source_dest_check.to_string()),
                    "interface-type" => one("interface"),
                    "ipv6-addresses.ipv6-address" | "ipv6-address" => Some(view.ipv6.clone()),
                    n => filters::tag_values(&e.tags, n),
                }
            })?;
            if ok {
                view.groups = self.db.eni_groups(&view.eni.id)?;
                out.push(view);
            }
        }
        Ok(out)
    }

    /// The interfaces of an instance as a front end shows them, primary first.
    pub fn instance_eni_views(&self, instance_id: &str) -> ApiResult<Vec<EniView>> {
        let mut out = Vec::new();
        for eni in self.db.instance_enis(instance_id)? {
            let Some(subnet) = self.db.subnet(&eni.subnet_id)? else {
                continue;
            };
            out.push(EniView {
                secondary: self.db.secondary_ips(&eni.id)?,
                ipv6: self.db.eni_ipv6(&eni.id)?,
                groups: self.db.eni_groups(&eni.id)?,
                eni,
                subnet,
                dns_domain: super::dns::domain(&self.cfg.region),
            });
        }
        Ok(out)
    }

    /// AttachNetworkInterface: an available ENI onto a stopped instance in the same zone and
    /// VPC, at a free device index; the tap appears when the instance starts.
    pub fn attach_network_interface(
        &self,
        account: &str,
        eni_id: &str,
        instance_id: &str,
        device_index: Option<i32>,
    ) -> ApiResult<String> {
        if instance_id.is_empty() {
            return Err(ApiError::missing("InstanceId"));
        }
        let device_index = device_index.ok_or_else(|| ApiError::missing("DeviceIndex"))?;
        let eni = self.owned_eni(account, eni_id)?;
        let inst = self.owned_instance(account, instance_id)?;
        if !(0..=MAX_DEVICE_INDEX).contains(&device_index) {
            return Err(ApiError::invalid(format!(
                "Invalid device index {device_index}: use 1 to {MAX_DEVICE_INDEX}."
            )));
        }
        if eni.instance_id.is_some() {
            return Err(eni_in_use(&eni.id));
        }
        if inst.state != State::Stopped {
            return Err(ApiError::incorrect_state(
                &inst.id,
                inst.state.name(),
                "given a network interface",
            ));
        }
        let subnet = self.eni_subnet(&eni)?;
        if subnet.az != inst.az {
            return Err(ApiError::invalid(format!(
                "The network interface {} is in {} and the instance {} in {}: they must be in the same availability zone.",
                eni.id, subnet.az, inst.id, inst.az
            )));
        }
        let enis = self.db.instance_enis(&inst.id)?;
        if let Some(primary) = enis.first() {
            let vpc = self.eni_subnet(primary)?.vpc_id;
            if vpc != subnet.vpc_id {
                return Err(ApiError::invalid(format!(
                    "The network interface {} is in {} and the instance {} in {vpc}: they must be in the same VPC.",
                    eni.id, subnet.vpc_id, inst.id
                )));
            }
        }
        // The monitor takes 16 disks and nets together; launches keep room for one net.
        let disks = self.db.instance_volumes(&inst.id)?.len()
            + inst.instance_store.len()
            + 1
            + crate::cloud::compute::launch::HOT_SLOTS;
        let max = MAX_ENIS.min(crate::cloud::compute::launch::MAX_DEVICES.saturating_sub(disks));
        let attachment = ids::new_id(Kind::NetworkInterfaceAttachment);
        match self.db.attach_eni(
            &eni.id,
            &inst.id,
            device_index,
            &attachment,
            max,
            crate::db::now_s(),
        )? {
            Attach::Done => Ok(attachment),
            Attach::InUse => Err(eni_in_use(&eni.id)),
            Attach::NotStopped(state) => Err(ApiError::incorrect_state(
                &inst.id,
                &state,
                "given a network interface",
            )),
            Attach::IndexTaken => Err(ApiError::invalid(format!(
                "Instance {} already has an interface attached at device index {device_index}.",
                inst.id
            ))),
            Attach::Full => Err(ApiError::new(
                ErrorCode::AttachmentLimitExceeded,
                format!(
                    "Instance {} has the most network interfaces it may have ({max}).",
                    inst.id
                ),
            )),
        }
    }

    /// DetachNetworkInterface: an ENI other than the primary, from a stopped instance; its
    /// tap goes.
    pub async fn detach_network_interface(
        &self,
        account: &str,
        attachment_id: &str,
    ) -> ApiResult<()> {
        if attachment_id.is_empty() {
            return Err(ApiError::missing("AttachmentId"));
        }
        ids::check(Kind::NetworkInterfaceAttachment, attachment_id)?;
        let eni = self
            .db
            .eni_by_attachment(attachment_id)?
            .filter(|e| e.owner == account)
            .ok_or_else(|| Kind::NetworkInterfaceAttachment.not_found(attachment_id))?;
        if eni.device_index == 0 {
            return Err(ApiError::new(
                ErrorCode::OperationNotPermitted,
                format!(
                    "The network interface at device index 0 ({}) cannot be detached.",
                    eni.id
                ),
            ));
        }
        let instance = eni.instance_id.clone().unwrap_or_default();
        if !self.db.detach_eni(&eni.id, &[State::Stopped])? {
            let state = self
                .db
                .instance(&instance)?
                .map(|i| i.state.name())
                .unwrap_or("terminated");
            return Err(ApiError::incorrect_state(
                &instance,
                state,
                "stripped of a network interface",
            ));
        }
        self.unplug(&eni).await;
        Ok(())
    }

    /// DeleteNetworkInterface: refused while attached.
    pub async fn delete_network_interface(&self, account: &str, eni_id: &str) -> ApiResult<()> {
        let eni = self.owned_eni(account, eni_id)?;
        if eni.instance_id.is_some() || !self.db.delete_eni_if_available(&eni.id)? {
            return Err(eni_in_use(&eni.id));
        }
        // An available ENI has no tap; this clears one a crash may have left.
        self.unplug(&eni).await;
        // As in EC2, its Elastic IPs are disassociated (and stay allocated).
        if self.db.unmap_eni(&eni.id, None)? > 0 {
            self.nat_changed();
        }
        // Its address may go to another interface next.
        self.apply_firewall().await
    }

    /// ModifyNetworkInterfaceAttribute: exactly one of the description, the
    /// source/destination check flag, the attachment's DeleteOnTermination and the security
    /// groups. The source/destination check is enforced by the anti-spoofing rules, applied
    /// at once.
    pub async fn modify_network_interface_attribute(
        &self,
        account: &str,
        eni_id: &str,
        change: &EniAttribute,
    ) -> ApiResult<()> {
        if !change.groups.is_empty() {
            if change.description.is_some()
                || change.source_dest_check.is_some()
                || change.attachment.is_some()
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterCombination,
                    "Give exactly one of Description, SourceDestCheck, Attachment and Groups.",
                ));
            }
            return self.set_eni_groups(account, eni_id, &change.groups).await;
        }
        self.modify_network_interface(
            account,
            eni_id,
            change.description.as_deref(),
            change.source_dest_check,
            change.attachment.as_ref().map(|(id, d)| (id.as_str(), *d)),
        )?;
        if change.source_dest_check.is_some() {
            self.apply_firewall().await?;
        }
        Ok(())
    }

    /// The records of ModifyNetworkInterfaceAttribute without groups: one of the
    /// description, the source/destination check flag and the attachment's
    /// DeleteOnTermination.
    fn modify_network_interface(
        &self,
        account: &str,
        eni_id: &str,
        description: Option<&str>,
        source_dest_check: Option<bool>,
        attachment: Option<(&str, bool)>,
    ) -> ApiResult<()> {
        let eni = self.owned_eni(account, eni_id)?;
        let given = [
            description.is_some(),
            source_dest_check.is_some(),
            attachment.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "Give exactly one of Description, SourceDestCheck and Attachment.",
            ));
        }
        if description.is_some_and(|d| d.chars().count() > 255) {
            return Err(ApiError::invalid(
                "A description is at most 255 characters.",
            ));
        }
        let mut dot = None;
        if let Some((att, d)) = attachment {
            if eni.attachment_id.as_deref() != Some(att) {
                ids::check(Kind::NetworkInterfaceAttachment, att)?;
                return Err(Kind::NetworkInterfaceAttachment.not_found(att));
            }
            dot = Some(d);
        }
        self.db
            .modify_eni(&eni.id, description, source_dest_check, dot)?;
        Ok(())
    }
}

fn eni_in_use(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidNetworkInterfaceInUse,
        format!("The network interface '{id}' is currently in use."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_usable_in_the_subnet() {
        assert_eq!(
            check_address("10.0.1.0/24", "10.0.1.10").unwrap(),
            Ipv4Addr::new(10, 0, 1, 10)
        );
        for bad in [
            "10.0.2.10",
            "10.0.1.0",
            "10.0.1.3",
            "10.0.1.255",
            "banana",
            "10.0.1.300",
            "",
        ] {
            let e = check_address("10.0.1.0/24", bad).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
        }
        assert!(check_address("10.0.1.0/24", "10.0.1.4").is_ok());
        assert!(check_address("10.0.1.0/24", "10.0.1.254").is_ok());
    }

    #[test]
    fn picks_the_lowest_free_addresses() {
        let used = vec!["10.0.0.5".to_string()];
        let got = pick_ips("10.0.0.0/28", &used, 3).unwrap();
        assert_eq!(
            got,
            [
                Ipv4Addr::new(10, 0, 0, 4),
                Ipv4Addr::new(10, 0, 0, 6),
                Ipv4Addr::new(10, 0, 0, 7)
            ]
        );
        assert!(pick_ips("10.0.0.0/28", &used, 0).unwrap().is_empty());
        // A /28 has 11 usable addresses; one is used.
        assert!(pick_ips("10.0.0.0/28", &used, 11).is_none());
        assert_eq!(pick_ips("10.0.0.0/28", &used, 10).unwrap().len(), 10);
    }

    fn subnet(cloud: &Cloud) -> Subnet {
        cloud.db.subnets().unwrap().remove(0)
    }

    #[test]
    fn create_assign_and_delete_follow_the_rules() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        cloud
            .db
            .insert_subnet(&Subnet {
                id: "subnet-0000000000000000a".into(),
                vpc_id: "vpc-0000000000000000a".into(),
                az: "home-1a".into(),
                cidr: "10.0.0.0/28".into(),
                bridge: "br0".into(),
                is_default: false,
            })
            .unwrap();
        cloud
            .db
            .insert_vpc(&crate::db::network::Vpc {
                id: "vpc-0000000000000000a".into(),
                owner: "111111111111".into(),
                cidr: "10.0.0.0/16".into(),
                is_default: false,
                bridge: "br0".into(),
                state: "available".into(),
                tags: vec![],
                created: 0,
            })
            .unwrap();
        let s = subnet(&cloud);
        let me = "111111111111";
        let req = |ip: &str, n: i32| CreateEni {
            subnet_id: s.id.clone(),
            private_ip: ip.into(),
            secondary_count: n,
            ..Default::default()
        };
        let a = cloud.new_network_interface(me, req("", 2), &[]).unwrap();
        assert_eq!(a.eni.private_ip, "10.0.0.4");
        assert_eq!(a.secondary, ["10.0.0.5", "10.0.0.6"]);
        assert_eq!(a.status(), "available");
        let e = cloud.new_network_interface(me, req("10.0.0.5", 0), &[]);
        assert_eq!(e.unwrap_err().code, "InvalidIPAddress.InUse");
        let e = cloud.new_network_interface(me, req("10.0.0.15", 0), &[]);
        assert_eq!(e.unwrap_err().code, "InvalidParameterValue");
        let mut grouped = req("", 0);
        grouped.groups = vec!["sg-0123456789abcdef0".into()];
        let e = cloud.new_network_interface(me, grouped, &[]);
        assert_eq!(e.unwrap_err().code, "InvalidGroup.NotFound");
        let e = cloud.new_network_interface("222222222222", req("", 0), &[]);
        assert_eq!(e.unwrap_err().code, "InvalidSubnetID.NotFound");
        let b = cloud
            .new_network_interface(me, req("10.0.0.9", 0), &[])
            .unwrap();
        assert_ne!(a.eni.mac, b.eni.mac);

        let added = cloud.add_private_ips(me, &b.eni.id, &[], 1, &[]).unwrap();
        assert_eq!(added, ["10.0.0.7"]);
        let e = cloud.add_private_ips(me, &b.eni.id, &["10.0.0.4".into()], 0, &[]);
        assert_eq!(e.unwrap_err().code, "InvalidIPAddress.InUse");
        let e = cloud.remove_private_ips(me, &b.eni.id, &["10.0.0.5".into()]);
        assert_eq!(e.unwrap_err().code, "InvalidParameterValue");
        cloud
            .remove_private_ips(me, &b.eni.id, &["10.0.0.7".into()])
            .unwrap();
        let e = cloud.add_private_ips(me, &b.eni.id, &[], 11, &[]);
        assert_eq!(e.unwrap_err().code, "PrivateIpAddressLimitExceeded");

        let f = |name: &str, v: &str| Filter {
            name: name.into(),
            values: vec![v.into()],
        };
        let got = cloud
            .describe_network_interfaces(me, &[], &[f("private-ip-address", "10.0.0.6")])
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].eni.id, a.eni.id);
        let got = cloud
            .describe_network_interfaces(me, &[], &[f("status", "available")])
            .unwrap();
        assert_eq!(got.len(), 2);
        let e =
            cloud.describe_network_interfaces("222222222222", std::slice::from_ref(&a.eni.id), &[]);
        assert_eq!(e.unwrap_err().code, "InvalidNetworkInterfaceID.NotFound");
        let e = cloud.describe_network_interfaces(me, &[], &[f("bogus", "x")]);
        assert_eq!(e.unwrap_err().code, "InvalidParameterValue");

        cloud
            .modify_network_interface(me, &a.eni.id, Some("web"), None, None)
            .unwrap();
        cloud
            .modify_network_interface(me, &a.eni.id, None, Some(false), None)
            .unwrap();
        let e = cloud.modify_network_interface(me, &a.eni.id, None, None, None);
        assert_eq!(e.unwrap_err().code, "InvalidParameterCombination");
        let got = cloud.db.eni(&a.eni.id).unwrap().unwrap();
        assert_eq!(
            (got.description.as_str(), got.source_dest_check),
            ("web", false)
        );
    }
}
