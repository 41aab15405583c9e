//! The Compute service: instances, instance types, status checks and consoles.

use std::pin::Pin;

use strato_proto::v1 as pb;
use strato_proto::v1::compute_server::Compute;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert;
use super::network_interfaces::eni_message;
use super::Api;
use crate::catalog;
use crate::cloud::compute::describe::{
    DescribeInstanceStatus, DescribeInstances, InstanceStatus, InstanceView,
};
use crate::cloud::compute::instances::{Change, InstanceAttributes};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cloud::paging::PageRequest;
use crate::cluster::route::{in_request_order, Origin, StateOp};
use crate::error::ApiResult;

/// An instance as the API shows it: also the shape every host's instances travel in
/// between the region's hosts, which the Query API renders (query::actions::shapes).
pub(crate) fn instance_message(v: InstanceView) -> pb::Instance {
    let i = v.instance;
    let primary = v.network_interfaces.first().map(|e| &e.eni);
    pb::Instance {
        instance_id: i.id.clone(),
        image_id: i.image_id.clone(),
        instance_type: i.instance_type.clone(),
        state: Some(convert::state(i.state)),
        state_reason: i.state_reason.clone(),
        launch_time_unix: i.launch_time,
        placement: Some(pb::Placement {
            availability_zone: i.az.clone(),
            group_name: v.placement_group_name,
            partition_number: i.partition_number,
            group_id: i.placement_group.clone(),
            rack: i.rack.clone(),
            host_id: v.host_id.clone(),
        }),
        private_ip_address: primary.map(|e| e.private_ip.clone()).unwrap_or_default(),
        public_ip_address: v.public_ip.unwrap_or_default(),
        mac_address: primary.map(|e| e.mac.clone()).unwrap_or_default(),
        subnet_id: i.subnet_id.clone(),
        vpc_id: v.vpc_id,
        security_group_ids: v.security_groups.iter().map(|g| g.0.clone()).collect(),
        security_groups: v
            .security_groups
            .into_iter()
            .map(|(group_id, group_name)| pb::GroupIdentifier {
                group_id,
                group_name,
            })
            .collect(),
        key_name: i.key_name.clone(),
        root_device_name: i.root_device_name.clone(),
        block_device_mappings: v
            .volumes
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
        ena_support: i.ena_support,
        network_interfaces: v.network_interfaces.into_iter().map(eni_message).collect(),
        iam_instance_profile_arn: v
            .iam_instance_profile
            .as_ref()
            .map(|p| p.0.clone())
            .unwrap_or_default(),
        iam_instance_profile_association_id: v
            .iam_instance_profile
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_default(),
        client_token: i.client_token.clone(),
        user_data: Vec::new(),
    }
}

/// [`instance_message`] with the instance's user data, which only
/// `DescribeInstancesRequest.with_user_data` asks for.
pub(crate) fn instance_message_with_user_data(v: InstanceView) -> pb::Instance {
    let user_data = v.instance.user_data.clone();
    pb::Instance {
        user_data,
        ..instance_message(v)
    }
}

fn changes(c: Vec<Change>) -> pb::InstanceStateChanges {
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

/// One instance's checks as the API shows them (and the Query API renders).
pub(crate) fn instance_status(s: InstanceStatus) -> pb::InstanceStatus {
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
    let (system, instance) = match &s.checks {
        Some(rec) => (summary(&rec.system), summary(&rec.instance)),
        None => (na(), na()),
    };
    pb::InstanceStatus {
        instance_id: s.instance.id,
        availability_zone: s.instance.az,
        instance_state: Some(convert::state(s.instance.state)),
        system_status: Some(system),
        instance_status: Some(instance),
        attached_ebs_status: None,
    }
}

type ConsoleStream = Pin<Box<dyn Stream<Item = Result<pb::ConsoleChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Compute for Api {
    async fn run_instances(
        &self,
        req: Request<pb::RunInstancesRequest>,
    ) -> Result<Response<pb::RunInstancesResponse>, Status> {
        let from_host = self.is_region_host(&req);
        self.handle_async("RunInstances", req, |account, r| async move {
            let pinned = match &r.region_placement {
                Some(_) if !from_host => {
                    return Err(crate::cluster::forward::hosts_only("RegionPlacement"))
                }
                Some(p) => {
                    // The host that placed the launch may have made its key pair or group
                    // a moment ago: this host's copy of the region's records catches up
                    // first.
                    self.cloud.mirror_region().await;
                    Some(super::hosts::pinned_in(p)?)
                }
                None => None,
            };
            let run = convert::run_request_in(r, pinned)?;
            // In a region of hosts a launch is placed (and its capacity reserved) across
            // the hosts first, unless another host already did.
            self.cloud.run_instances_routed(&account, run).await
        })
        .await
    }

    async fn describe_instances(
        &self,
        req: Request<pb::DescribeInstancesRequest>,
    ) -> Result<Response<pb::DescribeInstancesResponse>, Status> {
        // Another host asks for its own part only (this_host_only): it routed the call.
        let origin = match (self.origin(&req), req.get_ref().this_host_only) {
            (_, true) => Origin::RegionHost,
            (o, false) => o,
        };
        self.handle_async("DescribeInstances", req, |account, r| async move {
            let ids = r.instance_ids.clone();
            let d = self
                .cloud
                .describe_instances_routed(
                    &account,
                    &DescribeInstances {
                        instance_ids: r.instance_ids,
                        filters: convert::filters(&r.filters),
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                    origin,
                )
                .await?;
            let show = if r.with_user_data {
                instance_message_with_user_data
            } else {
                instance_message
            };
            let mut instances: Vec<pb::Instance> = d.local.into_iter().map(show).collect();
            instances.extend(d.remote);
            Ok(pb::DescribeInstancesResponse {
                next_token: d.next_token,
                instances: in_request_order(&ids, instances, |i| i.instance_id.as_str()),
            })
        })
        .await
    }

    async fn stop_instances(
        &self,
        req: Request<pb::StopInstancesRequest>,
    ) -> Result<Response<pb::InstanceStateChanges>, Status> {
        let origin = self.origin(&req);
        self.handle_async("StopInstances", req, |account, r| async move {
            let op = StateOp::Stop { force: r.force };
            self.cloud
                .change_states_routed(&account, op, &r.instance_ids, origin)
                .await
                .map(changes)
        })
        .await
    }

    async fn start_instances(
        &self,
        req: Request<pb::StartInstancesRequest>,
    ) -> Result<Response<pb::InstanceStateChanges>, Status> {
        let origin = self.origin(&req);
        self.handle_async("StartInstances", req, |account, r| async move {
            self.cloud
                .change_states_routed(&account, StateOp::Start, &r.instance_ids, origin)
                .await
                .map(changes)
        })
        .await
    }

    async fn reboot_instances(
        &self,
        req: Request<pb::RebootInstancesRequest>,
    ) -> Result<Response<pb::RebootInstancesResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("RebootInstances", req, |account, r| async move {
            self.cloud
                .change_states_routed(&account, StateOp::Reboot, &r.instance_ids, origin)
                .await
                .map(|_| pb::RebootInstancesResponse {})
        })
        .await
    }

    async fn terminate_instances(
        &self,
        req: Request<pb::TerminateInstancesRequest>,
    ) -> Result<Response<pb::InstanceStateChanges>, Status> {
        let origin = self.origin(&req);
        self.handle_async("TerminateInstances", req, |account, r| async move {
            self.cloud
                .change_states_routed(&account, StateOp::Terminate, &r.instance_ids, origin)
                .await
                .map(changes)
        })
        .await
    }

    async fn modify_instance_attribute(
        &self,
        req: Request<pb::ModifyInstanceAttributeRequest>,
    ) -> Result<Response<pb::ModifyInstanceAttributeResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("ModifyInstanceAttribute", req, |account, r| async move {
            let change = InstanceAttributes {
                disable_api_termination: r.disable_api_termination,
                shutdown_behavior: (!r.instance_initiated_shutdown_behavior.is_empty())
                    .then_some(r.instance_initiated_shutdown_behavior),
                groups: r.groups,
                ena_support: r.ena_support,
            };
            self.cloud
                .modify_instance_attribute_routed(&account, &r.instance_id, &change, origin)
                .await
                .map(|()| pb::ModifyInstanceAttributeResponse {})
        })
        .await
    }

    async fn modify_instance_metadata_options(
        &self,
        req: Request<pb::ModifyInstanceMetadataOptionsRequest>,
    ) -> Result<Response<pb::ModifyInstanceMetadataOptionsResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async(
            "ModifyInstanceMetadataOptions",
            req,
            |account, r| async move {
                let c = MetadataChange::parse(
                    &r.http_tokens,
                    r.http_put_response_hop_limit,
                    &r.http_endpoint,
                    &r.instance_metadata_tags,
                )?
                .with_protocol_ipv6(&r.http_protocol_ipv6)?;
                let o = self
                    .cloud
                    .modify_metadata_options_routed(&account, &r.instance_id, c, origin)
                    .await?;
                Ok(pb::ModifyInstanceMetadataOptionsResponse {
                    instance_id: r.instance_id.clone(),
                    instance_metadata_options: Some(convert::metadata_options(&o)),
                })
            },
        )
        .await
    }

    async fn describe_instance_types(
        &self,
        req: Request<pb::DescribeInstanceTypesRequest>,
    ) -> Result<Response<pb::DescribeInstanceTypesResponse>, Status> {
        self.handle("DescribeInstanceTypes", req, |_, r| {
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
        })
    }

    async fn describe_instance_status(
        &self,
        req: Request<pb::DescribeInstanceStatusRequest>,
    ) -> Result<Response<pb::DescribeInstanceStatusResponse>, Status> {
        let origin = match (self.origin(&req), req.get_ref().this_host_only) {
            (_, true) => Origin::RegionHost,
            (o, false) => o,
        };
        self.handle_async("DescribeInstanceStatus", req, |account, r| async move {
            // The region's other hosts answer for theirs; a host found down cannot, so the
            // region says its instances are impaired, as EC2 does for a failed host.
            let ids = r.instance_ids.clone();
            let d = self
                .cloud
                .describe_instance_status_routed(
                    &account,
                    &DescribeInstanceStatus {
                        instance_ids: r.instance_ids,
                        filters: convert::filters(&r.filters),
                        include_all_instances: r.include_all_instances,
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                    origin,
                )
                .await?;
            let mut statuses: Vec<pb::InstanceStatus> =
                d.local.into_iter().map(instance_status).collect();
            statuses.extend(d.remote);
            Ok(pb::DescribeInstanceStatusResponse {
                next_token: d.next_token,
                instance_statuses: in_request_order(&ids, statuses, |s| s.instance_id.as_str()),
            })
        })
        .await
    }

    async fn get_console_output(
        &self,
        req: Request<pb::GetConsoleOutputRequest>,
    ) -> Result<Response<pb::GetConsoleOutputResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("GetConsoleOutput", req, |account, r| async move {
            self.cloud
                .console_output_routed(&account, &r.instance_id, origin)
                .await
                .map(|c| pb::GetConsoleOutputResponse {
                    instance_id: c.instance_id,
                    timestamp_unix: c.timestamp,
                    output: c.output,
                })
        })
        .await
    }

    type StreamConsoleStream = ConsoleStream;

    async fn stream_console(
        &self,
        req: Request<pb::StreamConsoleRequest>,
    ) -> Result<Response<Self::StreamConsoleStream>, Status> {
        let origin = self.origin(&req);
        self.handle_async("StreamConsole", req, |account, r| async move {
            // Another host's instance: its host's stream, relayed chunk by chunk.
            if let Some(remote) = self
                .cloud
                .console_stream_elsewhere(&account, &r.instance_id, origin)
                .await
            {
                let stream: ConsoleStream = Box::pin(remote?);
                return Ok(stream);
            }
            let rx = self.cloud.follow_console(&account, &r.instance_id)?;
            let stream: ConsoleStream = Box::pin(
                tokio_stream::wrappers::ReceiverStream::new(rx)
                    .map(|data| Ok(pb::ConsoleChunk { data })),
            );
            Ok(stream)
        })
        .await
    }

    async fn send_console_input(
        &self,
        req: Request<pb::SendConsoleInputRequest>,
    ) -> Result<Response<pb::SendConsoleInputResponse>, Status> {
        let origin = self.origin(&req);
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .console_input_routed(&account, &r.instance_id, &r.data, r.send_break, origin)
            .await
            .map(|d| pb::SendConsoleInputResponse {
                accepted: d.accepted as i64,
                break_sent: d.break_sent,
            });
        self.finish("SendConsoleInput", result)
    }
}
