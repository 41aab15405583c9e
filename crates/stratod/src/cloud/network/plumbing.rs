//! Instance networking: the default VPC (172.31.0.0/16, on the config's bridge, with a /20
//! subnet per availability zone) made on first start, every VPC's bridge and every
//! subnet's gateway address ensured on each start (VPCs and subnets themselves are
//! `super::vpcs`); one ENI per instance with a stable MAC, a private IPv4 that never
//! changes across stop and start, and a persistent tap on its subnet's VPC bridge.

use std::net::Ipv4Addr;

use crate::cloud::{Cloud, StartError};
use crate::db::network::{Eni, EniInsert, Subnet, Vpc};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// The default VPC's range.
pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, n) = cidr.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let n: u8 = n.parse().ok()?;
    (n <= 32).then_some((addr, n))
}

/// The netmask of a prefix length.
pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0))
}

/// A subnet's gateway: the first address after the network address (EC2's VPC router).
pub fn gateway(subnet: &Subnet) -> Option<(Ipv4Addr, u8)> {
    let (net, prefix) = parse_cidr(&subnet.cidr)?;
    Some((Ipv4Addr::from(u32::from(net) + 1), prefix))
}

/// The lowest free instance address: EC2 reserves the first four addresses and the last.
pub fn pick_ip(cidr: &str, used: &[String]) -> Option<Ipv4Addr> {
    let (net, prefix) = parse_cidr(cidr)?;
    let base = u32::from(net) & u32::from(netmask(prefix));
    let size = 1u64 << (32 - prefix as u32);
    (4..size.saturating_sub(1))
        .map(|off| Ipv4Addr::from(base + off as u32))
        .find(|ip| !used.iter().any(|u| u == &ip.to_string()))
}

impl Cloud {
    /// Creates the default VPC and its subnets on first start; on every start, creates
    /// each VPC's bridge and puts every subnet's gateway address on its bridge (a host
    /// reboot loses them all).
    pub async fn ensure_default_network(&self) -> Result<(), StartError> {
        if !self.db.vpcs()?.iter().any(|v| v.is_default) {
            let vpc = Vpc {
                id: ids::new_id(Kind::Vpc),
                owner: String::new(),
                cidr: DEFAULT_VPC_CIDR.to_string(),
                is_default: true,
                bridge: self.cfg.bridge.clone(),
                state: "available".into(),
                tags: Vec::new(),
                created: crate::db::now_s(),
            };
            self.db.insert_vpc(&vpc)?;
            for (k, az) in self.cfg.availability_zones.iter().enumerate() {
                self.db.insert_subnet(&Subnet {
                    id: ids::new_id(Kind::Subnet),
                    vpc_id: vpc.id.clone(),
                    az: az.clone(),
                    cidr: format!("172.31.{}.0/20", k * 16),
                    bridge: vpc.bridge.clone(),
                    is_default: true,
                })?;
            }
        }
        for v in self.db.vpcs()? {
            let bridge = v.bridge.clone();
            blocking(move || strato_net::link::ensure_bridge_only(&bridge))
                .await
                .map_err(StartError::Net)?;
        }
        for s in self.db.subnets()? {
            let Some((gw, prefix)) = gateway(&s) else {
                continue;
            };
            let bridge = s.bridge.clone();
            blocking(move || strato_net::link::ensure_bridge(&bridge, gw, prefix))
                .await
                .map_err(StartError::Net)?;
        }
        Ok(())
    }

    /// The subnet a launch goes to: the named one (in a VPC the caller sees), else the
    /// default subnet of the AZ asked for, else of the first AZ.
    pub fn launch_subnet(&self, account: &str, subnet_id: &str, az: &str) -> ApiResult<Subnet> {
        let subnets = self.db.subnets()?;
        if !subnet_id.is_empty() {
            ids::check(Kind::Subnet, subnet_id)?;
            let s = subnets
                .into_iter()
                .find(|s| s.id == subnet_id)
                .ok_or_else(|| Kind::Subnet.not_found(subnet_id))?;
            if !self.subnet_visible(account, &s)? {
                return Err(Kind::Subnet.not_found(subnet_id));
            }
            if !az.is_empty() && s.az != az {
                return Err(ApiError::invalid(format!(
                    "Subnet {subnet_id} is in {}, not in {az}.",
                    s.az
                )));
            }
            return Ok(s);
        }
        let az = if az.is_empty() {
            self.cfg.availability_zones[0].as_str()
        } else {
            az
        };
        subnets
            .into_iter()
            .find(|s| s.is_default && s.az == az)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!(
                        "Invalid availability zone: [{}]",
                        az.chars().take(64).collect::<String>()
                    ),
                )
            })
    }

    /// Records the primary ENI of a new instance with the lowest free address of the subnet,
    /// or with `claimed`, the address the region gave this host for it.
    pub fn allocate_eni(
        &self,
        owner: &str,
        subnet: &Subnet,
        instance_id: &str,
        claimed: Option<Ipv4Addr>,
    ) -> ApiResult<Eni> {
        // A concurrent launch may take the same address first; the unique index refuses the
        // second insert and the loop picks again.
        for _ in 0..64 {
            let used = self.db.used_ips(&subnet.id)?;
            let ip = claimed
                .or_else(|| pick_ip(&subnet.cidr, &used))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InsufficientFreeAddressesInSubnet,
                        format!("The subnet {} has no free addresses.", subnet.id),
                    )
                })?;
            let id = ids::new_id(Kind::NetworkInterface);
            let mac = strato_net::MacAddr::random();
            let eni = Eni {
                tap: format!("tap{}", &id[4..16]),
                id,
                owner: owner.to_string(),
                subnet_id: subnet.id.clone(),
                instance_id: Some(instance_id.to_string()),
                device_index: 0,
                private_ip: ip.to_string(),
                mac: mac.to_string(),
                description: String::new(),
                attachment_id: Some(ids::new_id(Kind::NetworkInterfaceAttachment)),
                attach_time: Some(crate::db::now_s()),
                delete_on_termination: true,
                source_dest_check: true,
                tags: Vec::new(),
                created: crate::db::now_s(),
            };
            match self.db.insert_eni(&eni)? {
                EniInsert::Inserted => return Ok(eni),
                EniInsert::AddressTaken if claimed.is_some() => {
                    return Err(ApiError::internal(format!(
                        "The address {ip} the region gave this host is taken here."
                    )))
                }
                EniInsert::AddressTaken => {}
                EniInsert::SubnetGone => return Err(Kind::Subnet.not_found(&subnet.id)),
            }
        }
        Err(ApiError::internal("Could not allocate a private address."))
    }

    /// Creates (or re-creates after a host reboot) the tap of an ENI on its bridge.
    pub async fn plug(&self, eni: &Eni) -> ApiResult<()> {
        let subnet = self
            .db
            .subnet(&eni.subnet_id)?
            .ok_or_else(|| ApiError::internal(format!("subnet {} is gone", eni.subnet_id)))?;
        let tap = eni.tap.clone();
        blocking(move || strato_net::link::create_tap(&tap, &subnet.bridge, None))
            .await
            .map_err(|e| ApiError::internal(format!("Cannot create tap {}: {e}", eni.tap)))
    }

    /// Removes an ENI's tap (if it has one).
    pub async fn unplug(&self, eni: &Eni) {
        let tap = eni.tap.clone();
        if let Err(e) = blocking(move || strato_net::link::delete_link(&tap)).await {
            tracing::warn!(tap = %eni.tap, error = %e, "cannot delete tap");
        }
    }

    /// Removes an ENI's tap and its record.
    pub async fn release_eni(&self, eni: &Eni) -> ApiResult<()> {
        let tap = eni.tap.clone();
        if let Err(e) = blocking(move || strato_net::link::delete_link(&tap)).await {
            tracing::warn!(tap = %eni.tap, error = %e, "cannot delete tap");
        }
        self.db.delete_eni(&eni.id)?;
        // Its address may go to another interface next: its rules must go first.
        self.apply_firewall().await
    }
}

/// Runs a blocking host-networking call off the async workers; the error is its sentence.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, strato_net::NetError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("host networking task failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_reserved_ones() {
        assert_eq!(
            pick_ip("172.31.0.0/20", &[]),
            Some("172.31.0.4".parse().unwrap())
        );
        let used = vec!["172.31.0.4".to_string(), "172.31.0.5".to_string()];
        assert_eq!(
            pick_ip("172.31.0.0/20", &used),
            Some("172.31.0.6".parse().unwrap())
        );
        // A /29 has 8 addresses: .4, .5 and .6 are usable, .7 is the broadcast address.
        let used: Vec<String> = (4..7).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(pick_ip("10.0.0.0/29", &used), None);
        assert_eq!(netmask(20), "255.255.240.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }
}
