//! What the DHCP servers may read, from the state store (the binding of an attached ENI's
//! MAC on a bridge), and when they run: one per VPC bridge, from the daemon's start or
//! CreateVpc to DeleteVpc.

use std::sync::Arc;

use crate::cloud::network::plumbing::parse_cidr;
use crate::cloud::Cloud;
use crate::dhcp::{Binding, LeaseBook};
use crate::error::ApiResult;

impl LeaseBook for Cloud {
    fn binding(&self, bridge: &str, mac: &str) -> ApiResult<Option<Binding>> {
        let Some(lease) = self.db.dhcp_lease(bridge, mac)? else {
            return Ok(None);
        };
        // Addresses and ranges are checked when they are recorded; a row that does not
        // parse gets no answer rather than a wrong one.
        let (Ok(ip), Some((net, prefix))) = (lease.ip.parse(), parse_cidr(&lease.cidr)) else {
            tracing::error!(bridge, mac, ip = %lease.ip, cidr = %lease.cidr, "unreadable DHCP lease");
            return Ok(None);
        };
        Ok(Some(Binding {
            ip,
            net,
            prefix,
            mtu: self.overlay_guest_mtu(),
        }))
    }

    fn acked(&self, bridge: &str, ip: std::net::Ipv4Addr) {
        if let Ok(Some(eni)) = self.db.eni_on_bridge(bridge, &ip.to_string()) {
            if let Some(id) = eni.instance_id.as_deref() {
                self.timelines.mark(id, "dhcp_lease");
            }
        }
    }
}

impl Cloud {
    /// Starts a DHCP server on every VPC's bridge (at daemon start).
    pub fn start_dhcp(self: &Arc<Self>) {
        match self.db.vpcs() {
            Ok(vpcs) => {
                for v in vpcs {
                    self.dhcp_serve(&v.bridge);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list VPCs for DHCP"),
        }
    }

    /// Starts the DHCP server of `bridge` unless it runs.
    pub(super) fn dhcp_serve(self: &Arc<Self>, bridge: &str) {
        self.dhcp.serve(
            bridge,
            Arc::clone(self) as Arc<dyn LeaseBook>,
            Arc::clone(&self.metrics),
        );
        self.dhcp6.serve(
            bridge,
            Arc::clone(self) as Arc<dyn crate::dhcp6::RouterBook>,
            Arc::clone(&self.metrics),
        );
    }

    /// Stops the DHCP server of `bridge` (DeleteVpc).
    pub(super) fn dhcp_stop(&self, bridge: &str) {
        self.dhcp.stop(bridge);
        self.dhcp6.stop(bridge);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::db::instances::tests::sample;
    use crate::db::network::{Eni, Subnet};

    #[test]
    fn a_binding_is_an_attached_eni_in_a_subnet_on_the_bridge() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        for (id, cidr, bridge) in [
            ("subnet-0000000000000000a", "10.0.1.0/24", "br0"),
            ("subnet-0000000000000000b", "10.0.2.0/28", "br0"),
            ("subnet-0000000000000000c", "10.0.3.0/24", "br1"),
        ] {
            cloud
                .db
                .insert_subnet(&Subnet {
                    id: id.into(),
                    vpc_id: "vpc-0000000000000000a".into(),
                    az: "home-1a".into(),
                    cidr: cidr.into(),
                    bridge: bridge.into(),
                    is_default: false,
                })
                .unwrap();
        }
        let inst = sample("i-0000000000000000a", "111111111111");
        cloud.db.insert_instance(&inst).unwrap();
        let eni = |id: &str, subnet: &str, ip: &str, mac: &str, attached: bool| Eni {
            subnet_id: subnet.into(),
            instance_id: attached.then(|| inst.id.clone()),
            device_index: if attached { 1 } else { 0 },
            mac: mac.into(),
            attachment_id: attached.then(|| "eni-attach-0000000000000000b".to_string()),
            ..Eni::sample(id, ip)
        };
        // Attached, in the second subnet of br0; and one that is not attached.
        for e in [
            eni(
                "eni-0000000000000000b",
                "subnet-0000000000000000b",
                "10.0.2.9",
                "02:00:00:00:00:0b",
                true,
            ),
            eni(
                "eni-0000000000000000c",
                "subnet-0000000000000000a",
                "10.0.1.9",
                "02:00:00:00:00:0c",
                false,
            ),
        ] {
            cloud.db.insert_eni(&e).unwrap();
        }
        let want = Binding {
            ip: Ipv4Addr::new(10, 0, 2, 9),
            net: Ipv4Addr::new(10, 0, 2, 0),
            prefix: 28,
            mtu: crate::dhcp::MTU,
        };
        assert_eq!(
            cloud.binding("br0", "02:00:00:00:00:0b").unwrap(),
            Some(want)
        );
        // MACs compare in any case, as clients write them.
        assert_eq!(
            cloud.binding("br0", "02:00:00:00:00:0B").unwrap(),
            Some(want)
        );
        // Another bridge, a detached ENI, a stranger: nothing.
        for (bridge, mac) in [
            ("br1", "02:00:00:00:00:0b"),
            ("br0", "02:00:00:00:00:0c"),
            ("br0", "02:09:09:09:09:09"),
        ] {
            assert_eq!(cloud.binding(bridge, mac).unwrap(), None, "{bridge} {mac}");
        }
    }
}
