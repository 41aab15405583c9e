//! Public IPv4 addresses by 1:1 NAT: the pool behind the config's uplink, the addresses
//! running instances get from it (released on stop, a new one on start, as in EC2), Elastic
//! IPs (AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress,
//! DescribeAddresses), the map-public-IP setting of subnets, and the host side: the
//! `ip strato_nat` table and the public /32s on the uplink, rebuilt from the database after
//! every change (`strato_net::nat`).
//!
//! An Elastic IP stays associated while its instance is stopped (the mapping stays, with
//! nothing behind it) and is disassociated, but stays allocated, when the instance is
//! terminated. Without an uplink the host has no public addresses at all.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::plumbing::blocking;
use super::shared_addresses::{self, Addresses};
use crate::cloud::filters::{self, Filter};
use crate::cloud::{Cloud, StartError};
use crate::config::Uplink;
use crate::db::addresses::{Allocation, Association, PublicIp, Release};
use crate::db::instances::{Instance, Tag};
use crate::db::network::Subnet;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::lifecycle::State;

/// Filter names of DescribeAddresses.
pub const ADDRESS_FILTERS: &[&str] = &[
    "allocation-id",
    "association-id",
    "domain",
    "instance-id",
    "network-interface-id",
    "network-interface-owner-id",
    "private-ip-address",
    "public-ip",
    "tag-key",
];

/// The `PublicIpv4Pool` of every address: the host's one pool.
pub const POOL_NAME: &str = "strato";

/// What an Elastic IP allocation returns.
#[derive(Debug, Clone)]
pub struct Allocated {
    /// `eipalloc-…`
    pub allocation_id: String,
    /// The address.
    pub public_ip: String,
}

fn no_uplink() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedOperation,
        "This host has no uplink configured, so it has no public IPv4 addresses: set the \
         \"uplink\" field of the daemon's config file, e.g. \
         {\"uplink\": {\"interface\": \"eth1\", \"pool\": \"203.0.113.0/26\"}} \
         (docs/daemon.md), and restart it.",
    )
}

fn address_limit() -> ApiError {
    ApiError::new(
        ErrorCode::AddressLimitExceeded,
        "The maximum number of addresses has been reached.",
    )
}

fn pool_empty() -> ApiError {
    ApiError::new(
        ErrorCode::InsufficientAddressCapacity,
        "There are not enough free public IPv4 addresses in the host's pool.",
    )
}

/// The host's mappings as NAT rules; rows that do not parse are skipped (and logged).
fn mappings(rows: &[(String, String)]) -> Vec<strato_net::nat::Mapping> {
    rows.iter()
        .filter_map(
            |(public, private)| match (public.parse(), private.parse()) {
                (Ok(public), Ok(private)) => Some(strato_net::nat::Mapping { public, private }),
                _ => {
                    tracing::error!(%public, %private, "unreadable public address mapping");
                    None
                }
            },
        )
        .collect()
}

impl Cloud {
    /// The uplink, or the error that says the host has none.
    pub fn uplink(&self) -> ApiResult<&Uplink> {
        self.cfg.uplink.as_ref().ok_or_else(no_uplink)
    }

    /// Whether launches into `subnet` get a public address unless told otherwise: its
    /// explicit setting, else true for default subnets on a host with an uplink (as EC2's
    /// default subnets do). Never true without an uplink.
    pub fn subnet_maps_public_ip(&self, subnet: &Subnet) -> ApiResult<bool> {
        if self.cfg.uplink.is_none() {
            return Ok(false);
        }
        Ok(self
            .db
            .subnet_map_public_ip(&subnet.id)?
            .unwrap_or(subnet.is_default))
    }

    /// Whether a launch into `subnet` gets public addresses: `asked` (RunInstances'
    /// AssociatePublicIpAddress) wins over the subnet's setting.
    pub fn launch_maps_public_ip(&self, subnet: &Subnet, asked: Option<bool>) -> ApiResult<bool> {
        match asked {
            Some(true) => self.uplink().map(|_| true),
            Some(false) => Ok(false),
            None => self.subnet_maps_public_ip(subnet),
        }
    }

    /// How many instances needing a public address the pool can take: at least `min`
    /// (else `InsufficientAddressCapacity`), at most `max`.
    pub fn public_ip_capacity(&self, min: i32, max: i32) -> ApiResult<i32> {
        let u = self.uplink()?;
        let free = self.db.free_public_ips(u.addresses())?;
        if free < min.max(0) as usize {
            return Err(ApiError::new(
                ErrorCode::InsufficientAddressCapacity,
                format!("The host's pool has {free} free public IPv4 addresses; {min} asked for."),
            ));
        }
        Ok(max.min(i32::try_from(free).unwrap_or(i32::MAX)))
    }

    /// Refuses (`InsufficientAddressCapacity`) a StartInstances whose stopped instances
    /// need more public addresses than the pool has free.
    pub fn check_start_capacity(&self, instances: &[Instance]) -> ApiResult<()> {
        let Some(u) = self.cfg.uplink.as_ref() else {
            return Ok(());
        };
        let mut needed = 0;
        for i in instances.iter().filter(|i| i.state == State::Stopped) {
            for (eni, private_ip) in self.db.instance_public_targets(&i.id)? {
                if self.db.public_ip_of(&eni, &private_ip)?.is_none() {
                    needed += 1;
                }
            }
        }
        if needed == 0 {
            return Ok(());
        }
        let free = self.db.free_public_ips(u.addresses())?;
        if free < needed {
            return Err(ApiError::new(
                ErrorCode::InsufficientAddressCapacity,
                format!("The host's pool has {free} free public IPv4 addresses; {needed} needed."),
            ));
        }
        Ok(())
    }

    /// ModifySubnetAttribute MapPublicIpOnLaunch.
    pub fn modify_subnet_attribute(
        &self,
        account: &str,
        subnet_id: &str,
        map_public_ip: Option<bool>,
        assign_ipv6: Option<bool>,
    ) -> ApiResult<()> {
        if map_public_ip.is_some() && assign_ipv6.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "Give one attribute: MapPublicIpOnLaunch or AssignIpv6AddressOnCreation.",
            ));
        }
        if let Some(on) = assign_ipv6 {
            return self.set_subnet_assign_ipv6(account, subnet_id, on);
        }
        self.changeable_subnet(account, subnet_id)?;
        let Some(map) = map_public_ip else {
            return Err(ApiError::missing("MapPublicIpOnLaunch"));
        };
        if map {
            self.uplink()?;
        }
        if !self.db.set_subnet_map_public_ip(subnet_id, map)? {
            return Err(Kind::Subnet.not_found(subnet_id));
        }
        Ok(())
    }

    /// Gives each network interface of a booting instance that maps public addresses one
    /// from the pool, unless it has one (an Elastic IP, or its address from before a
    /// daemon restart), then updates the NAT table. Runs under the instance's lock.
    pub async fn assign_public_ips(&self, instance_id: &str) -> ApiResult<()> {
        let targets = self.db.instance_public_targets(instance_id)?;
        let Some(uplink) = self.cfg.uplink.as_ref() else {
            return Ok(());
        };
        if targets.is_empty() {
            return Ok(());
        }
        let owner = self
            .db
            .instance(instance_id)?
            .map(|i| i.owner)
            .unwrap_or_default();
        for (eni, private_ip) in targets {
            if self.db.public_ip_of(&eni, &private_ip)?.is_some() {
                continue;
            }
            // In a region the address is claimed too: hosts may share one pool.
            let pick = |taken: &HashSet<Ipv4Addr>| {
                let pool = uplink.addresses().filter(|a| !taken.contains(a));
                Ok(
                    match self.db.assign_pool_ip(pool, &owner, &eni, &private_ip)? {
                        Allocation::Done(ip) | Allocation::Existing(ip) => Ok(ip),
                        Allocation::PoolEmpty | Allocation::QuotaReached => Err(()),
                    },
                )
            };
            let drop = |ip: Ipv4Addr| Ok(self.db.drop_pool_ip(&ip.to_string())?);
            match Box::pin(self.pick_claimed(&owner, pick, drop)).await? {
                Ok(ip) => {
                    crate::metrics::inc(&self.metrics.public_ips_assigned_total);
                    tracing::info!(instance = instance_id, %ip, "public address assigned");
                }
                Err(()) => return Err(pool_empty()),
            }
        }
        self.apply_nat().await
    }

    /// Releases the pool addresses of an instance that stopped; with `terminated`, its
    /// Elastic IPs are disassociated too (they stay allocated). The NAT table follows in
    /// the background, and so do the region's claims of the pool addresses (at once rather
    /// than after the reconciler's wait, so another host may hand them out again).
    pub fn release_public_ips(&self, instance_id: &str, terminated: bool) {
        match self.db.release_instance_public_ips(instance_id, terminated) {
            Ok((0, _)) => {}
            Ok((_, freed)) => {
                self.nat_changed();
                let me = self.me.upgrade();
                if let (Some(me), false, Ok(rt)) = (
                    me,
                    freed.is_empty() || self.cluster.is_none(),
                    tokio::runtime::Handle::try_current(),
                ) {
                    rt.spawn(async move {
                        for ip in freed {
                            me.release_public_claim(&ip, false).await;
                        }
                    });
                }
            }
            Err(e) => {
                tracing::error!(instance = instance_id, error = %e, "cannot release public addresses")
            }
        }
    }

    /// At daemon start: checks the uplink, turns on forwarding, drops what a crash left
    /// behind and applies the NAT table. A host without an uplink touches nothing.
    pub async fn start_public_network(&self) -> Result<(), StartError> {
        let Some(u) = self.cfg.uplink.clone() else {
            return Ok(());
        };
        let name = u.interface.clone();
        let found = blocking(move || strato_net::link::link_status(&name))
            .await
            .map_err(StartError::Net)?;
        if found.is_none() {
            return Err(StartError::Net(format!(
                "the uplink interface {} does not exist",
                u.interface
            )));
        }
        blocking(strato_net::nat::enable_ipv4_forwarding)
            .await
            .map_err(StartError::Net)?;
        // A routed IPv6 prefix: instances' IPv6 addresses are reached through the host as
        // their router, the firewall's forward hook holding them to their groups.
        if u.ipv6_prefix.is_some() {
            blocking(strato_net::nat::enable_ipv6_forwarding)
                .await
                .map_err(StartError::Net)?;
        }
        let n = self.db.release_stale_public_ips()?;
        if n > 0 {
            tracing::info!(count = n, "stale public addresses released");
        }
        self.apply_nat()
            .await
            .map_err(|e| StartError::Net(e.message))
    }

    /// Rebuilds the NAT table and the uplink's public /32s from the database. Applies are
    /// serialized and each reads the database under the lock, so the last one always
    /// reflects the last change (requests an apply already covered share it: `applies`).
    pub async fn apply_nat(&self) -> ApiResult<()> {
        let Some(u) = self.cfg.uplink.clone() else {
            return Ok(());
        };
        self.nat
            .run(|| async {
                let rows = mappings(&self.db.public_mappings()?);
                crate::metrics::inc(&self.metrics.nat_applies_total);
                let result = blocking(move || {
                    // Checked first so that nothing is written where the uplink is missing.
                    if strato_net::link::link_status(&u.interface)?.is_none() {
                        return Err(strato_net::NetError::NoSuchLink(u.interface.clone()));
                    }
                    strato_net::nat::apply(&u.interface, &rows)?;
                    let wanted: Vec<Ipv4Addr> = rows.iter().map(|m| m.public).collect();
                    let added = strato_net::nat::sync_addresses(&u.interface, &wanted, |ip| {
                        u.contains(ip)
                    })?;
                    // An address that moved here from another host of the LAN (an Elastic
                    // IP reassociated): the neighbours learn the new MAC now, not when their
                    // cache entries go stale.
                    for ip in added {
                        if let Err(e) = strato_net::arp::announce(&u.interface, ip) {
                            tracing::warn!(%ip, error = %e, "cannot announce a public address");
                        }
                    }
                    Ok(())
                })
                .await;
                result.map_err(|e| {
                    crate::metrics::inc(&self.metrics.nat_apply_failures_total);
                    tracing::error!(error = %e, "cannot apply the NAT table");
                    ApiError::internal(format!("Cannot update the host's NAT rules: {e}"))
                })
            })
            .await
    }

    /// Applies the NAT table in a task of its own, for callers that cannot wait.
    pub fn nat_changed(&self) {
        let (Some(cloud), Ok(rt)) = (self.me(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(async move {
            let _ = cloud.apply_nat().await;
        });
    }

    /// AllocateAddress: the next free address of the pool, within the account's quota.
    pub async fn allocate_address(
        &self,
        account: &str,
        domain: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<Allocated> {
        if !domain.is_empty() && domain != "vpc" {
            return Err(ApiError::invalid(format!(
                "Invalid value '{}' for Domain: only vpc is supported.",
                domain.chars().take(32).collect::<String>()
            )));
        }
        let u = self.uplink()?;
        let allocation_id = ids::new_id(Kind::Allocation);
        // In a region the quota is the account's slots in etcd, exact across the hosts (the
        // rows here may not have mirrored another host's allocation of a moment ago); on
        // one host, the rows here.
        let quota = match self.cluster {
            Some(_) => {
                if !self
                    .claim_address_slot(account, &allocation_id, u.eip_quota)
                    .await?
                {
                    return Err(address_limit());
                }
                u32::MAX
            }
            None => u.eip_quota,
        };
        let allocated =
            Box::pin(self.allocate_in_pool(u, account, &allocation_id, quota, &tags)).await;
        if allocated.is_err() {
            self.release_address_slot(account, &allocation_id).await;
        }
        let ip = allocated?;
        crate::metrics::inc(&self.metrics.addresses_allocated_total);
        Ok(Allocated {
            allocation_id,
            public_ip: ip.to_string(),
        })
    }

    /// Records `allocation_id` with the next free address of the pool, claimed and
    /// published in the region when there is one; `quota`: how many this host's rows of the
    /// account may hold.
    async fn allocate_in_pool(
        &self,
        u: &Uplink,
        account: &str,
        allocation_id: &str,
        quota: u32,
        tags: &[Tag],
    ) -> ApiResult<Ipv4Addr> {
        // The pool leaves out what other hosts claimed.
        let pick = |taken: &HashSet<Ipv4Addr>| {
            let pool = u.addresses().filter(|a| !taken.contains(a));
            Ok(
                match self
                    .db
                    .allocate_eip(pool, account, allocation_id, quota, tags)?
                {
                    Allocation::Done(ip) | Allocation::Existing(ip) => Ok(ip),
                    why => Err(why),
                },
            )
        };
        let drop = |_| Ok(self.db.delete_eip(allocation_id)?);
        let ip = match Box::pin(self.pick_claimed(account, pick, drop)).await? {
            Ok(ip) => ip,
            Err(Allocation::QuotaReached) => return Err(address_limit()),
            Err(_) => return Err(pool_empty()),
        };
        if let Err(e) = self.share_new(&Addresses, allocation_id).await {
            self.release_public_claim(&ip.to_string(), false).await;
            return Err(e);
        }
        Ok(ip)
    }

    /// An Elastic IP of `account`.
    pub(crate) fn owned_eip(&self, account: &str, allocation_id: &str) -> ApiResult<PublicIp> {
        if allocation_id.is_empty() {
            return Err(ApiError::missing("AllocationId"));
        }
        ids::check(Kind::Allocation, allocation_id)?;
        match self.db.eip(allocation_id)? {
            Some(e) if e.owner == account => Ok(e),
            _ => Err(Kind::Allocation.not_found(allocation_id)),
        }
    }

    /// AssociateAddress: maps an Elastic IP to an instance's primary network interface or
    /// to a network interface (and one of its private addresses). The target's pool
    /// address is released; an Elastic IP it had is disassociated.
    pub async fn associate_address(
        &self,
        account: &str,
        allocation_id: &str,
        instance_id: &str,
        eni_id: &str,
        private_ip: &str,
        allow_reassociation: bool,
    ) -> ApiResult<String> {
        if ids::check(Kind::Allocation, allocation_id).is_ok() {
            self.fetch_eip(allocation_id).await?;
        }
        let eip = self.owned_eip(account, allocation_id)?;
        let eni = match (instance_id.is_empty(), eni_id.is_empty()) {
            (false, true) => {
                let inst = self.owned_instance(account, instance_id)?;
                if matches!(inst.state, State::ShuttingDown | State::Terminated) {
                    return Err(ApiError::incorrect_state(
                        instance_id,
                        inst.state.name(),
                        "associated with an address",
                    ));
                }
                self.db
                    .instance_enis(instance_id)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "The instance {instance_id} has no network interface."
                        ))
                    })?
            }
            (true, false) => {
                ids::check(Kind::NetworkInterface, eni_id)?;
                self.db
                    .eni(eni_id)?
                    .filter(|e| e.owner == account)
                    .ok_or_else(|| Kind::NetworkInterface.not_found(eni_id))?
            }
            (true, true) => return Err(ApiError::missing("InstanceId")),
            (false, false) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterCombination,
                    "Give either InstanceId or NetworkInterfaceId, not both.",
                ))
            }
        };
        // The primary address unless a secondary one is named.
        let target = if private_ip.is_empty() || private_ip == eni.private_ip {
            eni.private_ip.clone()
        } else if self
            .db
            .secondary_ips(&eni.id)?
            .iter()
            .any(|ip| ip == private_ip)
        {
            private_ip.to_string()
        } else {
            return Err(ApiError::invalid(format!(
                "The address {} is not a private address of {}.",
                private_ip.chars().take(64).collect::<String>(),
                eni.id
            )));
        };
        // This host maps the address on its uplink: the address must be one its uplink
        // serves (in a region, hosts' pools may differ).
        let u = self.uplink()?;
        if !eip.public_ip.parse().is_ok_and(|ip| u.contains(ip)) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                format!(
                    "Address {} is not in the pool of the uplink of host {}, which has {}: \
                     associate it with an instance on a host whose uplink serves it.",
                    eip.public_ip,
                    shared_addresses::me(self),
                    eni.id
                ),
            ));
        }
        let association_id = ids::new_id(Kind::Association);
        // The Elastic IP another host showed at this target gives way (disassociated):
        // the mirror's next pass publishes it.
        let done = self
            .share_change(&Addresses, allocation_id, || {
                Ok(self.db.associate_eip(
                    allocation_id,
                    &association_id,
                    &eni.id,
                    &target,
                    allow_reassociation,
                )?)
            })
            .await?;
        match done {
            Association::Done { released } => {
                if let Some(ip) = released {
                    tracing::info!(eni = %eni.id, %ip, "pool address released for an Elastic IP");
                    self.release_public_claim(&ip, false).await;
                }
            }
            Association::AlreadyAssociated => {
                return Err(ApiError::new(
                    ErrorCode::ResourceAlreadyAssociated,
                    format!(
                        "The address with allocation id [{allocation_id}] is already associated."
                    ),
                ))
            }
            Association::Gone => return Err(Kind::Allocation.not_found(allocation_id)),
        }
        self.apply_nat().await?;
        Ok(association_id)
    }

    /// DisassociateAddress. The instance gets no pool address back until its next start.
    pub async fn disassociate_address(&self, account: &str, association_id: &str) -> ApiResult<()> {
        if association_id.is_empty() {
            return Err(ApiError::missing("AssociationId"));
        }
        ids::check(Kind::Association, association_id)?;
        match self.db.eip_by_association(association_id)? {
            Some(e) if e.owner == account => {}
            _ => return Err(Kind::Association.not_found(association_id)),
        }
        let Some(id) = self
            .db
            .eip_by_association(association_id)?
            .and_then(|e| e.allocation_id)
        else {
            return Err(Kind::Association.not_found(association_id));
        };
        // Any host may end it: the interface's host unmaps the address when its mirror
        // applies the record.
        let done = self
            .share_change(&Addresses, &id, || {
                Ok(self.db.disassociate_eip(association_id)?)
            })
            .await?;
        if !done {
            return Err(Kind::Association.not_found(association_id));
        }
        self.apply_nat().await
    }

    /// ReleaseAddress: refused while the address is associated.
    pub async fn release_address(&self, account: &str, allocation_id: &str) -> ApiResult<()> {
        let e = self.owned_eip(account, allocation_id)?;
        let released = self
            .share_delete(&Addresses, Some(allocation_id), || {
                Ok(self.db.release_eip(allocation_id)?)
            })
            .await?;
        match released {
            Release::Done => {
                self.release_public_claim(&e.public_ip, true).await;
                self.release_address_slot(account, allocation_id).await;
                Ok(())
            }
            Release::InUse => Err(ApiError::new(
                ErrorCode::InvalidIpAddressInUse,
                format!("Address {} is in use.", e.public_ip),
            )),
            Release::Gone => Err(Kind::Allocation.not_found(allocation_id)),
        }
    }

    /// DescribeAddresses: the account's Elastic IPs, the named ones (each must exist),
    /// filtered.
    pub fn describe_addresses(
        &self,
        account: &str,
        allocation_ids: &[String],
        public_ips: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<PublicIp>> {
        filters::check_names(f, ADDRESS_FILTERS)?;
        ids::check_all(Kind::Allocation, allocation_ids)?;
        let all = self.db.eips(account)?;
        if let Some(id) = allocation_ids
            .iter()
            .find(|id| !all.iter().any(|e| e.allocation_id.as_ref() == Some(*id)))
        {
            return Err(Kind::Allocation.not_found(id));
        }
        if let Some(ip) = public_ips
            .iter()
            .find(|ip| !all.iter().any(|e| &e.public_ip == *ip))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidAddressNotFound,
                format!(
                    "Address '{}' not found.",
                    ip.chars().take(64).collect::<String>()
                ),
            ));
        }
        let mut out = Vec::new();
        for e in all {
            if !allocation_ids.is_empty()
                && !allocation_ids
                    .iter()
                    .any(|id| e.allocation_id.as_ref() == Some(id))
            {
                continue;
            }
            if !public_ips.is_empty() && !public_ips.contains(&e.public_ip) {
                continue;
            }
            let ok = filters::matches(f, |name| {
                let opt = |v: &Option<String>| Some(v.iter().cloned().collect());
                match name {
                    "allocation-id" => opt(&e.allocation_id),
                    "association-id" => opt(&e.association_id),
                    "domain" => Some(vec!["vpc".to_string()]),
                    "instance-id" => opt(&e.instance_id),
                    "network-interface-id" => opt(&e.eni_id),
                    "network-interface-owner-id" => opt(&e.eni_owner),
                    "private-ip-address" => opt(&e.private_ip),
                    "public-ip" => Some(vec![e.public_ip.clone()]),
                    n => filters::tag_values(&e.tags, n),
                }
            })?;
            if ok {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The `Arc` of this cloud, for work that outlives a call.
    fn me(&self) -> Option<Arc<Cloud>> {
        self.me.upgrade()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::network::Eni;

    fn cloud_with_uplink() -> (tempfile::TempDir, Arc<Cloud>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"uplink": {"interface": "uplink0", "pool": "198.51.100.16/30", "eip_quota": 1}}"#,
        )
        .unwrap();
        let cfg = crate::config::Config::build(
            Some(&p),
            Some(dir.path().to_path_buf()),
            &[],
            Some("host".into()),
        )
        .unwrap();
        (
            dir,
            Cloud::open(cfg, Box::new(crate::cloud::storage::source::NoRegions)).unwrap(),
        )
    }

    #[tokio::test]
    async fn without_an_uplink_there_are_no_public_addresses() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let e = cloud
            .allocate_address("111111111111", "vpc", vec![])
            .await
            .unwrap_err();
        assert_eq!(e.code, "UnsupportedOperation");
        let s = Subnet {
            id: "subnet-0000000000000000a".into(),
            vpc_id: "vpc-0000000000000000a".into(),
            az: "home-1a".into(),
            cidr: "10.0.0.0/24".into(),
            bridge: "br0".into(),
            is_default: true,
        };
        assert!(!cloud.subnet_maps_public_ip(&s).unwrap());
        assert!(!cloud.launch_maps_public_ip(&s, None).unwrap());
        assert_eq!(
            cloud
                .launch_maps_public_ip(&s, Some(true))
                .unwrap_err()
                .code,
            "UnsupportedOperation"
        );
        // Nothing to apply, nothing touched.
        cloud.apply_nat().await.unwrap();
    }

    #[tokio::test]
    async fn quota_ownership_and_refusals() {
        let (_dir, cloud) = cloud_with_uplink();
        let a = cloud
            .allocate_address("111111111111", "", vec![])
            .await
            .unwrap();
        assert_eq!(a.public_ip, "198.51.100.17");
        let e = cloud
            .allocate_address("111111111111", "vpc", vec![])
            .await
            .unwrap_err();
        assert_eq!(e.code, "AddressLimitExceeded");
        let b = cloud
            .allocate_address("222222222222", "vpc", vec![])
            .await
            .unwrap();
        assert_eq!(b.public_ip, "198.51.100.18");
        // The /30 pool has two addresses: none left.
        let e = cloud
            .allocate_address("333333333333", "vpc", vec![])
            .await
            .unwrap_err();
        assert_eq!(e.code, "InsufficientAddressCapacity");
        assert_eq!(
            cloud
                .allocate_address("111111111111", "standard", vec![])
                .await
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        // Another account's allocation does not exist for the caller.
        let e = cloud
            .release_address("222222222222", &a.allocation_id)
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidAllocationID.NotFound");
        let e = cloud
            .describe_addresses(
                "222222222222",
                std::slice::from_ref(&a.allocation_id),
                &[],
                &[],
            )
            .unwrap_err();
        assert_eq!(e.code, "InvalidAllocationID.NotFound");
        let e = cloud
            .describe_addresses("111111111111", &[], &["198.51.100.18".into()], &[])
            .unwrap_err();
        assert_eq!(e.code, "InvalidAddress.NotFound");
        assert_eq!(
            cloud
                .release_address("111111111111", "eipalloc-x")
                .await
                .unwrap_err()
                .code,
            "InvalidAllocationID.Malformed"
        );
        let e = cloud
            .associate_address("111111111111", &a.allocation_id, "", "", "", false)
            .await
            .unwrap_err();
        assert_eq!(e.code, "MissingParameter");
        let e = cloud
            .disassociate_address("222222222222", "eipassoc-0123456789abcdef0")
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidAssociationID.NotFound");

        // Associated to an ENI of the caller's, the address is in use until disassociated.
        let subnet = cloud.db.subnets().unwrap();
        assert!(subnet.is_empty(), "no default network in unit tests");
        cloud
            .db
            .insert_subnet(&Subnet {
                id: "subnet-0000000000000000a".into(),
                vpc_id: "vpc-0000000000000000a".into(),
                az: "home-1a".into(),
                cidr: "10.0.0.0/24".into(),
                bridge: "br0".into(),
                is_default: true,
            })
            .unwrap();
        let eni = Eni {
            device_index: 1,
            ..Eni::sample("eni-0000000000000000a", "10.0.0.4")
        };
        cloud.db.insert_eni(&eni).unwrap();
        let e = cloud
            .associate_address("222222222222", &b.allocation_id, "", &eni.id, "", false)
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidNetworkInterfaceID.NotFound");
        let e = cloud
            .associate_address(
                "111111111111",
                &a.allocation_id,
                "",
                &eni.id,
                "10.0.0.9",
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        // A successful association applies the NAT table, which a unit test must not do
        // outside a namespace of its own: record it directly.
        cloud
            .db
            .associate_eip(
                &a.allocation_id,
                "eipassoc-0123456789abcdef0",
                &eni.id,
                "10.0.0.4",
                false,
            )
            .unwrap();
        let got = cloud
            .describe_addresses(
                "111111111111",
                &[],
                &[],
                &[Filter {
                    name: "network-interface-id".into(),
                    values: vec![eni.id.clone()],
                }],
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].private_ip.as_deref(), Some("10.0.0.4"));
        let e = cloud
            .release_address("111111111111", &a.allocation_id)
            .await
            .unwrap_err();
        assert_eq!(e.code, "InvalidIPAddress.InUse");
        assert!(cloud
            .describe_addresses(
                "111111111111",
                &[],
                &[],
                &[Filter {
                    name: "domain".into(),
                    values: vec!["standard".into()],
                }],
            )
            .unwrap()
            .is_empty());

        // Default subnets map public addresses where there is an uplink, until told not to.
        let s = cloud
            .db
            .subnet("subnet-0000000000000000a")
            .unwrap()
            .unwrap();
        assert!(cloud.subnet_maps_public_ip(&s).unwrap());
        assert!(!cloud.launch_maps_public_ip(&s, Some(false)).unwrap());
        assert_eq!(
            cloud.public_ip_capacity(1, 5).unwrap_err().code,
            "InsufficientAddressCapacity"
        );
        assert_eq!(cloud.public_ip_capacity(0, 5).unwrap(), 0);

        // Starting a stopped instance that maps public addresses needs a free one.
        let mut inst = crate::db::instances::tests::sample("i-0000000000000000b", "111111111111");
        inst.state = State::Stopped;
        cloud.db.insert_instance(&inst).unwrap();
        let eni_b = Eni {
            id: "eni-0000000000000000b".into(),
            instance_id: Some(inst.id.clone()),
            device_index: 0,
            private_ip: "10.0.0.5".into(),
            ..eni
        };
        cloud.db.insert_eni(&eni_b).unwrap();
        cloud
            .check_start_capacity(std::slice::from_ref(&inst))
            .unwrap();
        cloud.db.set_eni_map_public_ip(&eni_b.id, true).unwrap();
        let e = cloud
            .check_start_capacity(std::slice::from_ref(&inst))
            .unwrap_err();
        assert_eq!(e.code, "InsufficientAddressCapacity");
    }
}
