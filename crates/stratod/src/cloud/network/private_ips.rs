//! A network interface's secondary private addresses: AssignPrivateIpAddresses and
//! UnassignPrivateIpAddresses (named or picked in the interface's subnet, claimed in the
//! region before the call answers; the anti-spoofing rules follow at once).

use super::network_interfaces::{
    check_address, contended, in_use, no_addresses, pick_ips, too_many_secondary, CLAIM_TRIES,
    MAX_SECONDARY,
};
use crate::cloud::Cloud;
use crate::db::network_interfaces::AddAddresses;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::Kind;

impl Cloud {
    /// AssignPrivateIpAddresses: secondary addresses, named or picked; returns those added.
    /// The anti-spoofing rules follow the interface's addresses at once.
    pub async fn assign_private_ips(
        &self,
        account: &str,
        eni_id: &str,
        ips: &[String],
        count: i32,
    ) -> ApiResult<Vec<String>> {
        let subnet_id = self.owned_eni(account, eni_id)?.subnet_id;
        let mut avoid = Vec::new();
        for _ in 0..CLAIM_TRIES {
            avoid.extend(self.claimed_ips(&subnet_id).await?);
            let added = self.add_private_ips(account, eni_id, ips, count, &avoid)?;
            let lost = self.claim_these(account, &subnet_id, &added).await;
            if !matches!(lost, Ok(None)) {
                self.db.remove_secondary_ips(eni_id, &added)?;
            }
            match lost {
                Ok(None) => {
                    self.apply_firewall().await?;
                    return Ok(added);
                }
                Ok(Some(lost)) if ips.contains(&lost) => return Err(in_use(&lost)),
                Ok(Some(lost)) => avoid.push(lost),
                Err(e) => return Err(e),
            }
        }
        Err(contended())
    }

    /// The records of AssignPrivateIpAddresses; addresses in `avoid` are in use.
    pub(super) fn add_private_ips(
        &self,
        account: &str,
        eni_id: &str,
        ips: &[String],
        count: i32,
        avoid: &[String],
    ) -> ApiResult<Vec<String>> {
        let eni = self.owned_eni(account, eni_id)?;
        let subnet = self.eni_subnet(&eni)?;
        let count = usize::try_from(count)
            .map_err(|_| ApiError::invalid("SecondaryPrivateIpAddressCount must be positive."))?;
        match (ips.is_empty(), count) {
            (true, 0) => return Err(ApiError::missing("PrivateIpAddress")),
            (false, n) if n > 0 => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterCombination,
                    "Give SecondaryPrivateIpAddressCount or PrivateIpAddresses, not both.",
                ))
            }
            _ => {}
        }
        let mut named = Vec::new();
        for ip in ips {
            named.push(check_address(&subnet.cidr, ip)?.to_string());
        }
        for _ in 0..64 {
            let have = self.db.secondary_ips(&eni.id)?;
            if have.len() + named.len() + count > MAX_SECONDARY {
                return Err(too_many_secondary());
            }
            let mut used = self.db.used_ips(&subnet.id)?;
            used.extend(avoid.iter().cloned());
            if let Some(ip) = named.iter().find(|ip| used.contains(ip)) {
                return Err(in_use(ip));
            }
            let mut add = named.clone();
            if count > 0 {
                add = pick_ips(&subnet.cidr, &used, count)
                    .ok_or_else(|| no_addresses(&subnet.id))?
                    .into_iter()
                    .map(|a| a.to_string())
                    .collect();
            }
            match self.db.add_secondary_ips(&eni.id, &add)? {
                AddAddresses::Done => return Ok(add),
                AddAddresses::Taken(ip) if count == 0 => return Err(in_use(&ip)),
                AddAddresses::Taken(_) => {}
                AddAddresses::Gone => return Err(Kind::NetworkInterface.not_found(eni_id)),
            }
        }
        Err(ApiError::internal("Could not allocate a private address."))
    }

    /// UnassignPrivateIpAddresses: each must be a secondary address of the ENI; the
    /// anti-spoofing rules follow at once.
    pub async fn unassign_private_ips(
        &self,
        account: &str,
        eni_id: &str,
        ips: &[String],
    ) -> ApiResult<()> {
        self.remove_private_ips(account, eni_id, ips)?;
        self.apply_firewall().await
    }

    /// The records of UnassignPrivateIpAddresses.
    pub(super) fn remove_private_ips(
        &self,
        account: &str,
        eni_id: &str,
        ips: &[String],
    ) -> ApiResult<()> {
        let eni = self.owned_eni(account, eni_id)?;
        if ips.is_empty() {
            return Err(ApiError::missing("PrivateIpAddress"));
        }
        let have = self.db.secondary_ips(&eni.id)?;
        if let Some(ip) = ips.iter().find(|ip| !have.contains(ip)) {
            return Err(ApiError::invalid(format!(
                "Some of the specified addresses are not assigned to interface {}: {}.",
                eni.id,
                ip.chars().take(64).collect::<String>()
            )));
        }
        self.db.remove_secondary_ips(&eni.id, ips)?;
        // An Elastic IP on an address that goes is disassociated.
        if self.db.unmap_eni(&eni.id, Some(ips))? > 0 {
            self.nat_changed();
        }
        Ok(())
    }
}
