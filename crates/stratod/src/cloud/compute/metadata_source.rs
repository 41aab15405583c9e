//! What the instance metadata service may read, from the state store: the VPC bridges it
//! listens on, the instance behind an address on a bridge, and the facts its tree shows.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::cloud::Cloud;
use crate::db::instances::{Instance, Toggle};
use crate::error::ApiResult;
use crate::imds::{tree, MetadataSource};

impl MetadataSource for Cloud {
    fn bridges(&self) -> ApiResult<Vec<String>> {
        Ok(self.db.vpcs()?.into_iter().map(|v| v.bridge).collect())
    }

    fn instance_at(&self, bridge: &str, ip: Ipv4Addr) -> Option<Instance> {
        let eni = self.db.eni_on_bridge(bridge, &ip.to_string()).ok()??;
        let id = eni.instance_id.as_deref()?;
        self.timelines.mark(id, "first_metadata_request");
        self.db.instance(id).ok()?
    }

    fn instance_at6(&self, bridge: &str, ip: Ipv6Addr) -> Option<Instance> {
        // Addresses are stored in canonical form, which is what `to_string` writes.
        let id = self.db.instance_at_ipv6(bridge, &ip.to_string()).ok()??;
        self.timelines.mark(&id, "first_metadata_request");
        self.db.instance(&id).ok()?
    }

    fn view(&self, inst: &Instance) -> Option<tree::View> {
        let db = &self.db;
        let mut nics = Vec::new();
        for e in db.instance_enis(&inst.id).ok()? {
            let subnet = db.subnet(&e.subnet_id).ok()??;
            let vpc = db.vpc(&subnet.vpc_id).ok()??;
            let groups = self.eni_group_names(&e.id).ok()?;
            let mut private_ips = vec![e.private_ip];
            private_ips.extend(db.secondary_ips(&e.id).ok()?);
            let mut public_ips = Vec::new();
            for ip in &private_ips {
                if let Some(p) = db.public_ip_of(&e.id, ip).ok()? {
                    public_ips.push(p);
                }
            }
            let ipv6s = db.eni_ipv6(&e.id).ok()?;
            let subnet_ipv6_cidrs = db.subnet_ipv6_block(&subnet.id).ok()?;
            let subnet_ipv6_cidrs = subnet_ipv6_cidrs.map(|b| b.cidr).into_iter().collect();
            let vpc_ipv6_cidrs = db.vpc_ipv6_block(&vpc.id).ok()?;
            let vpc_ipv6_cidrs = vpc_ipv6_cidrs.map(|b| b.cidr).into_iter().collect();
            nics.push(tree::NicView {
                id: e.id,
                device_index: e.device_index,
                mac: e.mac,
                private_ips,
                public_ips,
                subnet_id: subnet.id,
                subnet_cidr: subnet.cidr,
                vpc_id: vpc.id,
                vpc_cidr: vpc.cidr,
                groups,
                ipv6s,
                subnet_ipv6_cidrs,
                vpc_ipv6_cidrs,
            });
        }
        let image = db.image(&inst.image_id).ok().flatten();
        let group_name = if inst.placement_group.is_empty() {
            String::new()
        } else {
            db.placement_group(&inst.placement_group)
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_default()
        };
        let mut block_devices = vec![
            ("ami".to_string(), inst.root_device_name.clone()),
            ("root".to_string(), inst.root_device_name.clone()),
        ];
        let mut ebs = 0;
        for v in db.instance_volumes(&inst.id).ok()? {
            let Some(dev) = v.device else { continue };
            if dev != inst.root_device_name {
                ebs += 1;
                block_devices.push((format!("ebs{ebs}"), dev));
            }
        }
        for s in &inst.instance_store {
            block_devices.push((s.virtual_name.clone(), s.device.clone()));
        }
        let az_id = crate::cloud::placement::regions::all_zones(&self.cfg)
            .into_iter()
            .find(|z| z.name == inst.az)
            .map(|z| z.id)
            .unwrap_or_default();
        Some(tree::View {
            instance_id: inst.id.clone(),
            account: inst.owner.clone(),
            reservation_id: inst.reservation_id.clone(),
            image_id: inst.image_id.clone(),
            launch_index: inst.launch_index,
            instance_type: inst.instance_type.clone(),
            architecture: image
                .map(|i| i.architecture)
                .unwrap_or_else(|| "x86_64".into()),
            region: self.cfg.region.clone(),
            az: inst.az.clone(),
            az_id,
            group_name,
            partition_number: inst.partition_number,
            key_name: inst.key_name.clone(),
            public_key: inst.public_key.clone(),
            nics,
            block_devices,
            tags: (inst.metadata_options.instance_metadata_tags == Toggle::Enabled).then(|| {
                inst.tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect()
            }),
            pending_time: inst.launch_time,
            iam: self
                .instance_credentials(&inst.id, crate::db::now_s())
                .map_err(|e| {
                    tracing::warn!(instance = %inst.id, error = %e.message, "cannot issue role credentials")
                })
                .ok()
                .flatten()
                .map(|c| tree::IamView {
                    profile_arn: c.profile_arn,
                    profile_id: c.profile_id,
                    role: c.credential.role,
                    access_key: c.credential.access_key,
                    secret: c.credential.secret,
                    token: c.credential.token,
                    issued: c.credential.issued,
                    expires: c.credential.expires,
                }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::test_cloud;
    use crate::db::instances::tests::sample;
    use crate::db::instances::MetadataOptions;
    use crate::db::network::{Eni, Subnet, Vpc};
    use crate::imds::{http, Imds};
    use crate::lifecycle::State;
    use std::sync::Arc;

    const BRIDGE: &str = "strato0";
    const A: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 4);
    const B: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 5);

    /// A cloud with instances i-…a (172.31.0.4) and i-…b (172.31.0.5) on the default VPC.
    fn setup() -> (tempfile::TempDir, Arc<Cloud>) {
        let (dir, cloud) = test_cloud();
        cloud
            .db
            .insert_vpc(&Vpc {
                id: "vpc-0000000000000000a".into(),
                owner: String::new(),
                cidr: "172.31.0.0/16".into(),
                is_default: true,
                bridge: BRIDGE.into(),
                state: "available".into(),
                tags: vec![],
                created: 0,
            })
            .unwrap();
        cloud
            .db
            .insert_subnet(&Subnet {
                id: "subnet-0000000000000000a".into(),
                vpc_id: "vpc-0000000000000000a".into(),
                az: "home-1a".into(),
                cidr: "172.31.0.0/20".into(),
                bridge: BRIDGE.into(),
                is_default: true,
            })
            .unwrap();
        for (k, (id, ip)) in [("i-0000000000000000a", A), ("i-0000000000000000b", B)]
            .into_iter()
            .enumerate()
        {
            let mut i = sample(id, "111111111111");
            i.state = State::Running;
            i.key_name = "lab".into();
            i.public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 lab".into();
            cloud.db.insert_instance(&i).unwrap();
            cloud
                .db
                .insert_eni(&Eni {
                    instance_id: Some(id.into()),
                    mac: format!("02:00:00:00:00:0{k}"),
                    tap: format!("tap{k}"),
                    attachment_id: Some(format!("eni-attach-000000000000000{k}a")),
                    delete_on_termination: true,
                    ..Eni::sample(&format!("eni-000000000000000{k}a"), &ip.to_string())
                })
                .unwrap();
        }
        (dir, cloud)
    }

    #[test]
    fn the_caller_is_the_instance_whose_eni_holds_the_address_on_the_bridge() {
        let (_d, cloud) = setup();
        assert_eq!(cloud.bridges().unwrap(), vec![BRIDGE.to_string()]);
        let id = |bridge: &str, ip: Ipv4Addr| cloud.instance_at(bridge, ip).map(|i| i.id);
        assert_eq!(id(BRIDGE, A).as_deref(), Some("i-0000000000000000a"));
        assert_eq!(id(BRIDGE, B).as_deref(), Some("i-0000000000000000b"));
        assert_eq!(id("strato-other", A), None, "the address on another bridge");
        assert_eq!(id(BRIDGE, Ipv4Addr::new(172, 31, 0, 200)), None);
        let second = Ipv4Addr::new(172, 31, 0, 9);
        cloud
            .db
            .add_secondary_ips("eni-0000000000000000a", &[second.to_string()])
            .unwrap();
        assert_eq!(id(BRIDGE, second).as_deref(), Some("i-0000000000000000a"));
        // Whether a state may be served is the service's rule: the source says who it is.
        cloud
            .db
            .set_state("i-0000000000000000a", &[State::Running], State::Stopped, "")
            .unwrap();
        assert_eq!(id(BRIDGE, A).as_deref(), Some("i-0000000000000000a"));
    }

    #[test]
    fn the_view_has_the_interfaces_placement_and_opt_in_tags() {
        let (_d, cloud) = setup();
        cloud
            .db
            .add_secondary_ips("eni-0000000000000000a", &["172.31.0.9".to_string()])
            .unwrap();
        let inst = cloud.db.instance("i-0000000000000000a").unwrap().unwrap();
        let v = cloud.view(&inst).unwrap();
        assert_eq!(
            (
                v.instance_id.as_str(),
                v.account.as_str(),
                v.region.as_str()
            ),
            ("i-0000000000000000a", "111111111111", "home-1")
        );
        assert_eq!(v.az, inst.az);
        assert_eq!(v.nics.len(), 1);
        let n = &v.nics[0];
        assert_eq!(n.mac, "02:00:00:00:00:00");
        assert_eq!(n.private_ips, vec!["172.31.0.4", "172.31.0.9"]);
        assert_eq!(
            (
                n.subnet_cidr.as_str(),
                n.vpc_id.as_str(),
                n.vpc_cidr.as_str()
            ),
            ("172.31.0.0/20", "vpc-0000000000000000a", "172.31.0.0/16")
        );
        assert!(v
            .block_devices
            .contains(&("root".to_string(), inst.root_device_name.clone())));
        assert_eq!(v.tags, None, "tags are opt-in");
        let mut with_tags = inst.clone();
        with_tags.metadata_options = MetadataOptions {
            instance_metadata_tags: Toggle::Enabled,
            ..MetadataOptions::default()
        };
        assert!(cloud.view(&with_tags).unwrap().tags.is_some());
    }

    /// The service over the domain's source: what a guest at A reads is A's.
    #[test]
    fn the_service_over_the_domain() {
        let (_d, cloud) = setup();
        let imds = Imds::new(cloud.clone(), cloud.metrics.clone());
        let get = |path: &str, ip: Ipv4Addr| {
            let text = format!("GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n");
            let req = http::parse(text.as_bytes()).unwrap().unwrap().0;
            let a = imds.answer(&req, BRIDGE, ip);
            (
                a.response.status,
                String::from_utf8(a.response.body).unwrap(),
            )
        };
        assert_eq!(
            get("/latest/meta-data/instance-id", B),
            (200, "i-0000000000000000b".into())
        );
        assert_eq!(
            get("/latest/meta-data/local-ipv4", A),
            (200, "172.31.0.4".into())
        );
        assert_eq!(
            get("/latest/meta-data/public-keys/0/openssh-key", A).1,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 lab"
        );
        assert_eq!(get("/latest/meta-data/instance-id", A).0, 200);
        assert_eq!(
            cloud
                .metrics
                .imds_requests_total
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
    }
}
