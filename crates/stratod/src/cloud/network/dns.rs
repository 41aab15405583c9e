//! The private DNS names EC2 gives addresses, one rule for every surface that shows them
//! (gRPC, the Query API, the metadata service, DHCP): `ip-10-0-0-5.ec2.internal` in
//! us-east-1, `ip-10-0-0-5.<region>.compute.internal` in every other region.

/// The domain of private names in `region`.
pub fn domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_string()
    } else {
        format!("{region}.compute.internal")
    }
}

/// The host label of an IPv4 address (`ip-10-0-0-5`).
pub fn host_label(ip: &str) -> String {
    format!("ip-{}", ip.replace('.', "-"))
}

/// The name of `ip` in `domain` (empty for no address, as EC2 shows a terminated
/// instance's).
pub fn name_in(ip: &str, domain: &str) -> String {
    if ip.is_empty() {
        String::new()
    } else {
        format!("{}.{domain}", host_label(ip))
    }
}

/// The private DNS name of `ip` in `region`.
pub fn private_dns_name(ip: &str, region: &str) -> String {
    name_in(ip, &domain(region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_ec2s_rule_per_region() {
        assert_eq!(
            private_dns_name("10.0.0.5", "us-east-1"),
            "ip-10-0-0-5.ec2.internal"
        );
        assert_eq!(
            private_dns_name("172.31.0.4", "home-1"),
            "ip-172-31-0-4.home-1.compute.internal"
        );
        assert_eq!(private_dns_name("", "home-1"), "");
        assert_eq!(domain("eu-west-2"), "eu-west-2.compute.internal");
    }
}
