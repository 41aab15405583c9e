//! DescribeInstances and DescribeInstanceStatus: which instances a call names or its filters
//! pick, one page of them, and everything a front end shows of each (its interfaces,
//! volumes, groups and public address), so that no front end reads the state store.

use crate::cloud::filters::{self, Filter};
use crate::cloud::network::network_interfaces::EniView;
use crate::cloud::paging::{self, Page, PageRequest};
use crate::cloud::Cloud;
use crate::db::instances::Instance;
use crate::db::volumes::Volume;
use crate::error::ApiResult;
use crate::ids::{self, Kind};
use crate::lifecycle::State;
use crate::prober::Record;

/// Instance filter names.
pub const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "availability-zone",
    "private-ip-address",
    "subnet-id",
    "vpc-id",
    "reservation-id",
    "client-token",
    "owner-id",
    "tag-key",
    "launch-index",
    "key-name",
    "placement-group-name",
    "placement-partition-number",
    "instance.group-id",
    "instance.group-name",
    "ip-address",
];

/// DescribeInstances.
#[derive(Debug, Clone, Default)]
pub struct DescribeInstances {
    /// The instances named (each must be the caller's); empty for all.
    pub instance_ids: Vec<String>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Paging.
    pub page: PageRequest,
}

/// DescribeInstanceStatus.
#[derive(Debug, Clone, Default)]
pub struct DescribeInstanceStatus {
    /// The instances named (each must be the caller's); empty for all.
    pub instance_ids: Vec<String>,
    /// Filters (those of DescribeInstances).
    pub filters: Vec<Filter>,
    /// Instances in every state, not only running ones.
    pub include_all_instances: bool,
    /// Paging.
    pub page: PageRequest,
}

/// An instance as a front end shows it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    /// The record.
    pub instance: Instance,
    /// The VPC of its primary interface (empty without one).
    pub vpc_id: String,
    /// The public address of its primary interface.
    pub public_ip: Option<String>,
    /// Its security groups (ID, name): the primary interface's, or those it last had.
    pub security_groups: Vec<(String, String)>,
    /// The name of its placement group (empty outside one).
    pub placement_group_name: String,
    /// Its volumes, by device name.
    pub volumes: Vec<Volume>,
    /// Its interfaces, primary first.
    pub network_interfaces: Vec<EniView>,
    /// Its instance profile's ARN and association ID.
    pub iam_instance_profile: Option<(String, String)>,
    /// The region's host it runs on (this one; empty without a `cluster` config).
    pub host_id: String,
}

/// One instance's status checks as DescribeInstanceStatus shows them.
#[derive(Debug, Clone)]
pub struct InstanceStatus {
    /// The record.
    pub instance: Instance,
    /// Both checks while it runs; `None` (not applicable) in other states.
    pub checks: Option<Record>,
}

impl Cloud {
    /// DescribeInstances: the named instances or all the caller's, filtered, one page.
    pub fn describe_instances(
        &self,
        account: &str,
        req: &DescribeInstances,
    ) -> ApiResult<Page<InstanceView>> {
        let chosen = self.select_instances(account, &req.instance_ids, &req.filters)?;
        let page = paging::paginate(chosen, &req.page)?;
        let items = page
            .items
            .into_iter()
            .map(|i| self.instance_view(i))
            .collect::<ApiResult<_>>()?;
        Ok(Page {
            items,
            next_token: page.next_token,
        })
    }

    /// DescribeInstanceStatus: the running instances (or all, if asked) of the selection,
    /// one page, each with its checks.
    pub fn describe_instance_status(
        &self,
        account: &str,
        req: &DescribeInstanceStatus,
    ) -> ApiResult<Page<InstanceStatus>> {
        let mut chosen = self.select_instances(account, &req.instance_ids, &req.filters)?;
        if !req.include_all_instances {
            chosen.retain(|i| i.state == State::Running);
        }
        Ok(
            paging::paginate(chosen, &req.page)?.map(|i| InstanceStatus {
                checks: (i.state == State::Running).then(|| self.status_of(&i.id)),
                instance: i,
            }),
        )
    }

    /// Everything a front end shows of an instance.
    pub fn instance_view(&self, i: Instance) -> ApiResult<InstanceView> {
        let enis = self.db.instance_enis(&i.id)?;
        let primary = enis.first();
        let vpc_id = match primary {
            Some(e) => self.vpc_of_subnet(&e.subnet_id)?,
            None => String::new(),
        };
        let volumes = self.db.instance_volumes(&i.id)?;
        // The primary interface's groups; a terminated instance keeps those it last had.
        let security_groups: Vec<(String, String)> = match primary {
            Some(e) => self.eni_group_names(&e.id)?,
            None => i
                .security_groups
                .iter()
                .map(|g| {
                    let name = self.db.security_group(g)?.map(|g| g.name);
                    Ok((g.clone(), name.unwrap_or_default()))
                })
                .collect::<ApiResult<_>>()?,
        };
        let placement_group_name = self.placement_group_name(&i)?;
        let public_ip = match primary {
            Some(e) => self.db.public_ip_of(&e.id, &e.private_ip)?,
            None => None,
        };
        let network_interfaces = self.instance_eni_views(&i.id)?;
        let iam_instance_profile = self.instance_profile_of(&i.id)?;
        Ok(InstanceView {
            host_id: self.host_id().to_string(),
            iam_instance_profile,
            instance: i,
            vpc_id,
            public_ip,
            security_groups,
            placement_group_name,
            volumes,
            network_interfaces,
        })
    }

    /// The VPC of a subnet (empty if the subnet is gone).
    fn vpc_of_subnet(&self, subnet_id: &str) -> ApiResult<String> {
        Ok(self
            .db
            .subnet(subnet_id)?
            .map(|s| s.vpc_id)
            .unwrap_or_default())
    }

    /// The name of an instance's placement group (empty outside one).
    fn placement_group_name(&self, i: &Instance) -> ApiResult<String> {
        if i.placement_group.is_empty() {
            return Ok(String::new());
        }
        Ok(self
            .db
            .placement_group(&i.placement_group)?
            .map(|g| g.name)
            .unwrap_or_default())
    }

    /// The instances of a Describe call: the named ones (each must exist) or all, filtered.
    fn select_instances(
        &self,
        account: &str,
        instance_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<Instance>> {
        filters::check_names(f, INSTANCE_FILTERS)?;
        let all = self.db.instances(Some(account))?;
        let chosen: Vec<Instance> = if instance_ids.is_empty() {
            all
        } else {
            ids::check_all(Kind::Instance, instance_ids)?;
            let mut out = Vec::new();
            for id in instance_ids {
                match all.iter().find(|i| &i.id == id) {
                    Some(i) => out.push(i.clone()),
                    None => return Err(Kind::Instance.not_found(id)),
                }
            }
            out
        };
        let mut out = Vec::new();
        for i in chosen {
            let enis = self.db.instance_enis(&i.id)?;
            let vpc = match enis.first() {
                Some(e) => self.vpc_of_subnet(&e.subnet_id)?,
                None => String::new(),
            };
            let public_ips = if f.iter().any(|f| f.name == "ip-address") {
                enis.iter()
                    .map(|e| self.db.public_ip_of(&e.id, &e.private_ip))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .collect()
            } else {
                Vec::new()
            };
            let group = if f.iter().any(|f| f.name == "placement-group-name") {
                self.placement_group_name(&i)?
            } else {
                String::new()
            };
            let groups = match enis.first() {
                Some(e) if f.iter().any(|f| f.name.starts_with("instance.group-")) => {
                    self.eni_group_names(&e.id)?
                }
                _ => Vec::new(),
            };
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "instance.group-id" => Some(groups.iter().map(|g| g.0.clone()).collect()),
                    "instance.group-name" => Some(groups.iter().map(|g| g.1.clone()).collect()),
                    "key-name" => one(&i.key_name),
                    "ip-address" => Some(public_ips.clone()),
                    "placement-group-name" => one(&group),
                    "placement-partition-number" => one(&i.partition_number.to_string()),
                    "instance-id" => one(&i.id),
                    "instance-state-name" => one(i.state.name()),
                    "instance-state-code" => one(&i.state.code().to_string()),
                    "instance-type" => one(&i.instance_type),
                    "image-id" => one(&i.image_id),
                    "availability-zone" => one(&i.az),
                    "private-ip-address" => {
                        Some(enis.iter().map(|e| e.private_ip.clone()).collect())
                    }
                    "subnet-id" => one(&i.subnet_id),
                    "vpc-id" => one(&vpc),
                    "reservation-id" => one(&i.reservation_id),
                    "client-token" => one(&i.client_token),
                    "owner-id" => one(&i.owner),
                    "launch-index" => one(&i.launch_index.to_string()),
                    n => filters::tag_values(&i.tags, n),
                }
            })?;
            if ok {
                out.push(i);
            }
        }
        Ok(out)
    }
}
