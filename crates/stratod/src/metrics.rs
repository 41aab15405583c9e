//! The daemon's work counters, rendered in the Prometheus text format (served by
//! `--metrics tcp:ADDR` on `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// Counters of the daemon's work.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// The counters in the Prometheus text exposition format.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    out.push_str(&format!(
                        "# HELP stratod_{0} {1}\n# TYPE stratod_{0} counter\nstratod_{0} {2}\n",
                        stringify!($name),
                        $help,
                        self.$name.load(Ordering::Relaxed)
                    ));
                )*
                out
            }
        }
    };
}

counters! {
    api_requests_total: "API calls received.",
    api_errors_total: "API calls answered with an error.",
    query_requests_total: "EC2 Query API requests received.",
    query_denied_total: "EC2 Query API calls a role's temporary credentials were not allowed to make.",
    role_credentials_issued_total: "Temporary credentials issued to instances for their roles.",
    query_errors_total: "EC2 Query API requests answered with an error (signature failures included).",
    instances_launched_total: "Instances launched.",
    vmm_spawned_total: "Monitor processes started.",
    vmm_adopted_total: "Monitor processes adopted after a restart.",
    vmm_unexpected_exits_total: "Monitors that exited without the daemon asking.",
    guest_reboots_total: "Guests that reset themselves and were booted again on a fresh monitor.",
    status_checks_total: "Status check rounds per instance.",
    copied_bytes_total: "Bytes copied for volumes, snapshots and images.",
    consistent_pauses_total: "VMs paused for a crash-consistent copy (CreateSnapshot, CreateImage with NoReboot).",
    consistent_pause_ms_total: "Milliseconds VMs spent paused for crash-consistent copies.",
    copy_resumed_total: "Image copy files resumed from a partial file rather than started over.",
    imds_requests_total: "Metadata service requests.",
    imds_tokens_issued_total: "IMDSv2 session tokens issued.",
    imds_unauthorized_total: "Metadata requests refused for a missing, invalid or expired token (401).",
    imds_refused_total: "Metadata requests from no known instance, or with the service disabled (403).",
    imds_not_found_total: "Metadata requests for paths that do not exist (404).",
    imds_bad_requests_total: "Malformed metadata requests (400).",
    firewall_applies_total: "Security group rulesets applied (nft transactions tried).",
    firewall_apply_failures_total: "Security group rulesets that could not be applied.",
    dhcp_requests_total: "DHCP packets received on VPC bridges.",
    dhcp_offers_total: "DHCP offers sent.",
    dhcp_acks_total: "DHCP acknowledgements sent.",
    dhcp_naks_total: "DHCP negative acknowledgements sent.",
    dhcp_drops_total: "DHCP packets not answered (malformed, unknown MAC, release, not for us).",
    dhcp6_requests_total: "DHCPv6 messages received on VPC bridges.",
    dhcp6_replies_total: "DHCPv6 Advertise and Reply messages sent.",
    dhcp6_drops_total: "DHCPv6 messages not answered (malformed, unknown client, not for us).",
    router_solicitations_total: "Router solicitations received on VPC bridges.",
    router_advertisements_total: "Router advertisements sent on VPC bridges.",
    nat_applies_total: "NAT table applies (nftables rules and uplink addresses).",
    nat_apply_failures_total: "NAT table applies that failed.",
    addresses_allocated_total: "Elastic IP addresses allocated.",
    public_ips_assigned_total: "Public addresses assigned to instances from the pool.",
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        inc(&m.api_requests_total);
        let text = m.render();
        assert!(text
            .contains("# TYPE stratod_api_requests_total counter\nstratod_api_requests_total 1\n"));
        assert!(text.contains("stratod_api_errors_total 0\n"));
    }
}
