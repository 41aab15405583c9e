//! The Compute service: instances, instance types, status checks and consoles.

use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use std::time::Duration;

use strato_proto::v1 as pb;
use strato_proto::v1::compute_server::Compute;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert;
use super::paginate;
use super::Api;
use crate::catalog;
use crate::cloud::compute::instances::Change;
use crate::cloud::compute::launch::{Override, RunRequest, TemplateRef};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cloud::filters;
use crate::db::instances::Instance;
use crate::error::ApiResult;
use crate::lifecycle::State;

/// Bytes of console output GetConsoleOutput returns (EC2: the latest 64 KiB).
pub const CONSOLE_TAIL: u64 = 64 * 1024;

/// Instance filter names.
const INSTANCE_FILTERS: &[&str] = &[
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

impl Api {
    /// An instance as the API shows it.
    fn instance_message(&self, i: &Instance) -> ApiResult<pb::Instance> {
        let enis = self.cloud.db.instance_enis(&i.id)?;
        let primary = enis.first();
        let vpc = match primary {
            Some(e) => self
                .cloud
                .db
                .subnet(&e.subnet_id)?
                .map(|s| s.vpc_id)
                .unwrap_or_default(),
            None => String::new(),
        };
        let volumes = self.cloud.db.instance_volumes(&i.id)?;
        // The primary interface's groups; a terminated instance keeps those it last had.
        let groups: Vec<(String, String)> = match primary {
            Some(e) => self.cloud.eni_group_names(&e.id)?,
            None => i
                .security_groups
                .iter()
                .map(|g| {
                    let name = self.cloud.db.security_group(g)?.map(|g| g.name);
                    Ok((g.clone(), name.unwrap_or_default()))
                })
                .collect::<ApiResult<_>>()?,
        };
        let group_name = self.group_name(i)?;
        let public_ip = match primary {
            Some(e) => self.cloud.db.public_ip_of(&e.id, &e.private_ip)?,
            None => None,
        };
        Ok(pb::Instance {
            instance_id: i.id.clone(),
            image_id: i.image_id.clone(),
            instance_type: i.instance_type.clone(),
            state: Some(convert::state(i.state)),
            state_reason: i.state_reason.clone(),
            launch_time_unix: i.launch_time,
            placement: Some(pb::Placement {
                availability_zone: i.az.clone(),
                group_name,
                partition_number: i.partition_number,
                group_id: i.placement_group.clone(),
                rack: i.rack.clone(),
            }),
            private_ip_address: primary.map(|e| e.private_ip.clone()).unwrap_or_default(),
            public_ip_address: public_ip.unwrap_or_default(),
            mac_address: primary.map(|e| e.mac.clone()).unwrap_or_default(),
            subnet_id: i.subnet_id.clone(),
            vpc_id: vpc,
            security_group_ids: groups.iter().map(|g| g.0.clone()).collect(),
            security_groups: groups
                .into_iter()
                .map(|(group_id, group_name)| pb::GroupIdentifier {
                    group_id,
                    group_name,
                })
                .collect(),
            key_name: i.key_name.clone(),
            root_device_name: i.root_device_name.clone(),
            block_device_mappings: volumes
                .iter()
                .map(|v| pb::InstanceBlockDevice {
                    device_name: v.device.clone().unwrap_or_default(),
                    volume_id: v.id.clone(),
                    delete_on_termination: v.delete_on_termination,
                    status: v
                        .attach_state
                        .map(|a| a.name())
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect(),
            instance_initiated_shutdown_behavior: i.shutdown_behavior.clone(),
            disable_api_termination: i.disable_api_termination,
            vcpus: i.vcpus as i32,
            memory_mib: i.memory_mib as i32,
            tags: convert::tags(&i.tags),
            owner_id: i.owner.clone(),
            ami_launch_index: i.launch_index,
            reservation_id: i.reservation_id.clone(),
            metadata_options: Some(convert::metadata_options(&i.metadata_options)),
            network_interfaces: self.instance_enis(&i.id)?,
        })
    }

    /// The name of an instance's placement group (empty outside one).
    fn group_name(&self, i: &Instance) -> ApiResult<String> {
        if i.placement_group.is_empty() {
            return Ok(String::new());
        }
        Ok(self
            .cloud
            .db
            .placement_group(&i.placement_group)?
            .map(|g| g.name)
            .unwrap_or_default())
    }

    fn changes(&self, c: Vec<Change>) -> pb::InstanceStateChanges {
        pb::InstanceStateChanges {
            changes: c
                .into_iter()
                .map(|c| pb::InstanceStateChange {
                    instance_id: c.id,
                    previous_state: Some(convert::state(c.previous)),
                    current_state: Some(convert::state(c.current)),
                })
                .collect(),
        }
    }

    /// The instances of a Describe call: the named ones (each must exist) or all, filtered.
    fn select_instances(
        &self,
        account: &str,
        ids: &[String],
        f: &[pb::Filter],
    ) -> ApiResult<Vec<Instance>> {
        let f = convert::filters(f);
        filters::check_names(&f, INSTANCE_FILTERS)?;
        let all = self.cloud.db.instances(Some(account))?;
        let chosen: Vec<Instance> = if ids.is_empty() {
            all
        } else {
            crate::ids::check_all(crate::ids::Kind::Instance, ids)?;
            let mut out = Vec::new();
            for id in ids {
                match all.iter().find(|i| &i.id == id) {
                    Some(i) => out.push(i.clone()),
                    None => return Err(crate::ids::Kind::Instance.not_found(id)),
                }
            }
            out
        };
        let mut out = Vec::new();
        for i in chosen {
            let enis = self.cloud.db.instance_enis(&i.id)?;
            let vpc = match enis.first() {
                Some(e) => self
                    .cloud
                    .db
                    .subnet(&e.subnet_id)?
                    .map(|s| s.vpc_id)
                    .unwrap_or_default(),
                None => String::new(),
            };
            let public_ips = if f.iter().any(|f| f.name == "ip-address") {
                enis.iter()
                    .map(|e| self.cloud.db.public_ip_of(&e.id, &e.private_ip))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .collect()
            } else {
                Vec::new()
            };
            let group = if f.iter().any(|f| f.name == "placement-group-name") {
                self.group_name(&i)?
            } else {
                String::new()
            };
            let groups = match enis.first() {
                Some(e) if f.iter().any(|f| f.name.starts_with("instance.group-")) => {
                    self.cloud.eni_group_names(&e.id)?
                }
                _ => Vec::new(),
            };
            let ok = filters::matches(&f, |name| {
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

/// The last `CONSOLE_TAIL` bytes of a console log.
pub fn console_tail(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(CONSOLE_TAIL)))?;
    let mut out = Vec::new();
    f.take(CONSOLE_TAIL).read_to_end(&mut out)?;
    Ok(out)
}

type ConsoleStream = Pin<Box<dyn Stream<Item = Result<pb::ConsoleChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Compute for Api {
    async fn run_instances(
        &self,
        req: Request<pb::RunInstancesRequest>,
    ) -> Result<Response<pb::RunInstancesResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let placement = r.placement.unwrap_or_default();
        let md = r.metadata_options.unwrap_or_default();
        let metadata = match MetadataChange::parse(
            &md.http_tokens,
            md.http_put_response_hop_limit,
            &md.http_endpoint,
            &md.instance_metadata_tags,
        ) {
            Ok(m) => m,
            Err(e) => return self.finish("RunInstances", Err(e)),
        };
        let run = RunRequest {
            image_id: r.image_id,
            instance_type: r.instance_type,
            min_count: r.min_count,
            max_count: r.max_count,
            subnet_id: r.subnet_id,
            security_group_ids: r.security_group_ids,
            security_group_names: r.security_groups,
            user_data: r.user_data,
            mappings: r
                .block_device_mappings
                .iter()
                .map(|m| Override {
                    mapping: convert::mapping_in(m),
                    delete_on_termination: convert::delete_on_termination(m),
                })
                .collect(),
            key_name: r.key_name,
            availability_zone: placement.availability_zone,
            group_name: placement.group_name,
            partition_number: placement.partition_number,
            shutdown_behavior: r.instance_initiated_shutdown_behavior,
            // A true is explicit by itself; a false only when the caller says so.
            disable_api_termination: (r.disable_api_termination || r.has_disable_api_termination)
                .then_some(r.disable_api_termination),
            tags: convert::tags_in(&r.tags),
            client_token: r.client_token,
            associate_public_ip: r
                .has_associate_public_ip_address
                .then_some(r.associate_public_ip_address),
            launch_template: r.launch_template.map(|t| TemplateRef {
                id: t.launch_template_id,
                name: t.launch_template_name,
                version: t.version,
            }),
            metadata,
        };
        let result = async {
            let (reservation, instances) = self.cloud.run_instances(&account, run).await?;
            let instances = instances
                .iter()
                .map(|i| self.instance_message(i))
                .collect::<ApiResult<Vec<_>>>()?;
            Ok(pb::RunInstancesResponse {
                reservation_id: reservation,
                owner_id: account.clone(),
                instances,
            })
        }
        .await;
        self.finish("RunInstances", result)
    }

    async fn describe_instances(
        &self,
        req: Request<pb::DescribeInstancesRequest>,
    ) -> Result<Response<pb::DescribeInstancesResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = (|| {
            let chosen = self.select_instances(&account, &r.instance_ids, &r.filters)?;
            let (page, next_token) = paginate(chosen, r.max_results, &r.next_token)?;
            Ok(pb::DescribeInstancesResponse {
                instances: page
                    .iter()
                    .map(|i| self.instance_message(i))
                    .collect::<ApiResult<_>>()?,
                next_token,
            })
        })();
        self.finish("DescribeInstances", result)
    }

    async fn stop_instances(
        &self,
        req: Request<pb::StopInstancesRequest>,
    ) -> Result<Response<pb::InstanceStateChanges>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .stop_instances(&account, &r.instance_ids, r.force)
            .map(|c| self.changes(c));
        self.finish("StopInstances", result)
    }

    async fn start_instances(
        &self,
        req: Request<pb::StartInstancesRequest>,
    ) -> Result<Response<pb::InstanceStateChanges>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .start_instances(&account, &r.instance_ids)
            .map(|c| self.changes(c));
        self.finish("StartInstances", result)
    }

    async fn reboot_instances(
        &self,
        req: Request<pb::RebootInstancesRequest>,
    ) -> Result<Response<pb::RebootInstancesResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .reboot_instances(&account, &r.instance_ids)
            .map(|_| pb::RebootInstancesResponse {});
        self.finish("RebootInstances", result)
    }

    async fn terminate_instances(
        &self,
        req: Request<pb::TerminateInstancesRequest>,
    ) -> Result<Response<pb::InstanceStateChanges>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .terminate_instances(&account, &r.instance_ids)
            .map(|c| self.changes(c));
        self.finish("TerminateInstances", result)
    }

    async fn modify_instance_attribute(
        &self,
        req: Request<pb::ModifyInstanceAttributeRequest>,
    ) -> Result<Response<pb::ModifyInstanceAttributeResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let behavior = (!r.instance_initiated_shutdown_behavior.is_empty())
            .then_some(r.instance_initiated_shutdown_behavior.as_str());
        let result = async {
            // Checked first, so that a bad group changes nothing.
            if !r.groups.is_empty() {
                self.cloud
                    .plan_instance_groups(&account, &r.instance_id, &r.groups)?;
            }
            self.cloud.modify_instance(
                &account,
                &r.instance_id,
                r.disable_api_termination,
                behavior,
            )?;
            if !r.groups.is_empty() {
                self.cloud
                    .modify_instance_groups(&account, &r.instance_id, &r.groups)
                    .await?;
            }
            Ok(pb::ModifyInstanceAttributeResponse {})
        }
        .await;
        self.finish("ModifyInstanceAttribute", result)
    }

    async fn modify_instance_metadata_options(
        &self,
        req: Request<pb::ModifyInstanceMetadataOptionsRequest>,
    ) -> Result<Response<pb::ModifyInstanceMetadataOptionsResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = MetadataChange::parse(
            &r.http_tokens,
            r.http_put_response_hop_limit,
            &r.http_endpoint,
            &r.instance_metadata_tags,
        )
        .and_then(|c| {
            self.cloud
                .modify_metadata_options(&account, &r.instance_id, c)
        })
        .map(|o| pb::ModifyInstanceMetadataOptionsResponse {
            instance_id: r.instance_id.clone(),
            instance_metadata_options: Some(convert::metadata_options(&o)),
        });
        self.finish("ModifyInstanceMetadataOptions", result)
    }

    async fn describe_instance_types(
        &self,
        req: Request<pb::DescribeInstanceTypesRequest>,
    ) -> Result<Response<pb::DescribeInstanceTypesResponse>, Status> {
        self.account(&req)?;
        let r = req.into_inner();
        let result = (|| {
            let types = if r.instance_types.is_empty() {
                catalog::all()
            } else {
                r.instance_types
                    .iter()
                    .map(|t| catalog::lookup(t))
                    .collect::<ApiResult<_>>()?
            };
            Ok(pb::DescribeInstanceTypesResponse {
                instance_types: types
                    .into_iter()
                    .map(|t| pb::InstanceTypeInfo {
                        instance_type: t.name,
                        vcpus: t.vcpus as i32,
                        memory_mib: t.memory_mib as i32,
                        instance_store_gib: t.instance_store_gib as i32,
                    })
                    .collect(),
            })
        })();
        self.finish("DescribeInstanceTypes", result)
    }

    async fn describe_instance_status(
        &self,
        req: Request<pb::DescribeInstanceStatusRequest>,
    ) -> Result<Response<pb::DescribeInstanceStatusResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = (|| {
            let mut chosen = self.select_instances(&account, &r.instance_ids, &r.filters)?;
            if !r.include_all_instances {
                chosen.retain(|i| i.state == State::Running);
            }
            let (page, next_token) = paginate(chosen, r.max_results, &r.next_token)?;
            let summary = |c: &crate::prober::Check| pb::StatusSummary {
                status: c.status.name().to_string(),
                details: vec![pb::StatusDetail {
                    name: "reachability".into(),
                    status: c.status.detail().to_string(),
                    impaired_since_unix: c.impaired_since.unwrap_or(0),
                }],
            };
            let na = || pb::StatusSummary {
                status: "not-applicable".into(),
                details: vec![],
            };
            let statuses = page
                .iter()
                .map(|i| {
                    let (system, instance) = if i.state == State::Running {
                        let rec = self.cloud.status_of(&i.id);
                        (summary(&rec.system), summary(&rec.instance))
                    } else {
                        (na(), na())
                    };
                    pb::InstanceStatus {
                        instance_id: i.id.clone(),
                        availability_zone: i.az.clone(),
                        instance_state: Some(convert::state(i.state)),
                        system_status: Some(system),
                        instance_status: Some(instance),
                        attached_ebs_status: None,
                    }
                })
                .collect();
            Ok(pb::DescribeInstanceStatusResponse {
                instance_statuses: statuses,
                next_token,
            })
        })();
        self.finish("DescribeInstanceStatus", result)
    }

    async fn get_console_output(
        &self,
        req: Request<pb::GetConsoleOutputRequest>,
    ) -> Result<Response<pb::GetConsoleOutputResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = (|| {
            let inst = self.cloud.owned_instance(&account, &r.instance_id)?;
            let path = self.cloud.instance_dir(&inst.id).join("console.log");
            let output = console_tail(&path)
                .map_err(|e| crate::cloud::host_io("Cannot read the console", e))?;
            Ok(pb::GetConsoleOutputResponse {
                instance_id: inst.id,
                timestamp_unix: crate::db::now_s(),
                output,
            })
        })();
        self.finish("GetConsoleOutput", result)
    }

    type StreamConsoleStream = ConsoleStream;

    async fn stream_console(
        &self,
        req: Request<pb::StreamConsoleRequest>,
    ) -> Result<Response<Self::StreamConsoleStream>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let inst = match self.cloud.owned_instance(&account, &r.instance_id) {
            Ok(i) => i,
            Err(e) => return self.finish("StreamConsole", Err(e)),
        };
        let path = self.cloud.instance_dir(&inst.id).join("console.log");
        let cloud = self.cloud.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut pos = std::fs::metadata(&path)
                .map(|m| m.len())
                .unwrap_or(0)
                .saturating_sub(CONSOLE_TAIL);
            loop {
                let chunk = read_from(&path, pos);
                if !chunk.is_empty() {
                    pos += chunk.len() as u64;
                    if tx.send(Ok(pb::ConsoleChunk { data: chunk })).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Follow until the instance is gone for good.
                let state = cloud.db.instance(&inst.id).ok().flatten().map(|i| i.state);
                if matches!(state, None | Some(State::Terminated)) || tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let stream: ConsoleStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }
}

/// Up to 64 KiB of a file from `pos`.
fn read_from(path: &std::path::Path, pos: u64) -> Vec<u8> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let _ = f.take(CONSOLE_TAIL).read_to_end(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let (p, next) = paginate((0..12).collect(), 5, "").unwrap();
        assert_eq!((p, next.as_str()), (vec![0, 1, 2, 3, 4], "5"));
        let (p, next) = paginate((0..12).collect(), 5, "10").unwrap();
        assert_eq!((p, next.as_str()), (vec![10, 11], ""));
        assert_eq!(
            paginate(vec![1], 0, "x").unwrap_err().code,
            "InvalidNextToken"
        );
        assert!(paginate(vec![1], 2, "").is_err());
        assert!(paginate(vec![1], -1, "").is_err());
    }

    #[test]
    fn console_tail_keeps_the_latest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        assert!(console_tail(&p).unwrap().is_empty());
        let mut data = vec![b'a'; 70 * 1024];
        data.extend_from_slice(b"END");
        std::fs::write(&p, &data).unwrap();
        let t = console_tail(&p).unwrap();
        assert_eq!(t.len() as u64, CONSOLE_TAIL);
        assert!(t.ends_with(b"END"));
    }
}
