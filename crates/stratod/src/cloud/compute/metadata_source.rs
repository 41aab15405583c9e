//! What the instance metadata service may read, from the state store: the VPC bridges it
//! listens on, the instance behind an address on a bridge, and the facts its tree shows.

use std::net::Ipv4Addr;

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
        self.db.instance(eni.instance_id.as_deref()?).ok()?
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
        })
    }
}
