//! Structured arguments of the security group commands: `--ip-permissions` (the AWS
//! shape: IpProtocol, FromPort, ToPort, IpRanges[{CidrIp}], Ipv6Ranges[{CidrIpv6}],
//! UserIdGroupPairs[{GroupId}])
//! and `--port` (`22`, `1000-2000`, `-1` for all).

use strato_proto::v1::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};

use super::fields::Fields;
use super::{each, Many, ParseError};

/// Parses `--ip-permissions`: one permission or a list, JSON or shorthand, inline or
/// file://.
pub fn ip_permissions(raw: &str) -> Result<Many<IpPermission>, ParseError> {
    each(raw, "IP permission", ip_permission)
}

fn ip_permission(mut f: Fields) -> Result<IpPermission, ParseError> {
    let ip_protocol = f.required_string("IpProtocol")?;
    let from_port = f.int32("FromPort")?;
    let to_port = f.int32("ToPort")?;
    let ip_ranges = f
        .objects("IpRanges")?
        .into_iter()
        .map(|r| {
            let mut r = Fields::new(r, "IP range")?;
            let range = IpRange {
                cidr_ip: r.required_string("CidrIp")?,
                description: r.string("Description")?.unwrap_or_default(),
            };
            r.finish()?;
            Ok(range)
        })
        .collect::<Result<_, ParseError>>()?;
    let ipv6_ranges = f
        .objects("Ipv6Ranges")?
        .into_iter()
        .map(|r| {
            let mut r = Fields::new(r, "IPv6 range")?;
            let range = Ipv6Range {
                cidr_ipv6: r.required_string("CidrIpv6")?,
                description: r.string("Description")?.unwrap_or_default(),
            };
            r.finish()?;
            Ok(range)
        })
        .collect::<Result<_, ParseError>>()?;
    let user_id_group_pairs = f
        .objects("UserIdGroupPairs")?
        .into_iter()
        .map(|p| {
            let mut p = Fields::new(p, "group pair")?;
            let pair = UserIdGroupPair {
                group_id: p.string("GroupId")?.unwrap_or_default(),
                group_name: p.string("GroupName")?.unwrap_or_default(),
                user_id: p.string("UserId")?.unwrap_or_default(),
            };
            p.string("Description")?;
            p.finish()?;
            Ok(pair)
        })
        .collect::<Result<_, ParseError>>()?;
    f.finish()?;
    Ok(IpPermission {
        ip_protocol,
        from_port,
        to_port,
        ip_ranges,
        ipv6_ranges,
        user_id_group_pairs,
    })
}

/// A port range of `--port`: `N`, `N-M`, or `-1` (all). For ICMP, `N` is a type (all its
/// codes) and `N-M` a type and a code, as in the AWS CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub i32, pub Option<i32>);

impl PortRange {
    /// (FromPort, ToPort) for `protocol`.
    pub fn bounds(self, protocol: &str) -> (i32, i32) {
        let icmp = matches!(
            protocol.to_ascii_lowercase().as_str(),
            "icmp" | "1" | "icmpv6" | "58"
        );
        match (self, icmp) {
            (PortRange(a, Some(b)), _) => (a, b),
            (PortRange(a, None), true) => (a, -1),
            (PortRange(a, None), false) => (a, a),
        }
    }
}

/// Parses `--port`.
pub fn port(raw: &str) -> Result<PortRange, String> {
    let num = |s: &str| {
        s.trim()
            .parse::<i32>()
            .map_err(|_| format!("invalid port {raw:?}: use N, N-M or -1"))
    };
    if raw.trim() == "-1" || raw.trim() == "all" {
        return Ok(PortRange(-1, Some(-1)));
    }
    match raw.split_once('-') {
        Some((a, b)) => Ok(PortRange(num(a)?, Some(num(b)?))),
        None => Ok(PortRange(num(raw)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::flatten;

    #[test]
    fn permissions_in_the_aws_shape() {
        let raw = r#"[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,
            "IpRanges":[{"CidrIp":"10.0.0.0/8"}]},
            {"IpProtocol":"-1","UserIdGroupPairs":[{"GroupId":"sg-1"}]}]"#;
        let p = flatten(vec![ip_permissions(raw).unwrap()]);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].from_port, Some(22));
        assert_eq!(p[0].ip_ranges[0].cidr_ip, "10.0.0.0/8");
        assert_eq!(p[1].from_port, None);
        assert_eq!(p[1].user_id_group_pairs[0].group_id, "sg-1");
        assert!(ip_permissions(r#"{"FromPort":1}"#).is_err());
        assert!(ip_permissions(r#"{"IpProtocol":"tcp","Colour":1}"#).is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port("22").unwrap().bounds("tcp"), (22, 22));
        assert_eq!(port("8").unwrap().bounds("icmp"), (8, -1));
        assert_eq!(port("3-4").unwrap().bounds("icmp"), (3, 4));
        assert_eq!(port("128").unwrap().bounds("icmpv6"), (128, -1));
        assert_eq!(port("1000-2000").unwrap().bounds("udp"), (1000, 2000));
        assert_eq!(port("-1").unwrap().bounds("icmp"), (-1, -1));
        assert!(port("x").is_err());
        assert!(port("1-").is_err());
    }
}
