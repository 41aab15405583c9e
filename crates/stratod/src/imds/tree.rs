//! The metadata tree of one instance, built from a [`View`] of its records, and path
//! lookup in it: directories list their entries one per line (sub-directories with a
//! trailing `/`), leaves are returned as they are, unknown paths are `None` (404).

use std::collections::BTreeMap;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A value.
    Leaf(String),
    /// Entries by name; `listing` replaces the generated listing (EC2 lists public keys
    /// as `0=name`).
    Dir {
        /// The entries.
        entries: BTreeMap<String, Node>,
        /// A listing of its own, if the generated one is not EC2's.
        listing: Option<String>,
    },
}

impl Node {
    fn dir() -> Node {
        Node::Dir {
            entries: BTreeMap::new(),
            listing: None,
        }
    }

    /// Adds a leaf (or a directory) at a `/`-separated path below this directory.
    pub fn put(&mut self, path: &str, node: Node) {
        let Node::Dir { entries, .. } = self else {
            return;
        };
        match path.split_once('/') {
            None => {
                entries.insert(path.to_string(), node);
            }
            Some((first, rest)) => entries
                .entry(first.to_string())
                .or_insert_with(Node::dir)
                .put(rest, node),
        }
    }

    fn leaf(&mut self, path: &str, value: impl Into<String>) {
        self.put(path, Node::Leaf(value.into()));
    }

    /// The text at `path` (relative, without a leading `/`; an empty path is this node).
    /// A trailing `/` changes nothing, on directories and leaves alike, as EC2 answers
    /// (botocore asks for `placement/availability-zone/`).
    pub fn get(&self, path: &str) -> Option<String> {
        let mut node = self;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let Node::Dir { entries, .. } = node else {
                return None;
            };
            node = entries.get(part)?;
        }
        match node {
            Node::Leaf(v) => Some(v.clone()),
            Node::Dir {
                listing: Some(l), ..
            } => Some(l.clone()),
            Node::Dir { entries, .. } => Some(
                entries
                    .iter()
                    .map(|(k, v)| match v {
                        Node::Dir { .. } => format!("{k}/"),
                        Node::Leaf(_) => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }
}

/// One network interface as the metadata service shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicView {
    /// `eni-…`
    pub id: String,
    /// Device index (0 for the primary).
    pub device_index: i32,
    /// MAC address.
    pub mac: String,
    /// Private IPv4s, the primary first.
    pub private_ips: Vec<String>,
    /// Public IPv4s mapped to it.
    pub public_ips: Vec<String>,
    /// Subnet ID and range.
    pub subnet_id: String,
    /// `a.b.c.d/n`.
    pub subnet_cidr: String,
    /// VPC ID and range.
    pub vpc_id: String,
    /// `a.b.c.d/n`.
    pub vpc_cidr: String,
    /// Security group IDs and names.
    pub groups: Vec<(String, String)>,
    /// IPv6 addresses, in the order they were assigned.
    pub ipv6s: Vec<String>,
    /// The subnet's IPv6 block (none or one), `x::/64`.
    pub subnet_ipv6_cidrs: Vec<String>,
    /// The VPC's IPv6 block (none or one), `x::/56`.
    pub vpc_ipv6_cidrs: Vec<String>,
}

/// What the tree is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `i-…`
    pub instance_id: String,
    /// Owning account.
    pub account: String,
    /// `r-…`
    pub reservation_id: String,
    /// `ami-…`
    pub image_id: String,
    /// Index within its launch.
    pub launch_index: i32,
    /// Instance type.
    pub instance_type: String,
    /// Architecture of the AMI.
    pub architecture: String,
    /// Region and AZ.
    pub region: String,
    /// AZ name.
    pub az: String,
    /// AZ ID.
    pub az_id: String,
    /// Placement group name and partition (0 outside partition groups).
    pub group_name: String,
    /// Partition number.
    pub partition_number: i32,
    /// Key pair name and OpenSSH public key (empty without a key).
    pub key_name: String,
    /// The public key.
    pub public_key: String,
    /// Network interfaces, the primary first.
    pub nics: Vec<NicView>,
    /// Block devices: (EC2 name such as `ami`, `root`, `ebs2`, `ephemeral0`, device).
    pub block_devices: Vec<(String, String)>,
    /// Instance tags, when the instance allows them in the metadata.
    pub tags: Option<Vec<(String, String)>>,
    /// Unix seconds of the last start.
    pub pending_time: i64,
    /// The instance profile and its role's current credentials, if it has a profile.
    pub iam: Option<IamView>,
}

/// An instance profile as the `iam/` directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamView {
    /// The profile's ARN.
    pub profile_arn: String,
    /// The profile's unique ID (`AIPA…`).
    pub profile_id: String,
    /// The role's name (the one entry of `iam/security-credentials/`).
    pub role: String,
    /// `ASIA…`
    pub access_key: String,
    /// The secret access key.
    pub secret: String,
    /// The session token.
    pub token: String,
    /// Unix seconds the credentials were issued.
    pub issued: i64,
    /// Unix seconds they expire.
    pub expires: i64,
}

/// The `iam/` directory: `info` and the role's credentials, in the JSON EC2 serves and
/// botocore's credential chain reads.
fn iam(v: &IamView) -> Node {
    let mut t = Node::dir();
    let updated = crate::time::rfc3339(v.issued);
    let info = serde_json::json!({
        "Code": "Success",
        "LastUpdated": updated,
        "InstanceProfileArn": v.profile_arn,
        "InstanceProfileId": v.profile_id,
    });
    t.leaf(
        "info",
        serde_json::to_string_pretty(&info).unwrap_or_default(),
    );
    let creds = serde_json::json!({
        "Code": "Success",
        "LastUpdated": updated,
        "Type": "AWS-HMAC",
        "AccessKeyId": v.access_key,
        "SecretAccessKey": v.secret,
        "Token": v.token,
        "Expiration": crate::time::rfc3339(v.expires),
    });
    // A role name is letters, digits and `+=,.@_-`: always one path element.
    t.leaf(
        &format!("security-credentials/{}", v.role),
        serde_json::to_string_pretty(&creds).unwrap_or_default(),
    );
    t
}

fn hostname(ip: &str, region: &str) -> String {
    crate::cloud::network::dns::private_dns_name(ip, region)
}

/// The `meta-data` directory of an instance.
pub fn meta_data(v: &View) -> Node {
    let mut t = Node::dir();
    let primary = v.nics.first();
    let local_ip = primary
        .and_then(|n| n.private_ips.first().cloned())
        .unwrap_or_default();
    t.leaf("ami-id", &v.image_id);
    t.leaf("ami-launch-index", v.launch_index.to_string());
    t.leaf("ami-manifest-path", "(unknown)");
    t.leaf("instance-action", "none");
    t.leaf("instance-id", &v.instance_id);
    t.leaf("instance-life-cycle", "on-demand");
    t.leaf("instance-type", &v.instance_type);
    t.leaf("reservation-id", &v.reservation_id);
    t.leaf("placement/availability-zone", &v.az);
    t.leaf("placement/availability-zone-id", &v.az_id);
    t.leaf("placement/region", &v.region);
    if !v.group_name.is_empty() {
        t.leaf("placement/group-name", &v.group_name);
    }
    if v.partition_number > 0 {
        t.leaf("placement/partition-number", v.partition_number.to_string());
    }
    if let Some(n) = primary {
        let host = hostname(&local_ip, &v.region);
        t.leaf("hostname", &host);
        t.leaf("local-hostname", &host);
        t.leaf("local-ipv4", &local_ip);
        t.leaf("mac", &n.mac);
        // EC2's `ipv6`: the primary interface's first IPv6 address, when it has one.
        if let Some(a) = n.ipv6s.first() {
            t.leaf("ipv6", a);
        }
        if let Some(p) = n.public_ips.first() {
            t.leaf("public-ipv4", p);
            t.leaf("public-hostname", hostname(p, &v.region));
        }
        t.leaf(
            "security-groups",
            n.groups
                .iter()
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    for n in &v.nics {
        let base = format!("network/interfaces/macs/{}", n.mac);
        let ip0 = n.private_ips.first().cloned().unwrap_or_default();
        t.leaf(&format!("{base}/device-number"), n.device_index.to_string());
        t.leaf(&format!("{base}/interface-id"), &n.id);
        t.leaf(&format!("{base}/local-hostname"), hostname(&ip0, &v.region));
        t.leaf(&format!("{base}/local-ipv4s"), n.private_ips.join("\n"));
        t.leaf(&format!("{base}/mac"), &n.mac);
        t.leaf(&format!("{base}/owner-id"), &v.account);
        t.leaf(&format!("{base}/subnet-id"), &n.subnet_id);
        t.leaf(&format!("{base}/subnet-ipv4-cidr-block"), &n.subnet_cidr);
        t.leaf(&format!("{base}/vpc-id"), &n.vpc_id);
        t.leaf(&format!("{base}/vpc-ipv4-cidr-block"), &n.vpc_cidr);
        t.leaf(&format!("{base}/vpc-ipv4-cidr-blocks"), &n.vpc_cidr);
        let ids: Vec<&str> = n.groups.iter().map(|(id, _)| id.as_str()).collect();
        let names: Vec<&str> = n.groups.iter().map(|(_, name)| name.as_str()).collect();
        t.leaf(&format!("{base}/security-group-ids"), ids.join("\n"));
        t.leaf(&format!("{base}/security-groups"), names.join("\n"));
        // The IPv6 entries exist only where there is something to list, as on EC2.
        for (key, list) in [
            ("ipv6s", &n.ipv6s),
            ("subnet-ipv6-cidr-blocks", &n.subnet_ipv6_cidrs),
            ("vpc-ipv6-cidr-blocks", &n.vpc_ipv6_cidrs),
        ] {
            if !list.is_empty() {
                t.leaf(&format!("{base}/{key}"), list.join("\n"));
            }
        }
        if !n.public_ips.is_empty() {
            t.leaf(&format!("{base}/public-ipv4s"), n.public_ips.join("\n"));
            t.leaf(
                &format!("{base}/public-hostname"),
                hostname(&n.public_ips[0], &v.region),
            );
        }
    }
    for (name, device) in &v.block_devices {
        t.leaf(&format!("block-device-mapping/{name}"), device);
    }
    if !v.public_key.is_empty() {
        let mut keys = Node::Dir {
            entries: BTreeMap::new(),
            listing: Some(format!("0={}", v.key_name)),
        };
        keys.leaf("0/openssh-key", &v.public_key);
        t.put("public-keys", keys);
    }
    if let Some(i) = &v.iam {
        t.put("iam", iam(i));
    }
    if let Some(tags) = &v.tags {
        let mut dir = Node::dir();
        for (k, val) in tags {
            // A key with a `/` cannot be a path element; EC2 refuses such keys for
            // metadata tags, so they are left out.
            if !k.is_empty() && !k.contains('/') {
                dir.leaf(k, val);
            }
        }
        t.put("tags/instance", dir);
    }
    t
}

/// The `dynamic` directory: the instance identity document.
pub fn dynamic(v: &View) -> Node {
    let mut t = Node::dir();
    let doc = serde_json::json!({
        "accountId": v.account,
        "architecture": v.architecture,
        "availabilityZone": v.az,
        "imageId": v.image_id,
        "instanceId": v.instance_id,
        "instanceType": v.instance_type,
        "pendingTime": crate::time::rfc3339(v.pending_time),
        "privateIp": v.nics.first().and_then(|n| n.private_ips.first()),
        "region": v.region,
        "version": "2017-09-30",
    });
    t.leaf(
        "instance-identity/document",
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            instance_id: "i-0123456789abcdef0".into(),
            account: "111111111111".into(),
            reservation_id: "r-0123456789abcdef0".into(),
            image_id: "ami-0123456789abcdef0".into(),
            launch_index: 0,
            instance_type: "t3.micro".into(),
            architecture: "x86_64".into(),
            region: "home-1".into(),
            az: "home-1a".into(),
            az_id: "home-az1".into(),
            group_name: "racks".into(),
            partition_number: 3,
            key_name: "lab".into(),
            public_key: "ssh-ed25519 AAAAC3Nza lab".into(),
            nics: vec![NicView {
                id: "eni-0123456789abcdef0".into(),
                device_index: 0,
                mac: "02:00:00:00:00:01".into(),
                private_ips: vec!["172.31.0.4".into(), "172.31.0.9".into()],
                public_ips: vec![],
                subnet_id: "subnet-0123456789abcdef0".into(),
                subnet_cidr: "172.31.0.0/20".into(),
                vpc_id: "vpc-0123456789abcdef0".into(),
                vpc_cidr: "172.31.0.0/16".into(),
                groups: vec![("sg-0123456789abcdef0".into(), "default".into())],
                ipv6s: vec![],
                subnet_ipv6_cidrs: vec![],
                vpc_ipv6_cidrs: vec![],
            }],
            block_devices: vec![
                ("ami".into(), "/dev/vda".into()),
                ("root".into(), "/dev/vda".into()),
            ],
            tags: None,
            pending_time: 1_700_000_000,
            iam: None,
        }
    }

    #[test]
    fn paths_listings_and_leaves() {
        let t = meta_data(&view());
        assert_eq!(t.get("instance-id").unwrap(), "i-0123456789abcdef0");
        assert_eq!(t.get("local-ipv4").unwrap(), "172.31.0.4");
        assert_eq!(
            t.get("hostname").unwrap(),
            "ip-172-31-0-4.home-1.compute.internal"
        );
        assert_eq!(t.get("placement/partition-number").unwrap(), "3");
        assert_eq!(t.get("placement/group-name").unwrap(), "racks");
        assert_eq!(t.get("public-keys/").unwrap(), "0=lab");
        assert_eq!(t.get("public-keys/0").unwrap(), "openssh-key");
        assert_eq!(
            t.get("public-keys/0/openssh-key").unwrap(),
            "ssh-ed25519 AAAAC3Nza lab"
        );
        assert_eq!(t.get("security-groups").unwrap(), "default");
        assert_eq!(
            t.get("network/interfaces/macs/").unwrap(),
            "02:00:00:00:00:01/"
        );
        assert_eq!(
            t.get("network/interfaces/macs/02:00:00:00:00:01/local-ipv4s")
                .unwrap(),
            "172.31.0.4\n172.31.0.9"
        );
        let top = t.get("").unwrap();
        assert!(top.contains("\nplacement/\n"), "{top}");
        assert!(top.contains("\ninstance-id\n"), "{top}");
        assert!(!top.contains("public-ipv4"), "no public address, no key");
        assert!(!top.contains("tags/"), "tags are off by default");
        assert_eq!(
            t.get("instance-id/").unwrap(),
            "i-0123456789abcdef0",
            "a leaf with a trailing slash is the leaf"
        );
        assert_eq!(t.get("placement/availability-zone/").unwrap(), "home-1a");
        assert_eq!(t.get("nothing"), None);
        assert_eq!(t.get("placement/nothing/deeper"), None);
        assert_eq!(t.get("instance-id/deeper"), None);
    }

    #[test]
    fn ipv6_entries_show_when_the_interface_has_ipv6() {
        let t = meta_data(&view());
        let base = "network/interfaces/macs/02:00:00:00:00:01";
        assert_eq!(t.get("ipv6"), None);
        assert_eq!(t.get(&format!("{base}/ipv6s")), None);
        let mut v = view();
        v.nics[0].ipv6s = vec!["2001:db8:0:1::10".into(), "2001:db8:0:1::11".into()];
        v.nics[0].subnet_ipv6_cidrs = vec!["2001:db8:0:1::/64".into()];
        v.nics[0].vpc_ipv6_cidrs = vec!["2001:db8::/56".into()];
        let t = meta_data(&v);
        assert_eq!(t.get("ipv6").unwrap(), "2001:db8:0:1::10");
        assert_eq!(
            t.get(&format!("{base}/ipv6s")).unwrap(),
            "2001:db8:0:1::10\n2001:db8:0:1::11"
        );
        assert_eq!(
            t.get(&format!("{base}/subnet-ipv6-cidr-blocks")).unwrap(),
            "2001:db8:0:1::/64"
        );
        assert_eq!(
            t.get(&format!("{base}/vpc-ipv6-cidr-blocks")).unwrap(),
            "2001:db8::/56"
        );
        assert!(t
            .get(&format!("{base}/"))
            .unwrap()
            .lines()
            .any(|l| l == "ipv6s"));
    }

    #[test]
    fn optional_entries_follow_the_instance() {
        let mut v = view();
        v.group_name.clear();
        v.partition_number = 0;
        v.public_key.clear();
        v.nics[0].public_ips = vec!["198.51.100.17".into()];
        v.tags = Some(vec![
            ("Name".into(), "web".into()),
            ("a/b".into(), "x".into()),
        ]);
        let t = meta_data(&v);
        assert_eq!(t.get("placement/group-name"), None);
        assert_eq!(t.get("placement/partition-number"), None);
        assert_eq!(t.get("public-keys/"), None);
        assert_eq!(t.get("public-ipv4").unwrap(), "198.51.100.17");
        assert_eq!(t.get("tags/instance/").unwrap(), "Name");
        assert_eq!(t.get("tags/instance/Name").unwrap(), "web");
    }

    #[test]
    fn identity_document() {
        let d = dynamic(&view());
        let doc: serde_json::Value =
            serde_json::from_str(&d.get("instance-identity/document").unwrap()).unwrap();
        assert_eq!(doc["instanceId"], "i-0123456789abcdef0");
        assert_eq!(doc["privateIp"], "172.31.0.4");
        assert_eq!(doc["pendingTime"], "2023-11-14T22:13:20Z");
        assert_eq!(d.get("").unwrap(), "instance-identity/");
    }

    #[test]
    fn a_profile_shows_iam_info_and_the_roles_credentials() {
        let mut v = view();
        assert_eq!(meta_data(&v).get("iam"), None, "no profile, no iam/");
        v.iam = Some(IamView {
            profile_arn: "arn:aws:iam::111111111111:instance-profile/web".into(),
            profile_id: "AIPAABCDEFGHIJKLMNOPQ".into(),
            role: "reader".into(),
            access_key: "ASIAABCDEFGHIJKLMNOP".into(),
            secret: "secret".into(),
            token: "token".into(),
            issued: 1_700_000_000,
            expires: 1_700_021_600,
        });
        let t = meta_data(&v);
        assert!(t.get("").unwrap().lines().any(|l| l == "iam/"));
        assert_eq!(t.get("iam").unwrap(), "info\nsecurity-credentials/");
        assert_eq!(t.get("iam/security-credentials/").unwrap(), "reader");
        let info: serde_json::Value = serde_json::from_str(&t.get("iam/info").unwrap()).unwrap();
        assert_eq!(info["Code"], "Success");
        assert_eq!(
            info["InstanceProfileArn"],
            "arn:aws:iam::111111111111:instance-profile/web"
        );
        let c: serde_json::Value =
            serde_json::from_str(&t.get("iam/security-credentials/reader").unwrap()).unwrap();
        assert_eq!(c["Type"], "AWS-HMAC");
        assert_eq!(c["AccessKeyId"], "ASIAABCDEFGHIJKLMNOP");
        assert_eq!(c["Token"], "token");
        assert_eq!(c["Expiration"], "2023-11-15T04:13:20Z");
        assert_eq!(t.get("iam/security-credentials/writer"), None);
    }
}
