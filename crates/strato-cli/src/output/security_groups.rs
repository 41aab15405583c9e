//! The results of the security group commands, as the AWS CLI's JSON and as tables.

use serde_json::{json, Value};
use strato_proto::v1::{CreateSecurityGroupResponse, IpPermission, SecurityGroup};

use super::json::tags;
use super::table::Table;

/// A result of one of these commands.
#[derive(Debug, Clone, PartialEq)]
pub enum SecurityGroupView {
    /// create-security-group
    Created(CreateSecurityGroupResponse),
    /// describe-security-groups
    Groups(Vec<SecurityGroup>),
    /// authorize-… and revoke-…
    Return,
}

/// The AWS CLI's JSON for `view`.
pub fn json(view: &SecurityGroupView) -> Value {
    match view {
        SecurityGroupView::Created(c) => json!({ "GroupId": c.group_id, "Tags": tags(&c.tags) }),
        SecurityGroupView::Groups(list) => {
            json!({ "SecurityGroups": list.iter().map(group).collect::<Vec<_>>() })
        }
        SecurityGroupView::Return => json!({ "Return": true }),
    }
}

fn group(g: &SecurityGroup) -> Value {
    json!({
        "Description": g.description,
        "GroupName": g.group_name,
        "IpPermissions": g.ip_permissions.iter().map(permission).collect::<Vec<_>>(),
        "OwnerId": g.owner_id,
        "GroupId": g.group_id,
        "IpPermissionsEgress": g.ip_permissions_egress.iter().map(permission).collect::<Vec<_>>(),
        "Tags": tags(&g.tags),
        "VpcId": g.vpc_id,
    })
}

fn permission(p: &IpPermission) -> Value {
    json!({
        "IpProtocol": p.ip_protocol,
        "FromPort": p.from_port,
        "ToPort": p.to_port,
        "IpRanges": p.ip_ranges.iter().map(|r| json!({"CidrIp": r.cidr_ip})).collect::<Vec<_>>(),
        "Ipv6Ranges": p.ipv6_ranges.iter()
            .map(|r| json!({"CidrIpv6": r.cidr_ipv6}))
            .collect::<Vec<_>>(),
        "UserIdGroupPairs": p.user_id_group_pairs.iter()
            .map(|g| json!({"GroupId": g.group_id, "UserId": g.user_id}))
            .collect::<Vec<_>>(),
    })
}

/// One permission in a table cell: `tcp:22 10.0.0.0/8,sg-1`.
fn rule_text(p: &IpPermission) -> String {
    let proto = if p.ip_protocol == "-1" {
        "all".to_string()
    } else {
        p.ip_protocol.clone()
    };
    let ports = match (p.from_port, p.to_port) {
        (Some(a), Some(b)) if a == b => format!(":{a}"),
        (Some(a), Some(b)) => format!(":{a}-{b}"),
        (Some(a), None) => format!(":{a}"),
        _ => String::new(),
    };
    let peers: Vec<&str> = p
        .ip_ranges
        .iter()
        .map(|r| r.cidr_ip.as_str())
        .chain(p.ipv6_ranges.iter().map(|r| r.cidr_ipv6.as_str()))
        .chain(p.user_id_group_pairs.iter().map(|g| g.group_id.as_str()))
        .collect();
    format!("{proto}{ports} {}", peers.join(","))
}

/// The table for `view`.
pub fn table(view: &SecurityGroupView) -> String {
    match view {
        SecurityGroupView::Created(c) => {
            let mut t = Table::new(&["GROUP ID"]);
            t.row(vec![c.group_id.clone()]);
            t.render()
        }
        SecurityGroupView::Groups(list) => {
            let mut t = Table::new(&["GROUP ID", "NAME", "VPC ID", "OWNER", "INGRESS", "EGRESS"]);
            for g in list {
                let rules =
                    |ps: &[IpPermission]| ps.iter().map(rule_text).collect::<Vec<_>>().join("; ");
                t.row(vec![
                    g.group_id.clone(),
                    g.group_name.clone(),
                    g.vpc_id.clone(),
                    g.owner_id.clone(),
                    rules(&g.ip_permissions),
                    rules(&g.ip_permissions_egress),
                ]);
            }
            t.render()
        }
        SecurityGroupView::Return => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{write, Format, View};
    use strato_proto::v1::IpRange;

    #[test]
    fn aws_shapes() {
        let g = SecurityGroup {
            group_id: "sg-1".into(),
            group_name: "web".into(),
            ip_permissions: vec![IpPermission {
                ip_protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                ip_ranges: vec![IpRange {
                    cidr_ip: "10.0.0.0/8".into(),
                    description: String::new(),
                }],
                user_id_group_pairs: vec![],
                ipv6_ranges: vec![strato_proto::v1::Ipv6Range {
                    cidr_ipv6: "::/0".into(),
                    description: String::new(),
                }],
            }],
            ..Default::default()
        };
        let mut out = Vec::new();
        let view = View::SecurityGroups(SecurityGroupView::Groups(vec![g]));
        write(&view, Format::Json, None, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let p = &v["SecurityGroups"][0]["IpPermissions"][0];
        assert_eq!(p["FromPort"], 22);
        assert_eq!(p["IpRanges"][0]["CidrIp"], "10.0.0.0/8");
        let mut out = Vec::new();
        write(&view, Format::Table, None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("tcp:22 10.0.0.0/8"), "{text}");
    }
}
