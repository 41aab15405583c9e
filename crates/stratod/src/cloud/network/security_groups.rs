//! Security groups: CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups,
//! Authorize/RevokeSecurityGroupIngress/Egress, and the groups of network interfaces. The
//! host firewall that enforces them is `super::firewall`.
//!
//! Each account has a group named `default` in each VPC it sees (made on first use, also in
//! the default VPC, which all accounts share): it allows all traffic from its own members
//! and all outbound traffic. New groups allow all outbound traffic. Groups are stateful:
//! replies of allowed connections always pass.

use std::collections::HashSet;

use crate::cloud::filters::{self, Filter};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::security_groups::{GroupDelete, RulesInsert, SecurityGroup, SgRule};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// Most rules per group and direction (EC2's default quota).
pub const MAX_RULES: usize = 60;
/// Most groups per network interface (EC2's default quota).
pub const MAX_GROUPS_PER_ENI: usize = 5;
/// The name of each VPC's default group.
pub const DEFAULT_NAME: &str = "default";

/// Filter names of DescribeSecurityGroups.
pub const GROUP_FILTERS: &[&str] = &[
    "group-id",
    "group-name",
    "vpc-id",
    "owner-id",
    "description",
    "tag-key",
];

/// One IpPermission: a protocol and port range, and the peers it allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, `-1` or a protocol number (names and numbers accepted).
    pub protocol: String,
    /// First port, or the ICMP type.
    pub from_port: Option<i32>,
    /// Last port, or the ICMP code.
    pub to_port: Option<i32>,
    /// Peer blocks.
    pub cidrs: Vec<String>,
    /// Peer IPv6 blocks (`Ipv6Ranges`).
    pub cidrs6: Vec<String>,
    /// Peer groups (IDs).
    pub groups: Vec<String>,
}

/// A group as DescribeSecurityGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// The row.
    pub group: SecurityGroup,
    /// Inbound permissions, one per protocol and port range.
    pub ingress: Vec<Permission>,
    /// Outbound permissions.
    pub egress: Vec<Permission>,
}

/// A protocol as stored: its name for tcp, udp and icmp, `-1` for all, else its number;
/// with the port range (or ICMP type and code) it keeps, -1 where none applies.
pub fn normalize(p: &Permission) -> ApiResult<(String, i32, i32)> {
    let proto = p.protocol.trim().to_ascii_lowercase();
    let proto = match proto.as_str() {
        "" => return Err(ApiError::missing("IpProtocol")),
        "-1" | "all" => return Ok(("-1".into(), -1, -1)),
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" => "icmp".to_string(),
        "58" => "icmpv6".to_string(),
        "tcp" | "udp" | "icmp" | "icmpv6" => proto,
        n => match n.parse::<u8>() {
            Ok(n) => return Ok((n.to_string(), -1, -1)),
            Err(_) => {
                return Err(ApiError::invalid(format!(
                    "Invalid value '{}' for IP protocol. Unknown protocol.",
                    p.protocol.chars().take(32).collect::<String>()
                )))
            }
        },
    };
    if proto == "icmp" || proto == "icmpv6" {
        let ty = p.from_port.unwrap_or(-1);
        let code = if ty == -1 {
            -1
        } else {
            p.to_port.unwrap_or(-1)
        };
        if !(-1..=255).contains(&ty) || !(-1..=255).contains(&code) {
            return Err(ApiError::invalid(format!(
                "Invalid ICMP type {ty} or code {code}: use -1 (all) or 0 to 255."
            )));
        }
        return Ok((proto, ty, code));
    }
    let (Some(from), Some(to)) = (p.from_port, p.to_port) else {
        return Err(ApiError::invalid(
            "Invalid value for portRange. Must specify both from and to ports with TCP/UDP.",
        ));
    };
    if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
        return Err(ApiError::invalid(format!(
            "Invalid value for portRange: {from}-{to} (0 to 65535, from <= to)."
        )));
    }
    Ok((proto, from, to))
}

/// Rules grouped back into permissions (one per direction, protocol and port range).
fn permissions(rules: &[SgRule], egress: bool) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::new();
    for r in rules.iter().filter(|r| r.egress == egress) {
        let ports =
            |p: i32| matches!(r.protocol.as_str(), "tcp" | "udp" | "icmp" | "icmpv6").then_some(p);
        let (from, to) = (ports(r.from_port), ports(r.to_port));
        let i = match out
            .iter()
            .position(|p| p.protocol == r.protocol && p.from_port == from && p.to_port == to)
        {
            Some(i) => i,
            None => {
                out.push(Permission {
                    protocol: r.protocol.clone(),
                    from_port: from,
                    to_port: to,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        if !r.peer_group.is_empty() {
            out[i].groups.push(r.peer_group.clone());
        } else if r.cidr.contains(':') {
            out[i].cidrs6.push(r.cidr.clone());
        } else {
            out[i].cidrs.push(r.cidr.clone());
        }
    }
    out
}

/// How a rule reads in an error message, as EC2 words it.
fn describe_rule(r: &SgRule) -> String {
    let peer = if r.peer_group.is_empty() {
        &r.cidr
    } else {
        &r.peer_group
    };
    let proto = if r.protocol == "-1" {
        "ALL".to_string()
    } else {
        r.protocol.to_ascii_uppercase()
    };
    format!(
        "peer: {peer}, {proto}, from port: {}, to port: {}, ALLOW",
        r.from_port, r.to_port
    )
}

/// All outbound IPv6 traffic: what EC2 adds beside `0.0.0.0/0` to a new group's egress
/// when its VPC has an IPv6 block.
fn all_traffic6() -> SgRule {
    SgRule {
        cidr: "::/0".into(),
        ..all_traffic(true, "")
    }
}

/// An IPv6 peer block in its canonical form (what duplicates are found by), or EC2's error.
fn check_cidr6(c: &str) -> ApiResult<String> {
    let b = super::ipv6::Block::parse(c).ok_or_else(|| {
        ApiError::invalid(format!(
            "Value ({}) for parameter CidrIpv6 is invalid. This is not a valid IPv6 CIDR block.",
            c.chars().take(64).collect::<String>()
        ))
    })?;
    Ok(format!("{}/{}", std::net::Ipv6Addr::from(b.net), b.prefix))
}

fn all_traffic(egress: bool, peer_group: &str) -> SgRule {
    SgRule {
        egress,
        protocol: "-1".into(),
        from_port: -1,
        to_port: -1,
        cidr: if peer_group.is_empty() {
            "0.0.0.0/0".into()
        } else {
            String::new()
        },
        peer_group: peer_group.to_string(),
    }
}

/// The ID of an account's default group of a VPC: derived from both, so that every host of
/// a region that makes the group (on first use) makes the same one.
pub fn default_group_id(account: &str, vpc_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("default-group/{account}/{vpc_id}").as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{}", Kind::SecurityGroup.prefix(), &hex[..17])
}

fn check_text(param: &str, s: &str) -> ApiResult<()> {
    if s.is_empty() {
        return Err(ApiError::missing(param));
    }
    if s.chars().count() > 255 || s.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "Invalid value for {param}: use 1 to 255 printable characters."
        )));
    }
    Ok(())
}

impl Cloud {
    /// The VPC a group request names (the default VPC when empty), if the caller sees it.
    fn group_vpc(&self, account: &str, vpc_id: &str) -> ApiResult<crate::db::network::Vpc> {
        let vpcs = self.db.vpcs()?;
        let found = if vpc_id.is_empty() {
            vpcs.into_iter().find(|v| v.is_default)
        } else {
            ids::check(Kind::Vpc, vpc_id)?;
            vpcs.into_iter().find(|v| v.id == vpc_id)
        };
        found
            .filter(|v| v.owner.is_empty() || v.owner == account)
            .ok_or_else(|| {
                if vpc_id.is_empty() {
                    ApiError::new(
                        ErrorCode::VpcIdNotSpecified,
                        "No default VPC for this account.",
                    )
                } else {
                    Kind::Vpc.not_found(vpc_id)
                }
            })
    }

    /// The account's default group of a VPC, made (with its two rules) on first use.
    pub fn default_group(&self, account: &str, vpc_id: &str) -> ApiResult<SecurityGroup> {
        if let Some(g) = self
            .db
            .security_group_named(account, vpc_id, DEFAULT_NAME)?
        {
            return Ok(g);
        }
        let g = SecurityGroup {
            id: default_group_id(account, vpc_id),
            owner: account.to_string(),
            vpc_id: vpc_id.to_string(),
            name: DEFAULT_NAME.into(),
            description: "default VPC security group".into(),
            tags: Vec::new(),
            created: crate::db::now_s(),
        };
        if self.db.insert_security_group(&g)? {
            let mut rules = vec![all_traffic(false, &g.id), all_traffic(true, "")];
            if self.db.vpc_ipv6_block(vpc_id)?.is_some() {
                rules.push(all_traffic6());
            }
            self.db
                .insert_security_group_rules(&g.id, &rules, MAX_RULES)?;
            return Ok(g);
        }
        // Another request made it meanwhile.
        self.db
            .security_group_named(account, vpc_id, DEFAULT_NAME)?
            .ok_or_else(|| ApiError::internal("The default security group vanished."))
    }

    /// What EC2 does when a VPC gets an IPv6 block: its default groups (one per account)
    /// gain `::/0` egress beside `0.0.0.0/0`; other groups keep their rules. No interface
    /// has an IPv6 address before a subnet gets its block, which applies the firewall.
    pub fn default_groups_gain_ipv6_egress(&self, vpc_id: &str) -> ApiResult<()> {
        for g in self.db.security_groups(None)? {
            if g.vpc_id == vpc_id && g.name == DEFAULT_NAME {
                // A group that has it already (Duplicate) or is full (Limit) stays as it is.
                self.db
                    .insert_security_group_rules(&g.id, &[all_traffic6()], MAX_RULES)?;
            }
        }
        Ok(())
    }

    /// Makes the default groups of every VPC the account sees.
    fn ensure_default_groups(&self, account: &str) -> ApiResult<()> {
        for v in self.db.vpcs()? {
            if v.owner.is_empty() || v.owner == account {
                self.default_group(account, &v.id)?;
            }
        }
        Ok(())
    }

    /// A group of the caller's by ID.
    pub fn owned_group(&self, account: &str, id: &str) -> ApiResult<SecurityGroup> {
        ids::check(Kind::SecurityGroup, id)?;
        self.db
            .security_group(id)?
            .filter(|g| g.owner == account)
            .ok_or_else(|| Kind::SecurityGroup.not_found(id))
    }

    /// A group of the caller's by ID, else by name (in the default VPC first, as EC2 looks
    /// names up, else in the one VPC of the caller's that has the name).
    pub fn group_by_id_or_name(
        &self,
        account: &str,
        id: &str,
        name: &str,
    ) -> ApiResult<SecurityGroup> {
        if !id.is_empty() {
            return self.owned_group(account, id);
        }
        if name.is_empty() {
            return Err(ApiError::missing("GroupId"));
        }
        if name == DEFAULT_NAME {
            self.ensure_default_groups(account)?;
        }
        let default_vpc = self.db.vpcs()?.into_iter().find(|v| v.is_default);
        let mine: Vec<SecurityGroup> = self
            .db
            .security_groups(Some(account))?
            .into_iter()
            .filter(|g| g.name == name)
            .collect();
        let in_default = mine
            .iter()
            .find(|g| default_vpc.as_ref().is_some_and(|v| v.id == g.vpc_id));
        match (in_default, mine.len()) {
            (Some(g), _) => Ok(g.clone()),
            (None, 1) => Ok(mine[0].clone()),
            _ => Err(ApiError::new(
                ErrorCode::InvalidGroupNotFound,
                format!(
                    "The security group '{}' does not exist in default VPC",
                    name.chars().take(64).collect::<String>()
                ),
            )),
        }
    }

    /// CreateSecurityGroup: a group allowing all outbound traffic and nothing inbound.
    pub fn create_security_group(
        &self,
        account: &str,
        name: &str,
        description: &str,
        vpc_id: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<SecurityGroup> {
        check_text("GroupName", name)?;
        check_text("GroupDescription", description)?;
        if name.starts_with("sg-") {
            return Err(ApiError::invalid(
                "Group names may not be in the format sg-*.",
            ));
        }
        if name == DEFAULT_NAME {
            return Err(ApiError::invalid(
                "Cannot use reserved security group name: default",
            ));
        }
        let vpc = self.group_vpc(account, vpc_id)?;
        let g = SecurityGroup {
            id: ids::new_id(Kind::SecurityGroup),
            owner: account.to_string(),
            vpc_id: vpc.id.clone(),
            name: name.to_string(),
            description: description.to_string(),
            tags,
            created: crate::db::now_s(),
        };
        if !self.db.insert_security_group(&g)? {
            return Err(ApiError::new(
                ErrorCode::InvalidGroupDuplicate,
                format!(
                    "The security group '{name}' already exists for VPC '{}'",
                    vpc.id
                ),
            ));
        }
        let mut rules = vec![all_traffic(true, "")];
        if self.db.vpc_ipv6_block(&vpc.id)?.is_some() {
            rules.push(all_traffic6());
        }
        self.db
            .insert_security_group_rules(&g.id, &rules, MAX_RULES)?;
        Ok(g)
    }

    /// DeleteSecurityGroup: refused for default groups and while the group is in use.
    pub fn delete_security_group(&self, account: &str, id: &str, name: &str) -> ApiResult<()> {
        let g = self.group_by_id_or_name(account, id, name)?;
        if g.name == DEFAULT_NAME {
            return Err(ApiError::new(
                ErrorCode::CannotDelete,
                format!(
                    "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                    g.id
                ),
            ));
        }
        match self.db.delete_security_group_if_unused(&g.id)? {
            GroupDelete::Deleted => Ok(()),
            GroupDelete::InUse => Err(ApiError::new(
                ErrorCode::DependencyViolation,
                format!("resource {} has a dependent object", g.id),
            )),
        }
    }

    /// DescribeSecurityGroups: the named ones (each must be the caller's) or all, filtered.
    pub fn describe_security_groups(
        &self,
        account: &str,
        group_ids: &[String],
        names: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<GroupView>> {
        filters::check_names(f, GROUP_FILTERS)?;
        ids::check_all(Kind::SecurityGroup, group_ids)?;
        self.ensure_default_groups(account)?;
        let all = self.db.security_groups(Some(account))?;
        if let Some(id) = group_ids
            .iter()
            .find(|id| !all.iter().any(|g| &g.id == *id))
        {
            return Err(Kind::SecurityGroup.not_found(id));
        }
        let mut chosen: Vec<SecurityGroup> = Vec::new();
        for n in names {
            let g = self.group_by_id_or_name(account, "", n)?;
            if !chosen.iter().any(|c| c.id == g.id) {
                chosen.push(g);
            }
        }
        let mut out = Vec::new();
        for g in all {
            let named = group_ids.contains(&g.id) || chosen.iter().any(|c| c.id == g.id);
            if (!group_ids.is_empty() || !names.is_empty()) && !named {
                continue;
            }
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "group-id" => one(&g.id),
                    "group-name" => one(&g.name),
                    "vpc-id" => one(&g.vpc_id),
                    "owner-id" => one(&g.owner),
                    "description" => one(&g.description),
                    n => filters::tag_values(&g.tags, n),
                }
            })?;
            if ok {
                let rules = self.db.security_group_rules(&g.id)?;
                out.push(GroupView {
                    ingress: permissions(&rules, false),
                    egress: permissions(&rules, true),
                    group: g,
                });
            }
        }
        Ok(out)
    }

    /// Turns permissions into rule rows, checking every peer group (the caller's, in the
    /// group's VPC).
    fn rules_of(
        &self,
        account: &str,
        g: &SecurityGroup,
        egress: bool,
        perms: &[Permission],
    ) -> ApiResult<Vec<SgRule>> {
        if perms.is_empty() {
            return Err(ApiError::missing("IpPermissions"));
        }
        let mut out = Vec::new();
        for p in perms {
            let (protocol, from_port, to_port) = normalize(p)?;
            if p.cidrs.is_empty() && p.cidrs6.is_empty() && p.groups.is_empty() {
                return Err(ApiError::missing(
                    "IpRanges, Ipv6Ranges or UserIdGroupPairs",
                ));
            }
            let rule = |cidr: String, peer_group: String| SgRule {
                egress,
                protocol: protocol.clone(),
                from_port,
                to_port,
                cidr,
                peer_group,
            };
            for c in &p.cidrs {
                super::vpcs::check_cidr("CidrIp", c)?;
                out.push(rule(c.clone(), String::new()));
            }
            for c in &p.cidrs6 {
                out.push(rule(check_cidr6(c)?, String::new()));
            }
            for id in &p.groups {
                let peer = self.owned_group(account, id)?;
                if peer.vpc_id != g.vpc_id {
                    return Err(ApiError::new(
                        ErrorCode::InvalidGroupNotFound,
                        format!(
                            "You have specified a security group ({id}) that is not in the VPC of {} ({}).",
                            g.id, g.vpc_id
                        ),
                    ));
                }
                out.push(rule(String::new(), peer.id));
            }
        }
        Ok(out)
    }

    /// The group and the rule rows an Authorize or Revoke names, checked (no rule twice).
    pub(crate) fn rule_change(
        &self,
        account: &str,
        group_id: &str,
        group_name: &str,
        egress: bool,
        perms: &[Permission],
    ) -> ApiResult<(SecurityGroup, Vec<SgRule>)> {
        let g = self.group_by_id_or_name(account, group_id, group_name)?;
        let rules = self.rules_of(account, &g, egress, perms)?;
        let mut seen = HashSet::new();
        if let Some(dup) = rules.iter().find(|r| !seen.insert(*r)) {
            return Err(duplicate(dup));
        }
        Ok((g, rules))
    }

    /// Records rules of a group: all or none, each new, within the group's limit.
    pub(crate) fn add_rules(&self, group_id: &str, rules: &[SgRule]) -> ApiResult<()> {
        match self
            .db
            .insert_security_group_rules(group_id, rules, MAX_RULES)?
        {
            RulesInsert::Done => Ok(()),
            RulesInsert::Duplicate(r) => Err(duplicate(&r)),
            RulesInsert::Limit => Err(ApiError::new(
                ErrorCode::RulesPerSecurityGroupLimitExceeded,
                format!(
                    "The maximum number of rules per security group ({MAX_RULES} per direction) has been reached."
                ),
            )),
        }
    }

    /// Removes rules of a group: all or none, each one there.
    pub(crate) fn remove_rules(&self, group_id: &str, rules: &[SgRule]) -> ApiResult<()> {
        match self.db.delete_security_group_rules(group_id, rules)? {
            None => Ok(()),
            Some(missing) => Err(ApiError::new(
                ErrorCode::InvalidPermissionNotFound,
                format!(
                    "The specified rule does not exist in this security group: {}",
                    describe_rule(&missing)
                ),
            )),
        }
    }

    /// AuthorizeSecurityGroupIngress / Egress: all the rules or none; applied at once.
    pub async fn authorize(
        &self,
        account: &str,
        group_id: &str,
        group_name: &str,
        egress: bool,
        perms: &[Permission],
    ) -> ApiResult<()> {
        let (g, rules) = self.rule_change(account, group_id, group_name, egress, perms)?;
        self.add_rules(&g.id, &rules)?;
        // A change the kernel refuses is not kept: the database stays what the kernel holds.
        if let Err(e) = self.apply_firewall().await {
            self.db.delete_security_group_rules(&g.id, &rules)?;
            return Err(e);
        }
        Ok(())
    }

    /// RevokeSecurityGroupIngress / Egress: all the rules or none; applied at once.
    pub async fn revoke(
        &self,
        account: &str,
        group_id: &str,
        group_name: &str,
        egress: bool,
        perms: &[Permission],
    ) -> ApiResult<()> {
        let (g, rules) = self.rule_change(account, group_id, group_name, egress, perms)?;
        self.remove_rules(&g.id, &rules)?;
        if let Err(e) = self.apply_firewall().await {
            self.db
                .insert_security_group_rules(&g.id, &rules, usize::MAX)?;
            return Err(e);
        }
        Ok(())
    }

    /// The groups for a network interface in `vpc_id`: the named ones (the caller's, in
    /// that VPC, at most [`MAX_GROUPS_PER_ENI`], duplicates dropped), or the VPC's default
    /// group when none are named.
    pub fn resolve_groups(
        &self,
        account: &str,
        vpc_id: &str,
        group_ids: &[String],
    ) -> ApiResult<Vec<SecurityGroup>> {
        if group_ids.is_empty() {
            return Ok(vec![self.default_group(account, vpc_id)?]);
        }
        let mut out: Vec<SecurityGroup> = Vec::new();
        for id in group_ids {
            let g = self.owned_group(account, id)?;
            if g.vpc_id != vpc_id {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("Security group {id} and the subnet belong to different networks (VPC {} and {vpc_id}).", g.vpc_id),
                ));
            }
            if !out.iter().any(|o| o.id == g.id) {
                out.push(g);
            }
        }
        if out.len() > MAX_GROUPS_PER_ENI {
            return Err(ApiError::new(
                ErrorCode::SecurityGroupsPerInterfaceLimitExceeded,
                format!(
                    "The maximum number of security groups per interface ({MAX_GROUPS_PER_ENI}) has been reached."
                ),
            ));
        }
        Ok(out)
    }

    /// Group IDs for a launch in `vpc_id` from IDs and names (names are looked up in that
    /// VPC).
    pub fn launch_groups(
        &self,
        account: &str,
        vpc_id: &str,
        group_ids: &[String],
        names: &[String],
    ) -> ApiResult<Vec<String>> {
        let mut all = group_ids.to_vec();
        for n in names {
            let g = if n == DEFAULT_NAME {
                self.default_group(account, vpc_id)?
            } else {
                self.db
                    .security_group_named(account, vpc_id, n)?
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidGroupNotFound,
                            format!(
                                "The security group '{}' does not exist in VPC '{vpc_id}'",
                                n.chars().take(64).collect::<String>()
                            ),
                        )
                    })?
            };
            all.push(g.id);
        }
        Ok(self
            .resolve_groups(account, vpc_id, &all)?
            .into_iter()
            .map(|g| g.id)
            .collect())
    }

    /// Replaces the groups of one of the caller's network interfaces; in force at once.
    pub async fn set_eni_groups(
        &self,
        account: &str,
        eni_id: &str,
        group_ids: &[String],
    ) -> ApiResult<()> {
        ids::check(Kind::NetworkInterface, eni_id)?;
        if group_ids.is_empty() {
            return Err(ApiError::missing("SecurityGroupId"));
        }
        let eni = self
            .db
            .eni_hosts()?
            .into_iter()
            .find(|e| e.id == eni_id && e.owner == account)
            .ok_or_else(|| Kind::NetworkInterface.not_found(eni_id))?;
        let groups: Vec<String> = self
            .resolve_groups(account, &eni.vpc_id, group_ids)?
            .into_iter()
            .map(|g| g.id)
            .collect();
        let before = self.db.eni_groups(eni_id)?;
        if !self.db.set_eni_groups(eni_id, &groups)? {
            return Err(Kind::NetworkInterface.not_found(eni_id));
        }
        if let Err(e) = self.apply_firewall().await {
            self.db.set_eni_groups(eni_id, &before)?;
            return Err(e);
        }
        Ok(())
    }

    /// ModifyInstanceAttribute `groups`, checked only: the primary interface and its new
    /// groups.
    pub fn plan_instance_groups(
        &self,
        account: &str,
        instance_id: &str,
        group_ids: &[String],
    ) -> ApiResult<(String, Vec<String>)> {
        let inst = self.owned_instance(account, instance_id)?;
        if inst.state == crate::lifecycle::State::Terminated {
            return Err(ApiError::incorrect_state(
                instance_id,
                inst.state.name(),
                "modified",
            ));
        }
        let eni = self
            .db
            .instance_enis(instance_id)?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::incorrect_state(instance_id, inst.state.name(), "modified"))?;
        let vpc = self
            .db
            .subnet(&eni.subnet_id)?
            .map(|s| s.vpc_id)
            .ok_or_else(|| ApiError::internal(format!("subnet {} is gone", eni.subnet_id)))?;
        let groups = self.resolve_groups(account, &vpc, group_ids)?;
        Ok((eni.id, groups.into_iter().map(|g| g.id).collect()))
    }

    /// ModifyInstanceAttribute `groups`: replaces the groups of the primary interface; in
    /// force at once.
    pub async fn modify_instance_groups(
        &self,
        account: &str,
        instance_id: &str,
        group_ids: &[String],
    ) -> ApiResult<()> {
        if group_ids.is_empty() {
            return Err(ApiError::missing("GroupId"));
        }
        let (eni, groups) = self.plan_instance_groups(account, instance_id, group_ids)?;
        let before = self.db.eni_groups(&eni)?;
        if !self.db.set_eni_groups(&eni, &groups)? {
            return Err(Kind::NetworkInterface.not_found(&eni));
        }
        if let Err(e) = self.apply_firewall().await {
            self.db.set_eni_groups(&eni, &before)?;
            return Err(e);
        }
        self.db.set_instance_groups(instance_id, &groups)?;
        Ok(())
    }

    /// The groups (ID and name) of a network interface.
    pub fn eni_group_names(&self, eni_id: &str) -> ApiResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for id in self.db.eni_groups(eni_id)? {
            let name = self
                .db
                .security_group(&id)?
                .map(|g| g.name)
                .unwrap_or_default();
            out.push((id, name));
        }
        Ok(out)
    }
}

fn duplicate(r: &SgRule) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidPermissionDuplicate,
        format!("the specified rule \"{}\" already exists", describe_rule(r)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "111111111111";
    const B: &str = "222222222222";

    fn perm(proto: &str, from: Option<i32>, to: Option<i32>, cidr: &str) -> Permission {
        Permission {
            protocol: proto.into(),
            from_port: from,
            to_port: to,
            cidrs: vec![cidr.into()],
            cidrs6: vec![],
            groups: vec![],
        }
    }

    #[test]
    fn protocols_normalize() {
        let n = |p: &str, f, t| normalize(&perm(p, f, t, "0.0.0.0/0"));
        assert_eq!(n("6", Some(22), Some(22)).unwrap(), ("tcp".into(), 22, 22));
        assert_eq!(n("all", None, None).unwrap(), ("-1".into(), -1, -1));
        assert_eq!(n("ICMP", None, None).unwrap(), ("icmp".into(), -1, -1));
        assert_eq!(n("icmp", Some(8), None).unwrap(), ("icmp".into(), 8, -1));
        assert_eq!(n("47", Some(1), Some(2)).unwrap(), ("47".into(), -1, -1));
        for (p, f, t) in [
            ("tcp", None, None),
            ("tcp", Some(10), Some(5)),
            ("udp", Some(0), Some(65536)),
            ("icmp", Some(256), None),
            ("gre", None, None),
            ("", None, None),
            ("300", None, None),
        ] {
            assert!(n(p, f, t).is_err(), "{p} {f:?} {t:?}");
        }
    }

    /// IPv6 peers: `Ipv6Ranges` stored in canonical form (so `0::/0` duplicates `::/0`),
    /// EC2's errors for a bad block, shown apart from IPv4 ones, `icmpv6` as a protocol
    /// with type and code; a VPC with an IPv6 block gives new groups `::/0` egress; the
    /// firewall model reads them back as IPv6 peers.
    #[tokio::test]
    async fn ipv6_rules() {
        let (_dir, c) = crate::cloud::test_cloud();
        let vpc = crate::db::network::Vpc {
            id: "vpc-0000000000000000a".into(),
            owner: String::new(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            bridge: "strato0".into(),
            state: "available".into(),
            tags: vec![],
            created: 1,
        };
        c.db.insert_vpc(&vpc).unwrap();
        c.db.insert_vpc_ipv6_block(&vpc.id, "vpc-cidr-assoc-1", "Amazon", |_| {
            Ok("2001:db8:0:100::/56".into())
        })
        .unwrap();
        let web = c
            .create_security_group(A, "web6", "web servers", "", vec![])
            .unwrap();
        let v6 = |proto: &str, from, to, cidr: &str| Permission {
            protocol: proto.into(),
            from_port: from,
            to_port: to,
            cidrs: vec![],
            cidrs6: vec![cidr.into()],
            groups: vec![],
        };
        let ssh = v6("tcp", Some(22), Some(22), "::/0");
        c.authorize(A, &web.id, "", false, std::slice::from_ref(&ssh))
            .await
            .unwrap();
        let again = c
            .authorize(
                A,
                &web.id,
                "",
                false,
                &[v6("tcp", Some(22), Some(22), "0::/0")],
            )
            .await
            .unwrap_err();
        assert_eq!(again.code, "InvalidPermission.Duplicate");
        for bad in [
            "2001:db8::1/64",
            "::/129",
            "10.0.0.0/8",
            "nonsense",
            "::/0x",
        ] {
            let e = c
                .authorize(A, &web.id, "", false, &[v6("tcp", Some(22), Some(22), bad)])
                .await
                .unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
        }
        c.authorize(
            A,
            &web.id,
            "",
            false,
            &[v6("58", Some(128), Some(0), "2001:db8::/32")],
        )
        .await
        .unwrap();
        let views = c.describe_security_groups(A, &[], &[], &[]).unwrap();
        let w = views.iter().find(|v| v.group.id == web.id).unwrap();
        assert_eq!(w.ingress.len(), 2, "{:?}", w.ingress);
        assert_eq!(w.ingress[0].cidrs6, ["::/0"]);
        assert!(w.ingress[0].cidrs.is_empty());
        assert_eq!(w.ingress[1].protocol, "icmpv6");
        assert_eq!(
            (w.ingress[1].from_port, w.ingress[1].to_port),
            (Some(128), Some(0))
        );
        assert_eq!(w.ingress[1].cidrs6, ["2001:db8::/32"]);
        // The VPC has an IPv6 block: all IPv6 egress beside all IPv4 egress.
        assert_eq!(w.egress.len(), 1);
        assert_eq!(w.egress[0].cidrs, ["0.0.0.0/0"]);
        assert_eq!(w.egress[0].cidrs6, ["::/0"]);
        let d = views.iter().find(|v| v.group.name == "default").unwrap();
        assert_eq!(d.egress[0].cidrs6, ["::/0"]);

        let rules = c.db.security_group_rules(&web.id).unwrap();
        let fw: Vec<_> = rules
            .iter()
            .filter(|r| !r.egress)
            .filter_map(super::super::firewall::fw_rule)
            .collect();
        assert_eq!(
            fw,
            [
                strato_net::firewall::Rule {
                    proto: strato_net::firewall::Proto::Tcp(22, 22),
                    peer: strato_net::firewall::Peer::Cidr6(std::net::Ipv6Addr::UNSPECIFIED, 0),
                },
                strato_net::firewall::Rule {
                    proto: strato_net::firewall::Proto::Icmpv6(Some(128), Some(0)),
                    peer: strato_net::firewall::Peer::Cidr6("2001:db8::".parse().unwrap(), 32),
                },
            ]
        );
        c.revoke(A, &web.id, "", false, &[ssh]).await.unwrap();
    }

    #[tokio::test]
    async fn groups_rules_limits_and_accounts() {
        let (_dir, c) = crate::cloud::test_cloud();
        // The default VPC's row alone: unit tests make no bridges.
        let vpc = crate::db::network::Vpc {
            id: "vpc-0000000000000000a".into(),
            owner: String::new(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            bridge: "strato0".into(),
            state: "available".into(),
            tags: vec![],
            created: 1,
        };
        c.db.insert_vpc(&vpc).unwrap();
        let web = c
            .create_security_group(A, "web", "web servers", "", vec![])
            .unwrap();
        assert_eq!(web.vpc_id, vpc.id);
        let dup = c
            .create_security_group(A, "web", "again", "", vec![])
            .unwrap_err();
        assert_eq!(dup.code, "InvalidGroup.Duplicate");
        // Names are per account.
        c.create_security_group(B, "web", "theirs", "", vec![])
            .unwrap();
        assert_eq!(
            c.owned_group(B, &web.id).unwrap_err().code,
            "InvalidGroup.NotFound"
        );

        let ssh = perm("tcp", Some(22), Some(22), "10.0.0.0/8");
        c.authorize(A, &web.id, "", false, std::slice::from_ref(&ssh))
            .await
            .unwrap();
        let again = c
            .authorize(A, &web.id, "", false, std::slice::from_ref(&ssh))
            .await
            .unwrap_err();
        assert_eq!(again.code, "InvalidPermission.Duplicate");
        let bad_cidr = perm("tcp", Some(22), Some(22), "10.0.0.1/8");
        assert_eq!(
            c.authorize(A, &web.id, "", false, &[bad_cidr])
                .await
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        let many: Vec<Permission> = (1..=MAX_RULES as i32)
            .map(|p| perm("udp", Some(p), Some(p), "0.0.0.0/0"))
            .collect();
        assert_eq!(
            c.authorize(A, &web.id, "", false, &many)
                .await
                .unwrap_err()
                .code,
            "RulesPerSecurityGroupLimitExceeded"
        );

        let views = c.describe_security_groups(A, &[], &[], &[]).unwrap();
        let mut names: Vec<&str> = views.iter().map(|v| v.group.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["default", "web"]);
        let w = views.iter().find(|v| v.group.id == web.id).unwrap();
        assert_eq!(
            w.ingress,
            vec![Permission {
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                cidrs: vec!["10.0.0.0/8".into()],
                cidrs6: vec![],
                groups: vec![],
            }]
        );
        assert_eq!(w.egress[0].protocol, "-1");
        assert_eq!(w.egress[0].cidrs, ["0.0.0.0/0"]);
        let d = views.iter().find(|v| v.group.name == "default").unwrap();
        assert_eq!(d.ingress[0].groups, [d.group.id.as_str()]);

        c.revoke(A, "", "web", false, std::slice::from_ref(&ssh))
            .await
            .unwrap();
        assert_eq!(
            c.revoke(A, &web.id, "", false, &[ssh])
                .await
                .unwrap_err()
                .code,
            "InvalidPermission.NotFound"
        );

        // Referenced by another group's rule: in use.
        let app = c
            .create_security_group(A, "app", "app", "", vec![])
            .unwrap();
        let from_web = Permission {
            protocol: "tcp".into(),
            from_port: Some(8080),
            to_port: Some(8080),
            cidrs: vec![],
            cidrs6: vec![],
            groups: vec![web.id.clone()],
        };
        c.authorize(A, &app.id, "", false, &[from_web])
            .await
            .unwrap();
        assert_eq!(
            c.delete_security_group(A, &web.id, "").unwrap_err().code,
            "DependencyViolation"
        );
        assert_eq!(
            c.delete_security_group(A, "", "default").unwrap_err().code,
            "CannotDelete"
        );
        c.delete_security_group(A, &app.id, "").unwrap();
        c.delete_security_group(A, &web.id, "").unwrap();

        // Five groups at most per interface.
        let six: Vec<String> = (0..6)
            .map(|i| {
                c.create_security_group(A, &format!("g{i}"), "g", "", vec![])
                    .unwrap()
                    .id
            })
            .collect();
        assert_eq!(
            c.resolve_groups(A, &vpc.id, &six).unwrap_err().code,
            "SecurityGroupsPerInterfaceLimitExceeded"
        );
        assert_eq!(c.resolve_groups(A, &vpc.id, &six[..5]).unwrap().len(), 5);
        assert_eq!(
            c.resolve_groups(A, &vpc.id, &[]).unwrap()[0].name,
            "default"
        );
    }

    #[test]
    fn older_interfaces_get_default_groups_and_render() {
        let (_dir, c) = crate::cloud::test_cloud();
        c.db.insert_subnet(&crate::db::network::Subnet {
            id: "subnet-0000000000000000a".into(),
            vpc_id: "vpc-0000000000000000a".into(),
            az: "home-1a".into(),
            cidr: "172.31.0.0/20".into(),
            bridge: "strato0".into(),
            is_default: true,
        })
        .unwrap();
        for (id, ip, owner) in [
            ("eni-0000000000000000a", "172.31.0.4", A),
            ("eni-0000000000000000b", "172.31.0.5", B),
        ] {
            c.db.insert_eni(&crate::db::network::Eni {
                id: id.into(),
                owner: owner.into(),
                subnet_id: "subnet-0000000000000000a".into(),
                instance_id: None,
                device_index: 0,
                private_ip: ip.into(),
                mac: "02:00:00:00:00:01".into(),
                tap: format!("tap{}", &id[4..16]),
                description: String::new(),
                attachment_id: None,
                attach_time: None,
                delete_on_termination: false,
                source_dest_check: true,
                tags: vec![],
                created: 0,
            })
            .unwrap();
        }
        assert_eq!(c.assign_default_groups().unwrap(), 2);
        assert_eq!(c.assign_default_groups().unwrap(), 0);
        let rs = c.ruleset().unwrap();
        assert_eq!(rs.enis.len(), 2);
        // Each account's default group: its members are only its own interface.
        assert_eq!(rs.groups.len(), 2);
        for g in &rs.groups {
            assert_eq!(g.members.len(), 1, "{g:?}");
        }
        let a = &rs.enis[0];
        assert_eq!(a.egress.len(), 1);
        assert!(matches!(
            a.ingress[0].peer,
            strato_net::firewall::Peer::Group(_)
        ));
        let script = strato_net::firewall::render(&rs).unwrap();
        assert!(script.contains("\"strato0\" . 172.31.0.4 : jump in_eni_0000000000000000a"));
    }

    #[test]
    fn a_vpc_goes_with_its_default_groups_only() {
        let (_dir, c) = crate::cloud::test_cloud();
        let vpc = crate::db::network::Vpc {
            id: "vpc-0000000000000000b".into(),
            owner: A.into(),
            cidr: "10.9.0.0/16".into(),
            is_default: false,
            bridge: "svpc00000000000".into(),
            state: "available".into(),
            tags: vec![],
            created: 1,
        };
        c.db.insert_vpc(&vpc).unwrap();
        let d = c.default_group(A, &vpc.id).unwrap();
        let g = c
            .create_security_group(A, "app", "app", &vpc.id, vec![])
            .unwrap();
        assert_eq!(
            c.create_security_group(B, "app", "theirs", &vpc.id, vec![])
                .unwrap_err()
                .code,
            "InvalidVpcID.NotFound"
        );
        assert!(!c.db.delete_vpc_if_empty(&vpc.id).unwrap(), "app is in it");
        c.delete_security_group(A, &g.id, "").unwrap();
        assert!(c.db.delete_vpc_if_empty(&vpc.id).unwrap());
        assert_eq!(c.db.security_group(&d.id).unwrap(), None);
        assert!(c.db.security_group_rules(&d.id).unwrap().is_empty());
    }
}

#[cfg(test)]
mod refusals {
    use super::*;
    use crate::db::network::Vpc;

    const ME: &str = "111111111111";

    fn rules(cloud: &Cloud, group: &str) -> usize {
        cloud.db.security_group_rules(group).unwrap().len()
    }

    /// A rule change the kernel refuses is not stored: authorize and revoke leave the
    /// database as the kernel has it.
    #[tokio::test]
    async fn changes_the_kernel_refuses_are_not_stored() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        cloud
            .db
            .insert_vpc(&Vpc {
                id: "vpc-0000000000000000a".into(),
                owner: String::new(),
                cidr: "172.31.0.0/16".into(),
                is_default: true,
                bridge: "strato0".into(),
                state: "available".into(),
                tags: vec![],
                created: 0,
            })
            .unwrap();
        let g = cloud
            .create_security_group(ME, "web", "web servers", "", vec![])
            .unwrap();
        let base = rules(&cloud, &g.id);
        let ssh = || Permission {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            cidrs: vec!["10.0.0.0/8".into()],
            cidrs6: vec![],
            groups: vec![],
        };
        cloud.firewall.refuse_applies(true);
        let e = cloud
            .authorize(ME, &g.id, "", false, &[ssh()])
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InternalError, "{e}");
        assert_eq!(rules(&cloud, &g.id), base, "a refused rule was stored");
        // Accepted, it is stored; a refused revoke leaves it there.
        cloud.firewall.refuse_applies(false);
        cloud
            .authorize(ME, &g.id, "", false, &[ssh()])
            .await
            .unwrap();
        assert_eq!(rules(&cloud, &g.id), base + 1);
        cloud.firewall.refuse_applies(true);
        assert!(cloud.revoke(ME, &g.id, "", false, &[ssh()]).await.is_err());
        assert_eq!(
            rules(&cloud, &g.id),
            base + 1,
            "a refused revoke was stored"
        );
        cloud.firewall.refuse_applies(false);
        cloud.revoke(ME, &g.id, "", false, &[ssh()]).await.unwrap();
        assert_eq!(rules(&cloud, &g.id), base);
    }
}
