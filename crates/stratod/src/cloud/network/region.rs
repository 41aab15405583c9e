//! VPCs, subnets and security groups as region-scoped resources (`cluster::mirror`): one
//! record of each in etcd, mirrored into every host's database, and what the mirror's
//! imports must do on the host besides writing rows: a VPC that arrives gets its bridge,
//! VXLAN device and DHCP server, a subnet its gateway address, and a group whose rules
//! changed makes the host apply its firewall again for its own instances
//! ([`Cloud::mirrored_network`], run after every mirror pass).
//!
//! The default VPC is the region's too once the host has settled it (`region_default`):
//! one ID everywhere, on each host's own configured bridge; a host that keeps its own (it
//! was in use when the host joined) publishes neither it, its subnets nor its groups. A
//! VPC's VNI is claimed in etcd with the VPC (`cluster::network`), so no two
//! VPCs of the region share one; deleting a subnet or a group is refused while another
//! host's interfaces use it (that host's `uses/` keys).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::overlay::derived_vni;
use super::plumbing::{blocking, gateway, parse_cidr};
use super::security_groups::Permission;
use super::vpcs::{overlaps, SubnetView};
use crate::cloud::Cloud;
use crate::cluster::mirror::SharedKind;
use crate::cluster::shared::Shared;
use crate::db::instances::Tag;
use crate::db::network::{Subnet, SubnetInsert, Vpc};
use crate::db::security_groups::{GroupDelete, SecurityGroup, SgRule};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// What the mirror's imports left for the host to do ([`Cloud::mirrored_network`]).
#[derive(Debug, Default)]
pub struct MirrorNet {
    /// The firewall and the VPCs' devices must follow the database.
    stale: AtomicBool,
    /// VPCs removed from the database whose devices are still up.
    gone_vpcs: Mutex<Vec<Vpc>>,
    /// Subnets removed whose gateway addresses are still on their bridges.
    gone_subnets: Mutex<Vec<Subnet>>,
}

impl MirrorNet {
    pub(super) fn touch(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }
}

fn body<T: Serialize>(v: &T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(format!("cannot encode a record: {e}")))
}

fn from_body<T: serde::de::DeserializeOwned>(s: &Shared) -> ApiResult<T> {
    serde_json::from_value(s.body.clone())
        .map_err(|e| ApiError::internal(format!("the region's record does not decode: {e}")))
}

fn same_id(id: &str, got: &str) -> ApiResult<()> {
    if id != got {
        return Err(ApiError::internal(format!(
            "the region's record of {id} names {got}"
        )));
    }
    Ok(())
}

fn in_use(id: &str, hosts: &[String]) -> ApiError {
    ApiError::new(
        ErrorCode::DependencyViolation,
        format!(
            "resource {id} has a dependent object: network interfaces on host {} use it",
            hosts.join(", ")
        ),
    )
}

/// A VPC as the region holds it: the row and its VNI.
#[derive(Debug, Serialize, Deserialize)]
struct VpcRecord {
    vpc: Vpc,
    vni: u32,
}

/// A security group as the region holds it: the row and its rules, in order.
#[derive(Debug, Serialize, Deserialize)]
struct GroupRecord {
    group: SecurityGroup,
    rules: Vec<SgRule>,
}

/// VPCs (other than each host's default one).
pub struct Vpcs;

impl SharedKind for Vpcs {
    fn name(&self) -> &'static str {
        "vpc"
    }
    fn id_prefix(&self) -> &'static str {
        "vpc-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.region_vpc_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(v) = cloud.db.vpc(id)? else {
            return Ok(None);
        };
        if !cloud.db.vpc_is_regional(id)? {
            return Ok(None);
        }
        let vni = cloud.overlay_vni(&v);
        Ok(Some(Shared {
            account: v.owner.clone(),
            name: String::new(),
            body: body(&VpcRecord { vpc: v, vni })?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let r: VpcRecord = from_body(s)?;
        same_id(id, &r.vpc.id)?;
        // The region's default VPC is written over the host's row of it (its bridge stays
        // the host's), never beside another default VPC.
        if r.vpc.is_default && !cloud.db.vpc_is_regional(id)? {
            return Err(ApiError::internal(format!(
                "the region's default VPC {id} is not this host's"
            )));
        }
        cloud.db.set_vpc_vni(id, r.vni)?;
        cloud.db.upsert_vpc(&r.vpc)?;
        cloud.mirror_net.touch();
        Ok(())
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        let Some(v) = cloud.db.vpc(id)? else {
            return Ok(());
        };
        if !cloud.db.delete_vpc_if_empty(id)? {
            return Err(ApiError::new(
                ErrorCode::DependencyViolation,
                format!("VPC {id} still has subnets or groups on this host."),
            ));
        }
        cloud.db.drop_vpc_vni(id)?;
        if let Ok(mut g) = cloud.mirror_net.gone_vpcs.lock() {
            g.push(v);
        }
        cloud.mirror_net.touch();
        Ok(())
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::internal(format!("VPCs have no names ({name})"))
    }
}

/// Subnets of the VPCs the region holds.
pub struct Subnets;

impl SharedKind for Subnets {
    fn name(&self) -> &'static str {
        "subnet"
    }
    fn id_prefix(&self) -> &'static str {
        "subnet-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.region_subnet_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(s) = cloud.db.subnet(id)? else {
            return Ok(None);
        };
        let Some(v) = cloud.db.vpc(&s.vpc_id)? else {
            return Ok(None);
        };
        if !cloud.db.vpc_is_regional(&v.id)? {
            return Ok(None);
        }
        Ok(Some(Shared {
            account: v.owner,
            name: String::new(),
            body: body(&s)?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let mut sub: Subnet = from_body(s)?;
        same_id(id, &sub.id)?;
        // On this host's bridge of the VPC (the default VPC's is each host's own).
        if let Some(v) = cloud.db.vpc(&sub.vpc_id)? {
            sub.bridge = v.bridge;
        }
        let Some(block) = parse_cidr(&sub.cidr).map(|(a, p)| (u32::from(a), p)) else {
            return Err(ApiError::internal(format!("bad subnet range {}", sub.cidr)));
        };
        let got = cloud.db.upsert_subnet_unless(&sub, |o| {
            parse_cidr(&o.cidr).is_some_and(|(a, p)| overlaps((u32::from(a), p), block))
        })?;
        match got {
            SubnetInsert::Done => {
                cloud.mirror_net.touch();
                Ok(())
            }
            SubnetInsert::NoVpc => Err(Kind::Vpc.not_found(&sub.vpc_id)),
            SubnetInsert::Conflict(o) => Err(ApiError::new(
                ErrorCode::InvalidSubnetConflict,
                format!(
                    "The region's subnet {id} ({}) overlaps {} ({}) on this host.",
                    sub.cidr, o.id, o.cidr
                ),
            )),
        }
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        let Some(s) = cloud.db.subnet(id)? else {
            return Ok(());
        };
        if !cloud.db.delete_subnet_if_unused(id)? {
            return Err(ApiError::new(
                ErrorCode::DependencyViolation,
                format!("Subnet {id} still has network interfaces on this host."),
            ));
        }
        if let Ok(mut g) = cloud.mirror_net.gone_subnets.lock() {
            g.push(s);
        }
        cloud.mirror_net.touch();
        Ok(())
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::internal(format!("subnets have no names ({name})"))
    }
}

/// Security groups of the VPCs the region holds, with their rules.
pub struct SecurityGroups;

impl SecurityGroups {
    /// The region's name of a group: unique per account and VPC.
    fn region_name(g: &SecurityGroup) -> String {
        format!("{}/{}", g.vpc_id, g.name)
    }
}

impl SharedKind for SecurityGroups {
    fn name(&self) -> &'static str {
        "security-group"
    }
    fn id_prefix(&self) -> &'static str {
        "sg-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        let regional: HashSet<String> = cloud.db.region_vpc_ids()?.into_iter().collect();
        let local: HashSet<String> = cloud
            .db
            .vpcs()?
            .into_iter()
            .filter(|v| !regional.contains(&v.id))
            .map(|v| v.id)
            .collect();
        Ok(cloud
            .db
            .security_groups(None)?
            .into_iter()
            .filter(|g| !local.contains(&g.vpc_id))
            .map(|g| g.id)
            .collect())
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(g) = cloud.db.security_group(id)? else {
            return Ok(None);
        };
        if cloud.db.vpc(&g.vpc_id)?.is_some() && !cloud.db.vpc_is_regional(&g.vpc_id)? {
            return Ok(None);
        }
        let rules = cloud.db.security_group_rules(id)?;
        Ok(Some(Shared {
            account: g.owner.clone(),
            name: Self::region_name(&g),
            body: body(&GroupRecord { group: g, rules })?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let r: GroupRecord = from_body(s)?;
        same_id(id, &r.group.id)?;
        if cloud.db.upsert_security_group(&r.group, &r.rules)? {
            cloud.mirror_net.touch();
        }
        Ok(())
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        match cloud.db.delete_security_group_if_unused(id)? {
            GroupDelete::Deleted => {
                cloud.mirror_net.touch();
                Ok(())
            }
            GroupDelete::InUse => Err(ApiError::new(
                ErrorCode::DependencyViolation,
                format!("Security group {id} is still used on this host."),
            )),
        }
    }
    fn duplicate(&self, name: &str) -> ApiError {
        let (vpc, name) = name.split_once('/').unwrap_or(("", name));
        ApiError::new(
            ErrorCode::InvalidGroupDuplicate,
            format!("The security group '{name}' already exists for VPC '{vpc}'"),
        )
    }
}

impl Cloud {
    /// After a mirror pass: applies the firewall again if a group's rules (or the VPCs and
    /// subnets) changed, gives every VPC its bridge, VXLAN device and DHCP server and every
    /// subnet its gateway, and takes down what the region deleted. What fails is tried
    /// again after the next pass.
    pub async fn mirrored_network(&self) {
        if !self.mirror_net.stale.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.follow_network().await {
            tracing::warn!(error = %e.message, "cannot bring this host's network in step with the region");
            self.mirror_net.touch();
        }
    }

    async fn follow_network(&self) -> ApiResult<()> {
        // Filtered before any new bridge is up, as CreateVpc does.
        self.apply_firewall().await?;
        let subnets = std::mem::take(&mut *self.mirror_net.gone_subnets.lock().map_err(poison)?);
        for s in subnets {
            self.drop_gateway(&s).await;
        }
        let vpcs = std::mem::take(&mut *self.mirror_net.gone_vpcs.lock().map_err(poison)?);
        for v in vpcs {
            self.drop_vpc_devices(&v).await;
        }
        let me = self.me.upgrade();
        // The default VPC's bridge and DHCP are the host's from its start; its VXLAN device
        // moves when it becomes the region's.
        for v in self.db.vpcs()?.into_iter().filter(|v| v.is_default) {
            self.overlay_ensure(&v).await?;
        }
        for v in self.db.vpcs()?.into_iter().filter(|v| !v.is_default) {
            let bridge = v.bridge.clone();
            blocking(move || strato_net::link::ensure_bridge_only(&bridge))
                .await
                .map_err(|e| {
                    ApiError::internal(format!("Cannot create bridge {}: {e}", v.bridge))
                })?;
            self.overlay_ensure(&v).await?;
            if let Some(me) = &me {
                me.dhcp_serve(&v.bridge);
            }
        }
        for s in self.db.subnets()? {
            let Some((gw, prefix)) = gateway(&s) else {
                continue;
            };
            let bridge = s.bridge.clone();
            blocking(move || strato_net::link::ensure_bridge(&bridge, gw, prefix))
                .await
                .map_err(|e| ApiError::internal(format!("Cannot add {gw} to {}: {e}", s.bridge)))?;
        }
        self.network_changed.notify_one();
        Ok(())
    }

    /// Takes a deleted subnet's gateway address off its bridge.
    async fn drop_gateway(&self, s: &Subnet) {
        if let Some((gw, prefix)) = gateway(s) {
            let bridge = s.bridge.clone();
            if let Err(e) =
                blocking(move || strato_net::link::delete_address(&bridge, gw, prefix)).await
            {
                tracing::warn!(bridge = %s.bridge, %gw, error = %e, "cannot remove gateway");
            }
        }
    }

    /// Takes down a deleted VPC's DHCP server, VXLAN device and bridge.
    async fn drop_vpc_devices(&self, v: &Vpc) {
        self.dhcp_stop(&v.bridge);
        self.overlay_remove(v).await;
        let bridge = v.bridge.clone();
        if let Err(e) = blocking(move || strato_net::link::delete_link(&bridge)).await {
            tracing::warn!(bridge = %v.bridge, error = %e, "cannot delete VPC bridge");
        }
        self.network_changed.notify_one();
    }

    /// CreateVpc for the region: its VNI is claimed in etcd first, then the VPC is made
    /// here and published with its account's default group.
    pub async fn create_vpc_regional(
        self: &Arc<Self>,
        account: &str,
        cidr: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<Vpc> {
        let Some(region) = self.cluster.clone() else {
            return self.create_vpc(account, cidr, tags).await;
        };
        let id = ids::new_id(Kind::Vpc);
        let vni = match region.claim_vni(&id, derived_vni(&id)).await {
            Ok(Some(vni)) => vni,
            Ok(None) => {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "No free VNI near this VPC's in the region: try again.",
                ))
            }
            Err(e) => return Err(region.cut_off(&e)),
        };
        self.db.set_vpc_vni(&id, vni)?;
        let made = match self.create_vpc_as(account, cidr, tags, id.clone()).await {
            Ok(v) => self.share_new(&Vpcs, &v.id).await.map(|()| v),
            Err(e) => Err(e),
        };
        let v = match made {
            Ok(v) => v,
            Err(e) => {
                // share_new took the row back; the devices go too.
                if let Some(v) = self.db.vpc(&id)? {
                    self.db.delete_vpc_if_empty(&v.id)?;
                }
                self.drop_vpc_devices(&Vpc {
                    bridge: super::vpcs::bridge_name(&id),
                    id: id.clone(),
                    owner: account.to_string(),
                    cidr: cidr.to_string(),
                    is_default: false,
                    state: String::new(),
                    tags: Vec::new(),
                    created: 0,
                })
                .await;
                self.db.drop_vpc_vni(&id)?;
                let _ = region.release_vni(&id, vni).await;
                return Err(e);
            }
        };
        // The account's default group of the VPC, the same on every host.
        let g = self.default_group(account, &v.id)?;
        if let Err(e) = self.share_new(&SecurityGroups, &g.id).await {
            tracing::warn!(group = %g.id, error = %e.message, "the default group is not published yet");
        }
        Ok(v)
    }

    /// DeleteVpc for the region: refused as on one host while it has subnets or groups
    /// (the region's, mirrored here); its record, its default groups' and its VNI go.
    pub async fn delete_vpc_regional(&self, account: &str, id: &str) -> ApiResult<()> {
        let Some(region) = self.cluster.clone() else {
            return self.delete_vpc(account, id).await;
        };
        let _held = region.mirror_lock.lock().await;
        // Refused while etcd is away: the VPC would come back from the region's record.
        let before = match region.shared_one(Vpcs.name(), id).await {
            Ok(r) => r,
            Err(e) => return Err(region.cut_off(&e)),
        };
        let groups: Vec<(String, Option<Shared>)> = self
            .db
            .security_groups(None)?
            .into_iter()
            .filter(|g| g.vpc_id == id)
            .map(|g| {
                let s = SecurityGroups.export(self, &g.id).ok().flatten();
                (g.id, s)
            })
            .collect();
        let vni = self.db.vpc_vni(id)?;
        self.delete_vpc(account, id).await?;
        self.db.drop_vpc_vni(id)?;
        let mut fail = None;
        if let Some((s, _)) = &before {
            if let Err(e) = region.withdraw(Vpcs.name(), id, s).await {
                fail = Some(e);
            }
        }
        for (gid, s) in &groups {
            if let Some(s) = s {
                if let Err(e) = region.withdraw(SecurityGroups.name(), gid, s).await {
                    fail = Some(e);
                }
            }
            self.forget_mirrored(SecurityGroups.name(), gid)?;
        }
        if let Some(vni) = vni {
            if let Err(e) = region.release_vni(id, vni).await {
                fail = Some(e);
            }
        }
        self.forget_mirrored(Vpcs.name(), id)?;
        match fail {
            None => Ok(()),
            Some(e) => Err(region.cut_off(&e)),
        }
    }

    /// CreateSubnet for the region: made here (its range checked against every subnet
    /// this host mirrors), then published.
    pub async fn create_subnet_regional(
        &self,
        account: &str,
        vpc_id: &str,
        cidr: &str,
        az: &str,
    ) -> ApiResult<SubnetView> {
        let view = self.create_subnet(account, vpc_id, cidr, az).await?;
        if self.cluster.is_some() {
            if let Err(e) = self.share_new(&Subnets, &view.subnet.id).await {
                self.drop_gateway(&view.subnet).await;
                return Err(e);
            }
        }
        Ok(view)
    }

    /// DeleteSubnet for the region: refused while another host has interfaces in it.
    pub async fn delete_subnet_regional(&self, account: &str, id: &str) -> ApiResult<()> {
        let Some(region) = self.cluster.clone() else {
            return self.delete_subnet(account, id).await;
        };
        let users = region
            .other_users(id)
            .await
            .map_err(|e| region.cut_off(&e))?;
        if !users.is_empty() {
            return Err(in_use(id, &users));
        }
        let _held = region.mirror_lock.lock().await;
        let before = Subnets.export(self, id)?;
        self.delete_subnet(account, id).await?;
        if let Some(s) = before {
            region
                .withdraw(Subnets.name(), id, &s)
                .await
                .map_err(|e| region.cut_off(&e))?;
            self.forget_mirrored(Subnets.name(), id)?;
        }
        Ok(())
    }

    /// CreateSecurityGroup for the region: its name unique per account and VPC there.
    pub async fn create_security_group_regional(
        &self,
        account: &str,
        name: &str,
        description: &str,
        vpc_id: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<SecurityGroup> {
        let g = self.create_security_group(account, name, description, vpc_id, tags)?;
        self.share_new(&SecurityGroups, &g.id).await?;
        Ok(g)
    }

    /// DeleteSecurityGroup for the region: refused while another host's interfaces have
    /// the group.
    pub async fn delete_security_group_regional(
        &self,
        account: &str,
        id: &str,
        name: &str,
    ) -> ApiResult<()> {
        let Some(region) = self.cluster.clone() else {
            return self.delete_security_group(account, id, name);
        };
        let g = self.group_by_id_or_name(account, id, name)?;
        let users = region
            .other_users(&g.id)
            .await
            .map_err(|e| region.cut_off(&e))?;
        if !users.is_empty() {
            return Err(in_use(&g.id, &users));
        }
        self.share_delete(&SecurityGroups, Some(&g.id), || {
            self.delete_security_group(account, &g.id, "")
        })
        .await
    }

    /// Authorize (ingress or egress) for the region: the rules join the region's record,
    /// and every host applies them to its own instances.
    pub async fn authorize_regional(
        &self,
        account: &str,
        group_id: &str,
        group_name: &str,
        egress: bool,
        perms: &[Permission],
    ) -> ApiResult<()> {
        if self.cluster.is_none() {
            return self
                .authorize(account, group_id, group_name, egress, perms)
                .await;
        }
        let (g, rules) = self.rule_change(account, group_id, group_name, egress, perms)?;
        self.share_change(&SecurityGroups, &g.id, || self.add_rules(&g.id, &rules))
            .await?;
        if let Err(e) = self.apply_firewall().await {
            // The kernel refused them here: they leave the region's record again.
            let _ = self
                .share_change(&SecurityGroups, &g.id, || self.remove_rules(&g.id, &rules))
                .await;
            return Err(e);
        }
        Ok(())
    }

    /// Revoke (ingress or egress) for the region.
    pub async fn revoke_regional(
        &self,
        account: &str,
        group_id: &str,
        group_name: &str,
        egress: bool,
        perms: &[Permission],
    ) -> ApiResult<()> {
        if self.cluster.is_none() {
            return self
                .revoke(account, group_id, group_name, egress, perms)
                .await;
        }
        let (g, rules) = self.rule_change(account, group_id, group_name, egress, perms)?;
        self.share_change(&SecurityGroups, &g.id, || self.remove_rules(&g.id, &rules))
            .await?;
        self.apply_firewall().await
    }
}

fn poison<T>(_: T) -> ApiError {
    ApiError::internal("a lock is poisoned")
}
