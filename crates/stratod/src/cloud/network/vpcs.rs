//! VPCs and subnets: CreateVpc, DescribeVpcs, DeleteVpc, CreateSubnet, DescribeSubnets and
//! DeleteSubnet, and the host side of each: a VPC is a Linux bridge of its own (created at
//! CreateVpc, deleted at DeleteVpc), and each subnet puts its gateway address (the first
//! address + 1, with the subnet's prefix) on that bridge.
//!
//! The default VPC is shared by every account of the host (EC2 gives each account its
//! own): it is visible to all, and only the admin account may add subnets to it. Neither
//! it nor its default subnets can be deleted, because launches without a subnet land there.
//!
//! All bridges live in one network namespace with one routing table, so no two subnets of
//! the host may overlap, even in different VPCs (`InvalidSubnet.Conflict`); VPC ranges
//! themselves may overlap.

use super::plumbing::{blocking, gateway, netmask, parse_cidr};
use crate::cloud::filters::{self, Filter};
use std::sync::Arc;

use crate::cloud::placement::regions::all_zones;
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::network::{Subnet, SubnetInsert, Vpc};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// Filter names of DescribeVpcs.
pub const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidr-block-association.cidr-block",
    "is-default",
    "state",
    "owner-id",
    "tag-key",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "ipv6-cidr-block-association.association-id",
    "ipv6-cidr-block-association.state",
    "ipv6-cidr-block-association.ipv6-pool",
];

/// Filter names of DescribeSubnets.
pub const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "availability-zone",
    "cidr-block",
    "cidr",
    "default-for-az",
    "state",
    "owner-id",
    "map-public-ip-on-launch",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "ipv6-cidr-block-association.association-id",
    "ipv6-cidr-block-association.state",
    "assign-ipv6-address-on-creation",
    "ipv6-native",
];

/// Smallest and largest prefix of a VPC or subnet, as in EC2.
const PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

/// Addresses EC2 reserves in each subnet: the network, the router, DNS, one for the
/// future, and the broadcast address.
const RESERVED: i64 = 5;

/// A subnet as DescribeSubnets shows it.
#[derive(Debug, Clone)]
pub struct SubnetView {
    /// The row.
    pub subnet: Subnet,
    /// Addresses still free for instances.
    pub available: i64,
    /// The owning account (the admin account for the default VPC's subnets).
    pub owner: String,
    /// Whether launches into it get public addresses by default.
    pub map_public_ip_on_launch: bool,
    /// The ID of its availability zone.
    pub zone_id: String,
    /// Its IPv6 /64.
    pub ipv6: Option<crate::db::ipv6::SubnetIpv6Block>,
    /// Whether launches into it get an IPv6 address by default.
    pub assign_ipv6_on_creation: bool,
}

/// Parses a CIDR block and checks it names a network (no host bits set); returns the
/// network address and the prefix length, or `InvalidParameterValue`.
pub fn check_cidr(param: &str, cidr: &str) -> ApiResult<(u32, u8)> {
    let bad = || {
        ApiError::invalid(format!(
            "Value ({}) for parameter {param} is invalid. This is not a valid CIDR block.",
            cidr.chars().take(64).collect::<String>()
        ))
    };
    let (addr, prefix) = parse_cidr(cidr).ok_or_else(bad)?;
    let net = u32::from(addr);
    if net & !u32::from(netmask(prefix)) != 0 {
        return Err(bad());
    }
    Ok((net, prefix))
}

/// Whether block `inner` lies inside block `outer`.
pub fn contains(outer: (u32, u8), inner: (u32, u8)) -> bool {
    inner.1 >= outer.1 && inner.0 & u32::from(netmask(outer.1)) == outer.0
}

/// Whether two blocks share an address.
pub fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let mask = u32::from(netmask(a.1.min(b.1)));
    a.0 & mask == b.0 & mask
}

/// The bridge of a VPC: `svpc` and the first 11 hex digits of its ID, within the kernel's
/// 15-character limit.
pub fn bridge_name(vpc_id: &str) -> String {
    let hex: String = vpc_id
        .trim_start_matches(Kind::Vpc.prefix())
        .chars()
        .take(11)
        .collect();
    format!("svpc{hex}")
}

/// Addresses of a subnet left for instances.
pub fn available(cidr: &str, used: usize) -> i64 {
    let prefix = parse_cidr(cidr).map_or(32, |(_, p)| p);
    ((1i64 << (32 - u32::from(prefix))) - RESERVED - used as i64).max(0)
}

fn dependency(what: &str, id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::DependencyViolation,
        format!("The {what} '{id}' has dependencies and cannot be deleted."),
    )
}

impl Cloud {
    /// Whether `account` sees VPC `v`: its own, and the shared default VPC.
    fn sees(account: &str, v: &Vpc) -> bool {
        v.owner.is_empty() || v.owner == account
    }

    /// The owner DescribeVpcs and DescribeSubnets report.
    fn owner_id(&self, v: &Vpc) -> String {
        if v.owner.is_empty() {
            self.cfg.admin_account.clone()
        } else {
            v.owner.clone()
        }
    }

    /// A VPC the caller may change: its own, or the default one for the admin account.
    pub(crate) fn changeable_vpc(&self, account: &str, id: &str) -> ApiResult<Vpc> {
        ids::check(Kind::Vpc, id)?;
        let v = self
            .db
            .vpc(id)?
            .filter(|v| Self::sees(account, v))
            .ok_or_else(|| Kind::Vpc.not_found(id))?;
        if v.owner.is_empty() && account != self.cfg.admin_account {
            return Err(ApiError::new(
                ErrorCode::UnauthorizedOperation,
                format!("Only the host's admin account may change the default VPC {id}."),
            ));
        }
        Ok(v)
    }

    /// Whether `account` may launch into `subnet` (it sees the subnet's VPC).
    pub fn subnet_visible(&self, account: &str, subnet: &Subnet) -> ApiResult<bool> {
        Ok(self
            .db
            .vpc(&subnet.vpc_id)?
            .is_some_and(|v| Self::sees(account, &v)))
    }

    /// CreateVpc: records the VPC and creates its bridge, which has no address until the
    /// VPC's first subnet, and starts the bridge's DHCP server.
    pub async fn create_vpc(
        self: &Arc<Self>,
        account: &str,
        cidr: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<Vpc> {
        self.create_vpc_as(account, cidr, tags, ids::new_id(Kind::Vpc))
            .await
    }

    /// CreateVpc with the VPC's ID chosen by the caller (the region claims its VNI first).
    pub(crate) async fn create_vpc_as(
        self: &Arc<Self>,
        account: &str,
        cidr: &str,
        tags: Vec<Tag>,
        id: String,
    ) -> ApiResult<Vpc> {
        if cidr.is_empty() {
            return Err(ApiError::missing("CidrBlock"));
        }
        let (_, prefix) = check_cidr("cidrBlock", cidr)?;
        if !PREFIXES.contains(&prefix) {
            return Err(ApiError::new(
                ErrorCode::InvalidVpcRange,
                format!("The CIDR '{cidr}' is invalid: a VPC is a /16 to a /28."),
            ));
        }
        let v = Vpc {
            bridge: bridge_name(&id),
            id,
            owner: account.to_string(),
            cidr: cidr.to_string(),
            is_default: false,
            state: "available".into(),
            tags,
            created: crate::db::now_s(),
        };
        self.db.insert_vpc(&v)?;
        // The bridge's input is filtered before the bridge exists.
        if let Err(e) = self.apply_firewall().await {
            self.db.delete_vpc_if_empty(&v.id)?;
            return Err(e);
        }
        let bridge = v.bridge.clone();
        if let Err(e) = blocking(move || strato_net::link::ensure_bridge_only(&bridge)).await {
            // Without its bridge the VPC is unusable: take the record back.
            self.db.delete_vpc_if_empty(&v.id)?;
            return Err(ApiError::internal(format!(
                "Cannot create bridge {}: {e}",
                v.bridge
            )));
        }
        if let Err(e) = self.overlay_ensure(&v).await {
            // Half a VPC (here but not across hosts) is worse than none: take it back.
            self.overlay_remove(&v).await;
            let bridge = v.bridge.clone();
            let _ = blocking(move || strato_net::link::delete_link(&bridge)).await;
            self.db.delete_vpc_if_empty(&v.id)?;
            return Err(e);
        }
        self.network_changed.notify_one();
        self.dhcp_serve(&v.bridge);
        Ok(v)
    }

    /// DescribeVpcs: the named ones (each must be visible) or all the caller sees, filtered.
    pub fn describe_vpcs(
        &self,
        account: &str,
        vpc_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<(Vpc, String)>> {
        filters::check_names(f, VPC_FILTERS)?;
        ids::check_all(Kind::Vpc, vpc_ids)?;
        let all: Vec<Vpc> = self
            .db
            .vpcs()?
            .into_iter()
            .filter(|v| Self::sees(account, v))
            .collect();
        if let Some(id) = vpc_ids.iter().find(|id| !all.iter().any(|v| &v.id == *id)) {
            return Err(Kind::Vpc.not_found(id));
        }
        let mut out = Vec::new();
        for v in all {
            if !vpc_ids.is_empty() && !vpc_ids.contains(&v.id) {
                continue;
            }
            let owner = self.owner_id(&v);
            let v6 = self.db.vpc_ipv6_block(&v.id)?;
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                let v6f = |g: fn(&crate::db::ipv6::VpcIpv6Block) -> String| {
                    Some(v6.iter().map(g).collect())
                };
                match name {
                    "ipv6-cidr-block-association.ipv6-cidr-block" => v6f(|b| b.cidr.clone()),
                    "ipv6-cidr-block-association.association-id" => {
                        v6f(|b| b.association_id.clone())
                    }
                    "ipv6-cidr-block-association.state" => v6f(|_| "associated".into()),
                    "ipv6-cidr-block-association.ipv6-pool" => v6f(|b| b.pool.clone()),
                    "vpc-id" => one(&v.id),
                    "cidr" | "cidr-block" | "cidr-block-association.cidr-block" => one(&v.cidr),
                    "is-default" => one(&v.is_default.to_string()),
                    "state" => one(&v.state),
                    "owner-id" => one(&owner),
                    n => filters::tag_values(&v.tags, n),
                }
            })?;
            if ok {
                out.push((v, owner));
            }
        }
        Ok(out)
    }

    /// DeleteVpc: refused while the VPC has subnets or security groups besides the default
    /// ones (which go with it); deletes its bridge.
    pub async fn delete_vpc(&self, account: &str, id: &str) -> ApiResult<()> {
        if id.is_empty() {
            return Err(ApiError::missing("VpcId"));
        }
        let v = self.changeable_vpc(account, id)?;
        if v.is_default {
            return Err(ApiError::new(
                ErrorCode::OperationNotPermitted,
                format!("The default VPC {id} is shared by every account of this host and cannot be deleted."),
            ));
        }
        if !self.db.delete_vpc_if_empty(id)? {
            return Err(dependency("vpc", id));
        }
        self.dhcp_stop(&v.bridge);
        self.overlay_remove(&v).await;
        let bridge = v.bridge.clone();
        if let Err(e) = blocking(move || strato_net::link::delete_link(&bridge)).await {
            // The record is gone; a leftover bridge holds no address and harms nothing.
            tracing::warn!(bridge = %v.bridge, error = %e, "cannot delete VPC bridge");
        }
        self.network_changed.notify_one();
        Ok(())
    }

    /// CreateSubnet: a range inside the VPC's, overlapping no other subnet of the host, in
    /// an existing zone; its gateway address goes onto the VPC's bridge.
    pub async fn create_subnet(
        &self,
        account: &str,
        vpc_id: &str,
        cidr: &str,
        az: &str,
    ) -> ApiResult<SubnetView> {
        if vpc_id.is_empty() {
            return Err(ApiError::missing("VpcId"));
        }
        if cidr.is_empty() {
            return Err(ApiError::missing("CidrBlock"));
        }
        let v = self.changeable_vpc(account, vpc_id)?;
        let block = check_cidr("cidrBlock", cidr)?;
        let vpc_block = check_cidr("cidrBlock", &v.cidr)?;
        if !PREFIXES.contains(&block.1) || !contains(vpc_block, block) {
            return Err(ApiError::new(
                ErrorCode::InvalidSubnetRange,
                format!(
                    "The CIDR '{cidr}' is invalid: a subnet is a /16 to a /28 inside its VPC's {}.",
                    v.cidr
                ),
            ));
        }
        let zones = &self.cfg.availability_zones;
        let az = if az.is_empty() {
            zones[0].as_str()
        } else if zones.iter().any(|z| z == az) {
            az
        } else {
            return Err(ApiError::invalid(format!(
                "Value ({}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                az.chars().take(64).collect::<String>(),
                zones.join(", ")
            )));
        };
        let s = Subnet {
            id: ids::new_id(Kind::Subnet),
            vpc_id: v.id.clone(),
            az: az.to_string(),
            cidr: cidr.to_string(),
            bridge: v.bridge.clone(),
            is_default: false,
        };
        let inserted = self.db.insert_subnet_unless(&s, |o| {
            parse_cidr(&o.cidr).is_some_and(|(a, p)| overlaps((u32::from(a), p), block))
        })?;
        if inserted == SubnetInsert::NoVpc {
            // Deleted since it was looked up.
            return Err(Kind::Vpc.not_found(vpc_id));
        }
        if let SubnetInsert::Conflict(o) = inserted {
            let where_ = if o.vpc_id == v.id {
                String::new()
            } else {
                // Another VPC's subnet: all bridges share the host's routing table.
                format!(" of {} on this host", o.vpc_id)
            };
            return Err(ApiError::new(
                ErrorCode::InvalidSubnetConflict,
                format!(
                    "The CIDR '{cidr}' conflicts with another subnet{where_} ({}, {}).",
                    o.id, o.cidr
                ),
            ));
        }
        let Some((gw, prefix)) = gateway(&s) else {
            return Err(ApiError::internal(format!("bad subnet range {cidr}")));
        };
        // The new gateway answers ping as soon as it has its address.
        if let Err(e) = self.apply_firewall().await {
            self.db.delete_subnet_if_unused(&s.id)?;
            return Err(e);
        }
        let bridge = s.bridge.clone();
        if let Err(e) = blocking(move || strato_net::link::ensure_bridge(&bridge, gw, prefix)).await
        {
            self.db.delete_subnet_if_unused(&s.id)?;
            return Err(ApiError::internal(format!(
                "Cannot add {gw}/{prefix} to bridge {}: {e}",
                s.bridge
            )));
        }
        let map_public = self.subnet_maps_public_ip(&s).unwrap_or_else(|e| {
            tracing::warn!(subnet = %s.id, error = %e.message, "cannot read MapPublicIpOnLaunch");
            false
        });
        // The default VPC's subnets belong to the admin account, the only one that may
        // create them.
        let available = available(&s.cidr, 0);
        self.subnet_view(s, available, account.to_string(), map_public)
    }

    /// A subnet as the API shows it.
    fn subnet_view(
        &self,
        subnet: Subnet,
        available: i64,
        owner: String,
        map_public_ip_on_launch: bool,
    ) -> ApiResult<SubnetView> {
        let zone_id = all_zones(&self.cfg)
            .into_iter()
            .find(|z| z.name == subnet.az)
            .map(|z| z.id)
            .unwrap_or_default();
        Ok(SubnetView {
            ipv6: self.db.subnet_ipv6_block(&subnet.id)?,
            assign_ipv6_on_creation: self.db.subnet_assigns_ipv6(&subnet.id)?,
            subnet,
            available,
            owner,
            map_public_ip_on_launch,
            zone_id,
        })
    }

    /// DescribeSubnets: the named ones (each must be visible) or all the caller sees,
    /// filtered.
    pub fn describe_subnets(
        &self,
        account: &str,
        subnet_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<SubnetView>> {
        filters::check_names(f, SUBNET_FILTERS)?;
        ids::check_all(Kind::Subnet, subnet_ids)?;
        let vpcs = self.db.vpcs()?;
        let mut all = Vec::new();
        for s in self.db.subnets()? {
            if let Some(v) = vpcs.iter().find(|v| v.id == s.vpc_id) {
                if Self::sees(account, v) {
                    all.push((s, self.owner_id(v)));
                }
            }
        }
        if let Some(id) = subnet_ids
            .iter()
            .find(|id| !all.iter().any(|(s, _)| &s.id == *id))
        {
            return Err(Kind::Subnet.not_found(id));
        }
        let mut out = Vec::new();
        for (s, owner) in all {
            if !subnet_ids.is_empty() && !subnet_ids.contains(&s.id) {
                continue;
            }
            let maps_public = self.subnet_maps_public_ip(&s)?;
            let v6 = self.db.subnet_ipv6_block(&s.id)?;
            let assigns6 = self.db.subnet_assigns_ipv6(&s.id)?;
            let ok = filters::matches(f, |name| {
                let one = |x: &str| Some(vec![x.to_string()]);
                let v6f = |g: fn(&crate::db::ipv6::SubnetIpv6Block) -> String| {
                    Some(v6.iter().map(g).collect())
                };
                match name {
                    "ipv6-cidr-block-association.ipv6-cidr-block" => v6f(|b| b.cidr.clone()),
                    "ipv6-cidr-block-association.association-id" => {
                        v6f(|b| b.association_id.clone())
                    }
                    "ipv6-cidr-block-association.state" => v6f(|_| "associated".into()),
                    "assign-ipv6-address-on-creation" => one(&assigns6.to_string()),
                    "ipv6-native" => one("false"),
                    "map-public-ip-on-launch" => one(&maps_public.to_string()),
                    "subnet-id" => one(&s.id),
                    "vpc-id" => one(&s.vpc_id),
                    "availability-zone" => one(&s.az),
                    "cidr-block" | "cidr" => one(&s.cidr),
                    "default-for-az" => one(&s.is_default.to_string()),
                    "state" => one("available"),
                    "owner-id" => one(&owner),
                    _ => None,
                }
            })?;
            if ok {
                let used = self.db.used_ips(&s.id)?.len();
                let available = available(&s.cidr, used);
                out.push(self.subnet_view(s, available, owner, maps_public)?);
            }
        }
        Ok(out)
    }

    /// DeleteSubnet: refused while a network interface is in it; takes its gateway address
    /// off the VPC's bridge.
    pub async fn delete_subnet(&self, account: &str, id: &str) -> ApiResult<()> {
        if id.is_empty() {
            return Err(ApiError::missing("SubnetId"));
        }
        ids::check(Kind::Subnet, id)?;
        let s = self
            .db
            .subnet(id)?
            .ok_or_else(|| Kind::Subnet.not_found(id))?;
        self.changeable_vpc(account, &s.vpc_id)
            .map_err(|e| match e.code {
                ErrorCode::InvalidVpcIdNotFound => Kind::Subnet.not_found(id),
                _ => e,
            })?;
        if s.is_default {
            return Err(ApiError::new(
                ErrorCode::OperationNotPermitted,
                format!(
                    "{id} is the default subnet of {}; launches without a subnet use it.",
                    s.az
                ),
            ));
        }
        if !self.db.delete_subnet_if_unused(id)? {
            return Err(dependency("subnet", id));
        }
        if let Some((gw, prefix)) = gateway(&s) {
            let bridge = s.bridge.clone();
            if let Err(e) =
                blocking(move || strato_net::link::delete_address(&bridge, gw, prefix)).await
            {
                tracing::warn!(bridge = %s.bridge, %gw, error = %e, "cannot remove gateway");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(s: &str) -> (u32, u8) {
        check_cidr("cidrBlock", s).unwrap()
    }

    #[test]
    fn cidr_checks() {
        assert_eq!(block("10.10.0.0/16"), (0x0a0a_0000, 16));
        for bad in [
            "10.10.1.5/24",
            "10.0.0.0/33",
            "banana",
            "10.0.0/8",
            "10.0.0.0/",
        ] {
            let e = check_cidr("cidrBlock", bad).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
        }
        assert!(contains(block("10.10.0.0/16"), block("10.10.1.0/24")));
        assert!(!contains(block("10.10.0.0/16"), block("10.11.1.0/24")));
        assert!(!contains(block("10.10.1.0/24"), block("10.10.0.0/16")));
        assert!(overlaps(block("10.10.0.0/16"), block("10.10.1.0/24")));
        assert!(overlaps(block("10.10.1.0/24"), block("10.10.1.128/25")));
        assert!(!overlaps(block("10.10.1.0/24"), block("10.10.2.0/24")));
        assert_eq!(available("10.10.1.0/24", 1), 250);
        assert_eq!(available("10.10.1.0/28", 0), 11);
        assert_eq!(available("10.10.1.0/28", 20), 0);
    }

    #[test]
    fn bridge_names_fit_the_kernel() {
        let id = ids::new_id(Kind::Vpc);
        let b = bridge_name(&id);
        assert_eq!(b.len(), 15);
        assert!(strato_net::validate_ifname(&b).is_ok());
        assert_eq!(bridge_name("vpc-0123456789abcdef0"), "svpc0123456789a");
    }

    #[test]
    fn subnet_checks_and_deletes_are_atomic_with_their_rows() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let db = &cloud.db;
        let v = Vpc {
            id: "vpc-0123456789abcdef0".into(),
            owner: "111111111111".into(),
            cidr: "10.10.0.0/16".into(),
            is_default: false,
            bridge: "svpc0123456789a".into(),
            state: "available".into(),
            tags: vec![],
            created: 1,
        };
        db.insert_vpc(&v).unwrap();
        assert_eq!(db.vpc(&v.id).unwrap().as_ref(), Some(&v));
        let s = Subnet {
            id: "subnet-0123456789abcdef0".into(),
            vpc_id: v.id.clone(),
            az: "home-1a".into(),
            cidr: "10.10.1.0/24".into(),
            bridge: v.bridge.clone(),
            is_default: false,
        };
        assert_eq!(
            db.insert_subnet_unless(&s, |_| false).unwrap(),
            SubnetInsert::Done
        );
        let mut t = s.clone();
        t.id = "subnet-0123456789abcdef1".into();
        assert_eq!(
            db.insert_subnet_unless(&t, |o| o.cidr == s.cidr).unwrap(),
            SubnetInsert::Conflict(s.clone())
        );
        t.vpc_id = "vpc-0123456789abcdef1".into();
        assert_eq!(
            db.insert_subnet_unless(&t, |_| false).unwrap(),
            SubnetInsert::NoVpc
        );
        assert!(!db.delete_vpc_if_empty(&v.id).unwrap(), "it has a subnet");
        assert!(db.delete_subnet_if_unused(&s.id).unwrap());
        assert!(db.delete_vpc_if_empty(&v.id).unwrap());
        assert_eq!(db.vpc(&v.id).unwrap(), None);
    }
}
