//! IPv6 in VPCs, as EC2 does it: a VPC gets a /56 (AssociateVpcCidrBlock, from the host's
//! `ipv6_pool` or a block the operator names), each subnet a /64 of it
//! (AssociateSubnetCidrBlock), and each network interface any number of addresses of its
//! subnet's /64 (AssignIpv6Addresses, RunInstances' Ipv6AddressCount, and the subnet's
//! AssignIpv6AddressOnCreation). The addresses are globally unique and routed: no NAT.
//!
//! Each VPC and subnet has at most one IPv6 block (EC2 allows one Amazon-provided block per
//! VPC); a VPC's block cannot go while a subnet has one of its /64s, nor a subnet's while an
//! interface holds one of its addresses (`DependencyViolation`).

use std::net::Ipv6Addr;

use crate::cloud::Cloud;
use crate::db::ipv6::{BlockInsert, SubnetIpv6Block, VpcIpv6Block};
use crate::db::network::Subnet;
use crate::db::network_interfaces::AddAddresses;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// The prefix of a VPC's block.
pub const VPC_PREFIX: u8 = 56;
/// The prefix of a subnet's block.
pub const SUBNET_PREFIX: u8 = 64;
/// Most IPv6 addresses per network interface (the catalog has no per-type figure).
pub const MAX_IPV6: usize = 10;
/// The pool name DescribeVpcs shows for blocks from the host's pool.
pub const AMAZON_POOL: &str = "Amazon";

/// An IPv6 network: its address with no host bits set, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The network address.
    pub net: u128,
    /// The prefix length, 0 to 128.
    pub prefix: u8,
}

impl Block {
    /// The mask of a prefix length.
    pub fn mask(prefix: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
    }

    /// Parses `addr/n` with no host bits set.
    pub fn parse(s: &str) -> Option<Block> {
        let (a, n) = s.split_once('/')?;
        let addr: Ipv6Addr = a.parse().ok()?;
        if n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = n.parse().ok()?;
        if prefix > 128 {
            return None;
        }
        let net = u128::from(addr);
        (net & !Self::mask(prefix) == 0).then_some(Block { net, prefix })
    }

    /// Whether `addr` is in the block.
    pub fn has(&self, addr: u128) -> bool {
        addr & Self::mask(self.prefix) == self.net
    }

    /// Whether `inner` lies inside this block.
    pub fn contains(&self, inner: Block) -> bool {
        inner.prefix >= self.prefix && self.has(inner.net)
    }

    /// Whether two blocks share an address.
    pub fn overlaps(&self, other: Block) -> bool {
        let m = Self::mask(self.prefix.min(other.prefix));
        self.net & m == other.net & m
    }

    /// Whether guests may hold addresses of it: not the unspecified, loopback, multicast
    /// or link-local ranges.
    pub fn is_unicast(&self) -> bool {
        let reserved = ["::/8", "ff00::/8", "fe80::/10"];
        !reserved
            .iter()
            .filter_map(|r| Block::parse(r))
            .any(|r| r.overlaps(*self))
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.net), self.prefix)
    }
}

/// The lowest /56 of `pool` that none of `taken` overlaps.
pub fn pick_vpc_block(pool: Block, taken: &[Block]) -> Option<Block> {
    if pool.prefix > VPC_PREFIX {
        return None;
    }
    let count = 1u128 << (VPC_PREFIX - pool.prefix);
    let step = 1u128 << (128 - u32::from(VPC_PREFIX));
    // Lazily, lowest first: with few taken blocks the search ends after a few candidates.
    (0..count)
        .map(|k| Block {
            net: pool.net + k * step,
            prefix: VPC_PREFIX,
        })
        .find(|c| !taken.iter().any(|t| t.overlaps(*c)))
}

/// Checks that `addr` is a usable instance address of the subnet block `cidr`: inside it
/// and not one of those EC2 reserves (the first four and the last). Returns it canonical.
pub fn check_address(cidr: &str, addr: &str) -> ApiResult<String> {
    let shown: String = addr.chars().take(64).collect();
    let a: Ipv6Addr = addr
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid IPv6 address: {shown}.")))?;
    let block =
        Block::parse(cidr).ok_or_else(|| ApiError::internal(format!("bad IPv6 block {cidr}")))?;
    let v = u128::from(a);
    if !block.has(v) {
        return Err(ApiError::invalid(format!(
            "Address {a} does not fall within the subnet's IPv6 range {cidr}."
        )));
    }
    let off = v - block.net;
    if off < 4 || off == !Block::mask(block.prefix) {
        return Err(ApiError::invalid(format!(
            "Address {a} is in subnet {cidr}'s reserved address range."
        )));
    }
    Ok(a.to_string())
}

/// `n` random usable addresses of `cidr` that are not in `used`.
pub fn pick_addresses(cidr: &str, used: &[String], n: usize) -> ApiResult<Vec<String>> {
    let block =
        Block::parse(cidr).ok_or_else(|| ApiError::internal(format!("bad IPv6 block {cidr}")))?;
    let host = !Block::mask(block.prefix);
    let mut out: Vec<String> = Vec::with_capacity(n);
    // A /64 has 2^64 addresses: random picks collide with a handful of used ones only by
    // chance, and then the next try differs.
    let mut tries = 0;
    while out.len() < n {
        tries += 1;
        if tries > 64 * (n + 1) {
            return Err(ApiError::new(
                ErrorCode::InsufficientFreeAddressesInSubnet,
                format!("The IPv6 range {cidr} has not enough free addresses."),
            ));
        }
        let off = ids::random_u128() & host;
        if off < 4 || off == host {
            continue;
        }
        let a = Ipv6Addr::from(block.net | off).to_string();
        if !used.contains(&a) && !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// What a launch or CreateNetworkInterface asks of IPv6: addresses by name, or a count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ipv6Ask {
    /// Named addresses, canonical.
    pub named: Vec<String>,
    /// Addresses the daemon picks.
    pub count: usize,
}

impl Ipv6Ask {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.count == 0
    }
}

fn too_many() -> ApiError {
    ApiError::invalid(format!(
        "A network interface has at most {MAX_IPV6} IPv6 addresses."
    ))
}

fn in_use(a: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidIpAddressInUse,
        format!("The specified address {a} is already in use."),
    )
}

fn dependency(what: &str, id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::DependencyViolation,
        format!("The {what} '{id}' has dependencies and cannot be disassociated."),
    )
}

/// What AssociateVpcCidrBlock asks for.
#[derive(Debug, Clone, Default)]
pub struct AssociateVpcCidr {
    /// `vpc-…`
    pub vpc_id: String,
    /// A /56 from the host's pool.
    pub amazon_provided: bool,
    /// A /56 the operator names.
    pub ipv6_cidr_block: String,
    /// The pool the operator's block comes from (recorded and shown only).
    pub ipv6_pool: String,
    /// A secondary IPv4 block (not served).
    pub cidr_block: String,
}

impl Cloud {
    /// The IPv6 block of a VPC, for the front ends.
    pub fn vpc_ipv6(&self, vpc_id: &str) -> ApiResult<Option<VpcIpv6Block>> {
        Ok(self.db.vpc_ipv6_block(vpc_id)?)
    }

    /// The IPv6 block of a subnet.
    pub fn subnet_ipv6(&self, subnet_id: &str) -> ApiResult<Option<SubnetIpv6Block>> {
        Ok(self.db.subnet_ipv6_block(subnet_id)?)
    }

    /// The IPv6 addresses of an ENI.
    pub fn eni_ipv6(&self, eni_id: &str) -> ApiResult<Vec<String>> {
        Ok(self.db.eni_ipv6(eni_id)?)
    }

    /// AssociateVpcCidrBlock: a /56 from the host's pool, or (the admin account only) one
    /// the operator names, overlapping no other VPC's.
    pub fn associate_vpc_cidr_block(
        &self,
        account: &str,
        req: &AssociateVpcCidr,
    ) -> ApiResult<VpcIpv6Block> {
        if req.vpc_id.is_empty() {
            return Err(ApiError::missing("VpcId"));
        }
        let v = self.changeable_vpc(account, &req.vpc_id)?;
        if !req.cidr_block.is_empty() {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                "Secondary IPv4 CIDR blocks are not supported; a VPC has one IPv4 block.",
            ));
        }
        let given = !req.ipv6_cidr_block.is_empty();
        if given == req.amazon_provided {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "Give AmazonProvidedIpv6CidrBlock or Ipv6CidrBlock (one of them).",
            ));
        }
        let (pool_name, wanted) = if given {
            if account != self.cfg.admin_account {
                return Err(ApiError::new(
                    ErrorCode::UnauthorizedOperation,
                    "Only the host's admin account may name an IPv6 block; ask for an Amazon-provided one.",
                ));
            }
            let shown: String = req.ipv6_cidr_block.chars().take(64).collect();
            let b = Block::parse(&req.ipv6_cidr_block).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Value ({shown}) for parameter ipv6CidrBlock is invalid. This is not a valid IPv6 CIDR block."
                ))
            })?;
            if b.prefix != VPC_PREFIX || !b.is_unicast() {
                return Err(ApiError::new(
                    ErrorCode::InvalidVpcRange,
                    format!("The IPv6 CIDR '{b}' is invalid: a VPC's IPv6 block is a unicast /56."),
                ));
            }
            let pool = if req.ipv6_pool.is_empty() {
                "operator".to_string()
            } else {
                req.ipv6_pool.chars().take(64).collect()
            };
            (pool, Some(b))
        } else {
            if self.cfg.ipv6_pool.is_none() {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedOperation,
                    "This host has no IPv6 pool (ipv6_pool in its config).",
                ));
            }
            (AMAZON_POOL.to_string(), None)
        };
        let pool = self.cfg.ipv6_pool;
        let assoc = ids::new_id(Kind::VpcCidrAssociation);
        let choose = |taken: &[String]| -> Result<String, String> {
            let taken: Vec<Block> = taken.iter().filter_map(|t| Block::parse(t)).collect();
            match wanted {
                Some(b) => match taken.iter().find(|t| t.overlaps(b)) {
                    Some(t) => Err(format!("The IPv6 CIDR '{b}' overlaps {t} of another VPC.")),
                    None => Ok(b.to_string()),
                },
                None => pool
                    .and_then(|p| pick_vpc_block(p, &taken))
                    .map(|b| b.to_string())
                    .ok_or_else(|| "The host's IPv6 pool has no free /56.".to_string()),
            }
        };
        match self
            .db
            .insert_vpc_ipv6_block(&v.id, &assoc, &pool_name, choose)?
        {
            BlockInsert::Done(cidr) => {
                self.default_groups_gain_ipv6_egress(&v.id)?;
                Ok(VpcIpv6Block {
                    association_id: assoc,
                    vpc_id: v.id,
                    cidr,
                    pool: pool_name,
                })
            }
            BlockInsert::HasOne => Err(ApiError::new(
                ErrorCode::CidrLimitExceeded,
                format!(
                    "The VPC '{}' has its IPv6 CIDR block already (at most one).",
                    v.id
                ),
            )),
            BlockInsert::Gone => Err(Kind::Vpc.not_found(&v.id)),
            BlockInsert::Refused(why) if wanted.is_some() => {
                Err(ApiError::new(ErrorCode::InvalidVpcRange, why))
            }
            BlockInsert::Refused(why) => {
                Err(ApiError::new(ErrorCode::InsufficientAddressCapacity, why))
            }
        }
    }

    /// DisassociateVpcCidrBlock: refused while a subnet of the VPC has an IPv6 block.
    pub fn disassociate_vpc_cidr_block(
        &self,
        account: &str,
        association_id: &str,
    ) -> ApiResult<VpcIpv6Block> {
        if association_id.is_empty() {
            return Err(ApiError::missing("AssociationId"));
        }
        let b = self
            .db
            .vpc_ipv6_association(association_id)?
            .ok_or_else(|| Kind::VpcCidrAssociation.not_found(association_id))?;
        self.changeable_vpc(account, &b.vpc_id)
            .map_err(|e| match e.code {
                ErrorCode::InvalidVpcIdNotFound => {
                    Kind::VpcCidrAssociation.not_found(association_id)
                }
                _ => e,
            })?;
        if !self.db.delete_vpc_ipv6_block(association_id)? {
            if self.db.vpc_ipv6_association(association_id)?.is_none() {
                return Err(Kind::VpcCidrAssociation.not_found(association_id));
            }
            return Err(dependency("vpc CIDR block association", association_id));
        }
        Ok(b)
    }

    /// The subnet the caller may change, or `InvalidSubnetID.NotFound`.
    pub(crate) fn changeable_subnet(&self, account: &str, subnet_id: &str) -> ApiResult<Subnet> {
        if subnet_id.is_empty() {
            return Err(ApiError::missing("SubnetId"));
        }
        ids::check(Kind::Subnet, subnet_id)?;
        let s = self
            .db
            .subnet(subnet_id)?
            .ok_or_else(|| Kind::Subnet.not_found(subnet_id))?;
        self.changeable_vpc(account, &s.vpc_id)
            .map_err(|e| match e.code {
                ErrorCode::InvalidVpcIdNotFound => Kind::Subnet.not_found(subnet_id),
                _ => e,
            })?;
        Ok(s)
    }

    /// AssociateSubnetCidrBlock: a /64 of the VPC's /56 that no other subnet has.
    pub async fn associate_subnet_cidr_block(
        &self,
        account: &str,
        subnet_id: &str,
        cidr: &str,
    ) -> ApiResult<SubnetIpv6Block> {
        let s = self.changeable_subnet(account, subnet_id)?;
        if cidr.is_empty() {
            return Err(ApiError::missing("Ipv6CidrBlock"));
        }
        let shown: String = cidr.chars().take(64).collect();
        let b = Block::parse(cidr).ok_or_else(|| {
            ApiError::invalid(format!(
                "Value ({shown}) for parameter ipv6CidrBlock is invalid. This is not a valid IPv6 CIDR block."
            ))
        })?;
        let Some(vb) = self.db.vpc_ipv6_block(&s.vpc_id)? else {
            return Err(ApiError::new(
                ErrorCode::InvalidSubnetRange,
                format!(
                    "The VPC '{}' has no IPv6 CIDR block; associate one first.",
                    s.vpc_id
                ),
            ));
        };
        let parent = Block::parse(&vb.cidr)
            .ok_or_else(|| ApiError::internal(format!("bad IPv6 block {}", vb.cidr)))?;
        if b.prefix != SUBNET_PREFIX || !parent.contains(b) {
            return Err(ApiError::new(
                ErrorCode::InvalidSubnetRange,
                format!(
                    "The IPv6 CIDR '{b}' is invalid: a subnet's IPv6 block is a /64 inside its VPC's {}.",
                    vb.cidr
                ),
            ));
        }
        let block = SubnetIpv6Block {
            association_id: ids::new_id(Kind::SubnetCidrAssociation),
            subnet_id: s.id.clone(),
            vpc_id: s.vpc_id.clone(),
            cidr: b.to_string(),
        };
        match self.db.insert_subnet_ipv6_block(&block, &vb.cidr)? {
            BlockInsert::Done(_) => {
                self.router6_sync(&s.bridge).await;
                Ok(block)
            }
            BlockInsert::HasOne => Err(ApiError::new(
                ErrorCode::CidrLimitExceeded,
                format!(
                    "The subnet '{}' has its IPv6 CIDR block already (at most one).",
                    s.id
                ),
            )),
            BlockInsert::Gone => Err(ApiError::new(
                ErrorCode::InvalidSubnetRange,
                format!(
                    "The VPC '{}' no longer has the IPv6 block {}.",
                    s.vpc_id, vb.cidr
                ),
            )),
            BlockInsert::Refused(other) => Err(ApiError::new(
                ErrorCode::InvalidSubnetConflict,
                format!("The IPv6 CIDR '{b}' conflicts with another subnet ({other})."),
            )),
        }
    }

    /// DisassociateSubnetCidrBlock: refused while an interface holds an address of it.
    pub async fn disassociate_subnet_cidr_block(
        &self,
        account: &str,
        association_id: &str,
    ) -> ApiResult<SubnetIpv6Block> {
        if association_id.is_empty() {
            return Err(ApiError::missing("AssociationId"));
        }
        let b = self
            .db
            .subnet_ipv6_association(association_id)?
            .ok_or_else(|| Kind::SubnetCidrAssociation.not_found(association_id))?;
        let s = self
            .changeable_subnet(account, &b.subnet_id)
            .map_err(|e| match e.code {
                ErrorCode::InvalidSubnetIdNotFound => {
                    Kind::SubnetCidrAssociation.not_found(association_id)
                }
                _ => e,
            })?;
        if !self.db.delete_subnet_ipv6_block(association_id)? {
            if self.db.subnet_ipv6_association(association_id)?.is_none() {
                return Err(Kind::SubnetCidrAssociation.not_found(association_id));
            }
            return Err(dependency("subnet CIDR block association", association_id));
        }
        self.router6_sync(&s.bridge).await;
        Ok(b)
    }

    /// ModifySubnetAttribute AssignIpv6AddressOnCreation: turning it on needs the subnet's
    /// IPv6 block.
    pub(crate) fn set_subnet_assign_ipv6(
        &self,
        account: &str,
        subnet_id: &str,
        on: bool,
    ) -> ApiResult<()> {
        let s = self.changeable_subnet(account, subnet_id)?;
        if on && self.db.subnet_ipv6_block(&s.id)?.is_none() {
            return Err(ApiError::invalid(format!(
                "The subnet '{}' has no IPv6 CIDR block.",
                s.id
            )));
        }
        self.db.set_subnet_assigns_ipv6(&s.id, on)?;
        Ok(())
    }

    /// Whether launches into `subnet` get an IPv6 address by default.
    pub fn subnet_assigns_ipv6(&self, subnet_id: &str) -> ApiResult<bool> {
        Ok(self.db.subnet_assigns_ipv6(subnet_id)?)
    }

    /// Checks what a new interface in `subnet` asks of IPv6: named addresses (canonical,
    /// inside the subnet's /64, free) or a count; none asked and `count` absent, the
    /// subnet's AssignIpv6AddressOnCreation gives one.
    pub(crate) fn ipv6_ask(
        &self,
        subnet: &Subnet,
        named: &[String],
        count: Option<i32>,
    ) -> ApiResult<Ipv6Ask> {
        if !named.is_empty() && count.is_some_and(|c| c != 0) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "Give Ipv6AddressCount or Ipv6Addresses, not both.",
            ));
        }
        let n = match count {
            Some(c) => usize::try_from(c)
                .map_err(|_| ApiError::invalid("Ipv6AddressCount must not be negative."))?,
            None if named.is_empty() && self.db.subnet_assigns_ipv6(&subnet.id)? => 1,
            None => 0,
        };
        if n == 0 && named.is_empty() {
            return Ok(Ipv6Ask::default());
        }
        if n.max(named.len()) > MAX_IPV6 {
            return Err(too_many());
        }
        let Some(b) = self.db.subnet_ipv6_block(&subnet.id)? else {
            return Err(ApiError::invalid(format!(
                "The subnet '{}' has no IPv6 CIDR block.",
                subnet.id
            )));
        };
        let mut out = Vec::new();
        for a in named {
            let a = check_address(&b.cidr, a)?;
            if out.contains(&a) {
                return Err(ApiError::invalid(format!("{a} is given twice.")));
            }
            out.push(a);
        }
        let used = self.db.used_ipv6(&subnet.id)?;
        if let Some(a) = out.iter().find(|a| used.contains(a)) {
            return Err(in_use(a));
        }
        Ok(Ipv6Ask {
            named: out,
            count: n,
        })
    }

    /// Gives an interface what `ask` asks for; returns the addresses added.
    pub(crate) fn give_ipv6(
        &self,
        eni_id: &str,
        subnet: &Subnet,
        ask: &Ipv6Ask,
    ) -> ApiResult<Vec<String>> {
        if ask.is_empty() {
            return Ok(Vec::new());
        }
        let Some(b) = self.db.subnet_ipv6_block(&subnet.id)? else {
            return Err(ApiError::invalid(format!(
                "The subnet '{}' has no IPv6 CIDR block.",
                subnet.id
            )));
        };
        // A concurrent call may take a picked address first; the insert refuses and the
        // loop picks again. Named addresses are not picked again.
        for _ in 0..16 {
            let used = self.db.used_ipv6(&subnet.id)?;
            let mut add = ask.named.clone();
            add.extend(pick_addresses(&b.cidr, &used, ask.count)?);
            match self.db.add_eni_ipv6(eni_id, &add, MAX_IPV6)? {
                AddAddresses::Done => return Ok(add),
                AddAddresses::Taken(a) if a.is_empty() => return Err(too_many()),
                AddAddresses::Taken(a) if ask.named.contains(&a) => return Err(in_use(&a)),
                AddAddresses::Taken(_) => {}
                AddAddresses::Gone => return Err(Kind::NetworkInterface.not_found(eni_id)),
            }
        }
        Err(ApiError::internal("Could not allocate an IPv6 address."))
    }

    /// AssignIpv6Addresses: addresses of the interface's subnet, named or picked; returns
    /// those added. The anti-spoofing rules follow at once.
    pub async fn assign_ipv6_addresses(
        &self,
        account: &str,
        eni_id: &str,
        named: &[String],
        count: i32,
    ) -> ApiResult<Vec<String>> {
        let eni = self.owned_eni(account, eni_id)?;
        if named.is_empty() && count == 0 {
            return Err(ApiError::missing("Ipv6AddressCount"));
        }
        let subnet = self
            .db
            .subnet(&eni.subnet_id)?
            .ok_or_else(|| ApiError::internal(format!("subnet {} is gone", eni.subnet_id)))?;
        let ask = self.ipv6_ask(&subnet, named, Some(count))?;
        let have = self.db.eni_ipv6(&eni.id)?.len();
        if have + ask.named.len() + ask.count > MAX_IPV6 {
            return Err(too_many());
        }
        let added = self.give_ipv6(&eni.id, &subnet, &ask)?;
        self.apply_firewall().await?;
        Ok(added)
    }

    /// UnassignIpv6Addresses: each must be an address of the interface; returns them.
    pub async fn unassign_ipv6_addresses(
        &self,
        account: &str,
        eni_id: &str,
        addrs: &[String],
    ) -> ApiResult<Vec<String>> {
        let eni = self.owned_eni(account, eni_id)?;
        if addrs.is_empty() {
            return Err(ApiError::missing("Ipv6Addresses"));
        }
        let have = self.db.eni_ipv6(&eni.id)?;
        let mut gone = Vec::new();
        for a in addrs {
            // Compare canonical forms: `2001:DB8::10` names `2001:db8::10`.
            let canon = a.parse::<Ipv6Addr>().ok().map(|x| x.to_string());
            match canon.filter(|c| have.contains(c)) {
                Some(c) => gone.push(c),
                None => {
                    return Err(ApiError::invalid(format!(
                        "Some of the specified addresses are not assigned to interface {}: {}.",
                        eni.id,
                        a.chars().take(64).collect::<String>()
                    )))
                }
            }
        }
        self.db.remove_eni_ipv6(&eni.id, &gone)?;
        self.apply_firewall().await?;
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Block {
        Block::parse(s).unwrap()
    }

    #[test]
    fn blocks_parse_canonically_and_nest() {
        assert_eq!(b("2001:DB8:0:0100::/56").to_string(), "2001:db8:0:100::/56");
        for bad in [
            "2001:db8::1/56",
            "2001:db8::/129",
            "10.0.0.0/8",
            "2001:db8::",
            "x/5",
            "::/+5",
            "::/0056",
        ] {
            assert!(Block::parse(bad).is_none(), "{bad}");
        }
        assert!(b("2001:db8::/48").contains(b("2001:db8:0:ff00::/56")));
        assert!(!b("2001:db8::/48").contains(b("2001:db9::/56")));
        assert!(b("2001:db8::/56").overlaps(b("2001:db8:0:1::/64")));
        assert!(!b("2001:db8::/56").overlaps(b("2001:db8:0:100::/64")));
        assert!(b("2001:db8::/56").is_unicast());
        assert!(!b("fe80::/56").is_unicast());
        assert!(!b("ff02::/56").is_unicast());
    }

    #[test]
    fn pool_hands_out_the_lowest_free_56() {
        let pool = b("2001:db8:5::/48");
        assert_eq!(pick_vpc_block(pool, &[]), Some(b("2001:db8:5::/56")));
        let taken = [b("2001:db8:5::/56"), b("2001:db8:5:200::/56")];
        assert_eq!(pick_vpc_block(pool, &taken), Some(b("2001:db8:5:100::/56")));
        // An operator's block outside the pool takes nothing from it.
        let taken = [b("2001:db8:5::/56"), b("2001:db8:9::/56")];
        assert_eq!(pick_vpc_block(pool, &taken), Some(b("2001:db8:5:100::/56")));
        // A full pool: a /52 has sixteen /56s.
        let small = b("2001:db8:5::/52");
        let all: Vec<Block> = (0..16u128)
            .map(|k| Block {
                net: small.net + (k << 72),
                prefix: 56,
            })
            .collect();
        assert_eq!(pick_vpc_block(small, &all), None);
        assert_eq!(pick_vpc_block(small, &all[1..]), Some(all[0]));
        // A larger taken block covering the start of the pool is walked past.
        assert_eq!(
            pick_vpc_block(pool, &[b("2001:db8:5::/52")]),
            Some(b("2001:db8:5:1000::/56"))
        );
    }

    #[test]
    fn addresses_are_checked_and_picked_inside_the_64() {
        let net = "2001:db8:0:1::/64";
        assert_eq!(
            check_address(net, "2001:DB8:0:1::10").unwrap(),
            "2001:db8:0:1::10"
        );
        for bad in [
            "2001:db8:0:2::10",
            "2001:db8:0:1::",
            "2001:db8:0:1::3",
            "2001:db8:0:1:ffff:ffff:ffff:ffff",
            "10.0.0.1",
            "banana",
            "",
        ] {
            assert_eq!(
                check_address(net, bad).unwrap_err().code,
                "InvalidParameterValue",
                "{bad}"
            );
        }
        let got = pick_addresses(net, &[], 5).unwrap();
        assert_eq!(got.len(), 5);
        for a in &got {
            assert_eq!(&check_address(net, a).unwrap(), a);
        }
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
    }

    fn vpc(id: &str, owner: &str, bridge: &str) -> crate::db::network::Vpc {
        crate::db::network::Vpc {
            id: id.into(),
            owner: owner.into(),
            cidr: "10.0.0.0/16".into(),
            is_default: false,
            bridge: bridge.into(),
            state: "available".into(),
            tags: vec![],
            created: 0,
        }
    }

    fn subnet(id: &str, vpc: &str, cidr: &str) -> Subnet {
        Subnet {
            id: id.into(),
            vpc_id: vpc.into(),
            az: "home-1a".into(),
            cidr: cidr.into(),
            bridge: "br0".into(),
            is_default: false,
        }
    }

    #[tokio::test]
    async fn blocks_and_addresses_follow_ec2s_rules() {
        let (_dir, cloud) = crate::cloud::test_cloud_with(|c| {
            c.ipv6_pool = Block::parse("2001:db8:a::/48");
        });
        let me = "111111111111";
        let admin = cloud.cfg.admin_account.clone();
        let (va, vb, vc) = (
            "vpc-0000000000000000a",
            "vpc-0000000000000000b",
            "vpc-0000000000000000c",
        );
        cloud.db.insert_vpc(&vpc(va, me, "br0")).unwrap();
        cloud.db.insert_vpc(&vpc(vb, me, "br1")).unwrap();
        cloud.db.insert_vpc(&vpc(vc, &admin, "br2")).unwrap();
        let (sa, sa2) = ("subnet-0000000000000000a", "subnet-0000000000000000b");
        cloud
            .db
            .insert_subnet(&subnet(sa, va, "10.0.0.0/24"))
            .unwrap();
        cloud
            .db
            .insert_subnet(&subnet(sa2, va, "10.0.1.0/24"))
            .unwrap();

        let amazon = |v: &str| AssociateVpcCidr {
            vpc_id: v.into(),
            amazon_provided: true,
            ..Default::default()
        };
        let given = |v: &str, c: &str| AssociateVpcCidr {
            vpc_id: v.into(),
            ipv6_cidr_block: c.into(),
            ..Default::default()
        };
        let code = |r: ApiResult<VpcIpv6Block>| r.unwrap_err().code;
        // Groups made before the block: the default one gains ::/0 egress, others do not.
        let default = cloud.default_group(me, va).unwrap();
        let own = cloud
            .create_security_group(me, "own", "mine", va, vec![])
            .unwrap();
        let egress6 = |g: &str| {
            cloud
                .db
                .security_group_rules(g)
                .unwrap()
                .iter()
                .filter(|r| r.egress && r.cidr == "::/0")
                .count()
        };
        assert_eq!((egress6(&default.id), egress6(&own.id)), (0, 0));
        let a = cloud.associate_vpc_cidr_block(me, &amazon(va)).unwrap();
        assert_eq!((egress6(&default.id), egress6(&own.id)), (1, 0));
        assert_eq!(a.cidr, "2001:db8:a::/56");
        assert_eq!(a.pool, AMAZON_POOL);
        assert!(a.association_id.starts_with("vpc-cidr-assoc-"));
        assert_eq!(
            code(cloud.associate_vpc_cidr_block(me, &amazon(va))),
            "CidrLimitExceeded"
        );
        let b = cloud.associate_vpc_cidr_block(me, &amazon(vb)).unwrap();
        assert_eq!(b.cidr, "2001:db8:a:100::/56");
        let mut both = amazon(vc);
        both.ipv6_cidr_block = "2001:db8:ff::/56".into();
        assert_eq!(
            code(cloud.associate_vpc_cidr_block(&admin, &both)),
            "InvalidParameterCombination"
        );
        assert_eq!(
            code(cloud.associate_vpc_cidr_block(me, &given(vb, "2001:db8:ff::/56"))),
            "UnauthorizedOperation"
        );
        for bad in ["2001:db8:a::/56", "2001:db8:ff::/48", "fe80::/56"] {
            assert_eq!(
                code(cloud.associate_vpc_cidr_block(&admin, &given(vc, bad))),
                "InvalidVpc.Range",
                "{bad}"
            );
        }
        assert_eq!(
            code(cloud.associate_vpc_cidr_block(&admin, &given(vc, "2001:db8::1/56"))),
            "InvalidParameterValue"
        );
        let c = cloud
            .associate_vpc_cidr_block(&admin, &given(vc, "2001:DB8:FF::/56"))
            .unwrap();
        assert_eq!(
            (c.cidr.as_str(), c.pool.as_str()),
            ("2001:db8:ff::/56", "operator")
        );
        // Another account sees neither the VPC nor its block.
        assert_eq!(
            code(cloud.associate_vpc_cidr_block("222222222222", &amazon(va))),
            "InvalidVpcID.NotFound"
        );

        let scode = |r: ApiResult<SubnetIpv6Block>| r.unwrap_err().code;
        assert_eq!(
            scode(
                cloud
                    .associate_subnet_cidr_block(me, sa, "2001:db8:a:100::/64")
                    .await
            ),
            "InvalidSubnet.Range"
        );
        assert_eq!(
            scode(
                cloud
                    .associate_subnet_cidr_block(me, sa, "2001:db8:a::/60")
                    .await
            ),
            "InvalidSubnet.Range"
        );
        let s1 = cloud
            .associate_subnet_cidr_block(me, sa, "2001:db8:a:1::/64")
            .await
            .unwrap();
        assert!(s1.association_id.starts_with("subnet-cidr-assoc-"));
        assert_eq!(
            scode(
                cloud
                    .associate_subnet_cidr_block(me, sa2, "2001:db8:a:1::/64")
                    .await
            ),
            "InvalidSubnet.Conflict"
        );
        assert_eq!(
            scode(
                cloud
                    .associate_subnet_cidr_block(me, sa, "2001:db8:a:2::/64")
                    .await
            ),
            "CidrLimitExceeded"
        );
        assert_eq!(
            code(cloud.disassociate_vpc_cidr_block(me, &a.association_id)),
            "DependencyViolation"
        );

        use crate::cloud::network::network_interfaces::CreateEni;
        let eni = |subnet: &str, count: Option<i32>, named: &[&str]| CreateEni {
            subnet_id: subnet.into(),
            ipv6_count: count,
            ipv6_addresses: named.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let e1 = cloud
            .create_network_interface(me, eni(sa, Some(2), &[]))
            .await
            .unwrap();
        assert_eq!(e1.ipv6.len(), 2);
        for x in &e1.ipv6 {
            assert_eq!(&check_address("2001:db8:a:1::/64", x).unwrap(), x);
        }
        let none = cloud
            .create_network_interface(me, eni(sa, None, &[]))
            .await
            .unwrap();
        assert!(
            none.ipv6.is_empty(),
            "the subnet does not assign on creation"
        );
        let e = cloud
            .create_network_interface(me, eni(sa2, Some(1), &[]))
            .await;
        assert_eq!(e.unwrap_err().code, "InvalidParameterValue");
        let e = cloud
            .create_network_interface(me, eni(sa, None, &[&e1.ipv6[0]]))
            .await;
        assert_eq!(e.unwrap_err().code, "InvalidIPAddress.InUse");
        let e = cloud
            .create_network_interface(me, eni(sa, Some(1), &["2001:db8:a:1::10"]))
            .await;
        assert_eq!(e.unwrap_err().code, "InvalidParameterCombination");
        assert_eq!(
            cloud
                .modify_subnet_attribute(me, sa2, None, Some(true))
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        cloud
            .modify_subnet_attribute(me, sa, None, Some(true))
            .unwrap();
        let e2 = cloud
            .create_network_interface(me, eni(sa, None, &[]))
            .await
            .unwrap();
        assert_eq!(e2.ipv6.len(), 1, "AssignIpv6AddressOnCreation gives one");

        let added = cloud
            .assign_ipv6_addresses(me, &e2.eni.id, &["2001:DB8:A:1::10".into()], 0)
            .await
            .unwrap();
        assert_eq!(added, ["2001:db8:a:1::10"]);
        let e = cloud
            .assign_ipv6_addresses(me, &e1.eni.id, &["2001:db8:a:1::10".into()], 0)
            .await;
        assert_eq!(e.unwrap_err().code, "InvalidIPAddress.InUse");
        let e = cloud.assign_ipv6_addresses(me, &e1.eni.id, &[], 9).await;
        assert_eq!(e.unwrap_err().code, "InvalidParameterValue", "over 10");
        let e = cloud.assign_ipv6_addresses(me, &e1.eni.id, &[], 0).await;
        assert_eq!(e.unwrap_err().code, "MissingParameter");
        let e = cloud
            .assign_ipv6_addresses("222222222222", &e1.eni.id, &[], 1)
            .await;
        assert_eq!(e.unwrap_err().code, "InvalidNetworkInterfaceID.NotFound");
        let more = cloud
            .assign_ipv6_addresses(me, &e1.eni.id, &[], 8)
            .await
            .unwrap();
        assert_eq!(more.len(), 8);
        assert_eq!(cloud.eni_ipv6(&e1.eni.id).unwrap().len(), 10);

        let f = |name: &str, v: &str| crate::cloud::filters::Filter {
            name: name.into(),
            values: vec![v.into()],
        };
        let got = cloud
            .describe_network_interfaces(
                me,
                &[],
                &[f("ipv6-addresses.ipv6-address", "2001:db8:a:1::10")],
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].eni.id, e2.eni.id);
        assert_eq!(got[0].ipv6.len(), 2);
        let got = cloud
            .describe_vpcs(
                me,
                &[],
                &[f(
                    "ipv6-cidr-block-association.ipv6-cidr-block",
                    "2001:db8:a:100::/56",
                )],
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.id, vb);
        let got = cloud
            .describe_subnets(me, &[], &[f("assign-ipv6-address-on-creation", "true")])
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].subnet.id, sa);
        assert_eq!(
            got[0].ipv6.as_ref().map(|b| b.cidr.as_str()),
            Some("2001:db8:a:1::/64")
        );

        let e = cloud
            .unassign_ipv6_addresses(me, &e2.eni.id, &["2001:db8:a:1::11".into()])
            .await;
        assert_eq!(e.unwrap_err().code, "InvalidParameterValue");
        let gone = cloud
            .unassign_ipv6_addresses(me, &e2.eni.id, &["2001:db8:a:1:0::10".into()])
            .await
            .unwrap();
        assert_eq!(gone, ["2001:db8:a:1::10"]);

        assert_eq!(
            scode(
                cloud
                    .disassociate_subnet_cidr_block(me, &s1.association_id)
                    .await
            ),
            "DependencyViolation"
        );
        for v in [&e1, &e2, &none] {
            cloud.delete_network_interface(me, &v.eni.id).await.unwrap();
        }
        let e = cloud
            .disassociate_subnet_cidr_block("222222222222", &s1.association_id)
            .await;
        assert_eq!(
            e.unwrap_err().code,
            "InvalidSubnetCidrBlockAssociationID.NotFound"
        );
        cloud
            .disassociate_subnet_cidr_block(me, &s1.association_id)
            .await
            .unwrap();
        cloud
            .disassociate_vpc_cidr_block(me, &a.association_id)
            .unwrap();
        assert_eq!(
            code(cloud.disassociate_vpc_cidr_block(me, &a.association_id)),
            "InvalidVpcCidrBlockAssociationID.NotFound"
        );
        // The freed /56 is the next one handed out.
        let again = cloud.associate_vpc_cidr_block(me, &amazon(va)).unwrap();
        assert_eq!(again.cidr, "2001:db8:a::/56");
    }
}
