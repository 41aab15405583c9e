//! Instances, instance types, status checks and consoles.

use strato_proto::v1::{
    DescribeInstanceStatusRequest, DescribeInstanceTypesRequest, DescribeInstancesRequest,
    GetConsoleOutputRequest, InstanceState, InstanceStateChanges, ModifyInstanceAttributeRequest,
    ModifyInstanceMetadataOptionsRequest, RebootInstancesRequest, RunInstancesRequest,
    StartInstancesRequest, StopInstancesRequest, TerminateInstancesRequest,
};

use crate::args::compute::{
    Console, DescribeInstanceStatus, DescribeInstanceTypes, DescribeInstances, GetConsoleOutput,
    Instances, InstancesWithWait, ModifyInstanceAttribute, ModifyInstanceMetadataOptions,
    RunInstances, StopInstances,
};
use crate::args::Wait;
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{ControlView, Transition, View};
use crate::parse::{flatten, tags_for};
use crate::wait;

/// `run-instances`
pub async fn run_instances(conn: &Conn, a: RunInstances) -> Result<View, CliError> {
    // The instance's tags, and those of the volumes the launch creates.
    let (volume_specs, specs): (Vec<_>, Vec<_>) = flatten(a.tag_specifications)
        .into_iter()
        .partition(|s| s.resource_type == "volume");
    let tags = tags_for("instance", specs, flatten(a.tags)).map_err(CliError::Usage)?;
    let volume_tags = tags_for("volume", volume_specs, Vec::new()).map_err(CliError::Usage)?;
    let request = RunInstancesRequest {
        volume_tags,
        image_id: a.image_id.unwrap_or_default(),
        launch_template: a.launch_template,
        has_disable_api_termination: a.disable_api_termination || a.enable_api_termination,
        instance_type: a.instance_type.unwrap_or_default(),
        min_count: a.count.min,
        max_count: a.count.max,
        subnet_id: a.subnet_id.unwrap_or_default(),
        security_group_ids: a.security_group_ids,
        security_groups: a.security_groups,
        user_data: a.user_data.map(|u| u.0).unwrap_or_default(),
        block_device_mappings: flatten(a.block_device_mappings),
        key_name: a.key_name.unwrap_or_default(),
        iam_instance_profile: a.iam_instance_profile.unwrap_or_default(),
        placement: a.placement,
        instance_initiated_shutdown_behavior: a
            .instance_initiated_shutdown_behavior
            .unwrap_or_default(),
        disable_api_termination: a.disable_api_termination,
        tags,
        client_token: a.client_token.unwrap_or_default(),
        metadata_options: a.metadata_options,
        associate_public_ip_address: a.associate_public_ip_address,
        has_associate_public_ip_address: a.associate_public_ip_address
            || a.no_associate_public_ip_address,
        ipv6_address_count: a.ipv6_address_count,
        ipv6_addresses: a.ipv6_addresses,
        region_placement: None,
    };
    let mut reservation = conn
        .compute()
        .run_instances(request)
        .await
        .map_err(conn.error("RunInstances"))?
        .into_inner();
    // An empty ID list would describe every instance, so only wait for what was launched.
    if a.wait.wait && !reservation.instances.is_empty() {
        let ids: Vec<String> = reservation
            .instances
            .iter()
            .map(|i| i.instance_id.clone())
            .collect();
        reservation.instances = wait::instances(conn, &ids, "running", a.wait).await?;
    }
    Ok(View::Reservation(reservation))
}

/// `describe-instances`, following `next_token` through every page.
pub async fn describe_instances(conn: &Conn, a: DescribeInstances) -> Result<View, CliError> {
    let request = DescribeInstancesRequest {
        instance_ids: a.instance_ids,
        filters: flatten(a.filters),
        max_results: a.page_size.unwrap_or_default(),
        ..Default::default()
    };
    let client = conn.compute();
    let err = conn.error("DescribeInstances");
    let items = super::all_pages(|next_token| {
        let mut client = client.clone();
        let request = DescribeInstancesRequest {
            next_token,
            ..request.clone()
        };
        let err = &err;
        async move {
            let page = client
                .describe_instances(request)
                .await
                .map_err(err)?
                .into_inner();
            Ok((page.instances, page.next_token))
        }
    })
    .await?;
    Ok(View::Instances(items))
}

/// `describe-instance-status`, following `next_token` through every page.
pub async fn describe_instance_status(
    conn: &Conn,
    a: DescribeInstanceStatus,
) -> Result<View, CliError> {
    let request = DescribeInstanceStatusRequest {
        instance_ids: a.instance_ids,
        filters: flatten(a.filters),
        include_all_instances: a.include_all_instances,
        ..Default::default()
    };
    let client = conn.compute();
    let err = conn.error("DescribeInstanceStatus");
    let items = super::all_pages(|next_token| {
        let mut client = client.clone();
        let request = DescribeInstanceStatusRequest {
            next_token,
            ..request.clone()
        };
        let err = &err;
        async move {
            let page = client
                .describe_instance_status(request)
                .await
                .map_err(err)?
                .into_inner();
            Ok((page.instance_statuses, page.next_token))
        }
    })
    .await?;
    Ok(View::InstanceStatuses(items))
}

/// `stop-instances`
pub async fn stop_instances(conn: &Conn, a: StopInstances) -> Result<View, CliError> {
    let request = StopInstancesRequest {
        instance_ids: a.instance_ids.clone(),
        force: a.force,
    };
    let changes = conn
        .compute()
        .stop_instances(request)
        .await
        .map_err(conn.error("StopInstances"))?
        .into_inner();
    settle(conn, Transition::Stopping, changes, &a.instance_ids, a.wait).await
}

/// `start-instances`
pub async fn start_instances(conn: &Conn, a: InstancesWithWait) -> Result<View, CliError> {
    let request = StartInstancesRequest {
        instance_ids: a.instance_ids.clone(),
    };
    let changes = conn
        .compute()
        .start_instances(request)
        .await
        .map_err(conn.error("StartInstances"))?
        .into_inner();
    settle(conn, Transition::Starting, changes, &a.instance_ids, a.wait).await
}

/// `terminate-instances`
pub async fn terminate_instances(conn: &Conn, a: InstancesWithWait) -> Result<View, CliError> {
    let request = TerminateInstancesRequest {
        instance_ids: a.instance_ids.clone(),
    };
    let changes = conn
        .compute()
        .terminate_instances(request)
        .await
        .map_err(conn.error("TerminateInstances"))?
        .into_inner();
    settle(
        conn,
        Transition::Terminating,
        changes,
        &a.instance_ids,
        a.wait,
    )
    .await
}

/// With `--wait`, waits for the transition's end state and reports it as the current
/// state; without, reports the changes as the daemon returned them.
async fn settle(
    conn: &Conn,
    transition: Transition,
    changes: InstanceStateChanges,
    ids: &[String],
    wait: Wait,
) -> Result<View, CliError> {
    let mut changes = changes.changes;
    if wait.wait {
        let (target, code) = match transition {
            Transition::Stopping => ("stopped", strato_proto::state::STOPPED),
            Transition::Starting => ("running", strato_proto::state::RUNNING),
            Transition::Terminating => ("terminated", strato_proto::state::TERMINATED),
        };
        wait::instances(conn, ids, target, wait).await?;
        for change in &mut changes {
            change.current_state = Some(InstanceState {
                code,
                name: target.to_owned(),
            });
        }
    }
    Ok(View::StateChanges(transition, changes))
}

/// `reboot-instances`
pub async fn reboot_instances(conn: &Conn, a: Instances) -> Result<View, CliError> {
    let request = RebootInstancesRequest {
        instance_ids: a.instance_ids,
    };
    conn.compute()
        .reboot_instances(request)
        .await
        .map_err(conn.error("RebootInstances"))?;
    Ok(View::Empty)
}

/// `modify-instance-attribute`
pub async fn modify_instance_attribute(
    conn: &Conn,
    a: ModifyInstanceAttribute,
) -> Result<View, CliError> {
    // Unset fields leave the attribute as it is.
    let disable_api_termination = if a.disable_api_termination {
        Some(true)
    } else if a.no_disable_api_termination {
        Some(false)
    } else {
        None
    };
    let request = ModifyInstanceAttributeRequest {
        instance_id: a.instance_id,
        disable_api_termination,
        instance_initiated_shutdown_behavior: a
            .instance_initiated_shutdown_behavior
            .unwrap_or_default(),
        groups: a.groups,
        ena_support: if a.ena_support {
            Some(true)
        } else if a.no_ena_support {
            Some(false)
        } else {
            None
        },
    };
    conn.compute()
        .modify_instance_attribute(request)
        .await
        .map_err(conn.error("ModifyInstanceAttribute"))?;
    Ok(View::Empty)
}

/// `modify-instance-metadata-options`
pub async fn modify_instance_metadata_options(
    conn: &Conn,
    a: ModifyInstanceMetadataOptions,
) -> Result<View, CliError> {
    let request = ModifyInstanceMetadataOptionsRequest {
        instance_id: a.instance_id,
        http_tokens: a.http_tokens.unwrap_or_default(),
        http_put_response_hop_limit: a.http_put_response_hop_limit.unwrap_or_default(),
        http_endpoint: a.http_endpoint.unwrap_or_default(),
        instance_metadata_tags: a.instance_metadata_tags.unwrap_or_default(),
        http_protocol_ipv6: a.http_protocol_ipv6.unwrap_or_default(),
    };
    let r = conn
        .compute()
        .modify_instance_metadata_options(request)
        .await
        .map_err(conn.error("ModifyInstanceMetadataOptions"))?
        .into_inner();
    Ok(View::Control(ControlView::MetadataOptions(r)))
}

/// `describe-instance-types`
pub async fn describe_instance_types(
    conn: &Conn,
    a: DescribeInstanceTypes,
) -> Result<View, CliError> {
    let request = DescribeInstanceTypesRequest {
        instance_types: a.instance_types,
    };
    let response = conn
        .compute()
        .describe_instance_types(request)
        .await
        .map_err(conn.error("DescribeInstanceTypes"))?;
    Ok(View::InstanceTypes(response.into_inner().instance_types))
}

/// `get-console-output`
pub async fn get_console_output(conn: &Conn, a: GetConsoleOutput) -> Result<View, CliError> {
    let request = GetConsoleOutputRequest {
        instance_id: a.instance_id,
    };
    let response = conn
        .compute()
        .get_console_output(request)
        .await
        .map_err(conn.error("GetConsoleOutput"))?;
    Ok(View::ConsoleOutput(response.into_inner()))
}

/// `console`: the instance's serial console, live, with the keyboard (see `crate::console`).
pub async fn console(conn: &Conn, a: Console) -> Result<View, CliError> {
    crate::console::run(conn, a.id()).await?;
    Ok(View::Empty)
}
