//! Instance state changes and instance types.

use super::super::value::Value;
use super::super::Ctx;
use super::{page, state};
use crate::catalog;
use crate::cloud::compute::instances::Change;
use crate::cluster::route::{Origin, StateOp};
use crate::error::ApiResult;

fn changes(list: Vec<Change>) -> Value {
    Value::list(list.into_iter().map(|c| {
        Value::obj([
            ("InstanceId", c.id.into()),
            ("PreviousState", state(c.previous)),
            ("CurrentState", state(c.current)),
        ])
    }))
}

/// A state change of `InstanceIds`, routed to each instance's host.
async fn change(ctx: &Ctx<'_>, input: &Value, op: StateOp) -> ApiResult<Vec<Change>> {
    ctx.cloud
        .change_states_routed(
            ctx.account(),
            op,
            &input.strs("InstanceIds"),
            Origin::Caller,
        )
        .await
}

/// StopInstances.
pub async fn stop(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let force = input.bool("Force").unwrap_or(false);
    let c = change(ctx, input, StateOp::Stop { force }).await?;
    Ok(Value::obj([("StoppingInstances", changes(c))]))
}

/// StartInstances.
pub async fn start(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let c = change(ctx, input, StateOp::Start).await?;
    Ok(Value::obj([("StartingInstances", changes(c))]))
}

/// TerminateInstances.
pub async fn terminate(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let c = change(ctx, input, StateOp::Terminate).await?;
    Ok(Value::obj([("TerminatingInstances", changes(c))]))
}

/// RebootInstances.
pub async fn reboot(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    change(ctx, input, StateOp::Reboot).await?;
    Ok(Value::obj([]))
}

/// DescribeInstanceTypes. strato's types are KVM guests of the host's CPU: no burstable
/// credits (Terraform then skips DescribeInstanceCreditSpecifications), EBS-backed and
/// instance-store roots, x86_64.
pub fn describe_types(_ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let names = input.strs("InstanceTypes");
    let types = if names.is_empty() {
        catalog::all()
    } else {
        names
            .iter()
            .map(|t| catalog::lookup(t))
            .collect::<ApiResult<_>>()?
    };
    let (types, next) = page(types, input)?;
    Ok(Value::obj([
        (
            "InstanceTypes",
            Value::list(types.into_iter().map(|t| {
                Value::obj([
                    ("InstanceType", t.name.into()),
                    ("CurrentGeneration", true.into()),
                    ("FreeTierEligible", false.into()),
                    ("BurstablePerformanceSupported", false.into()),
                    ("BareMetal", false.into()),
                    ("Hypervisor", "nitro".into()),
                    ("SupportedUsageClasses", Value::list(["on-demand"])),
                    ("SupportedRootDeviceTypes", Value::list(["ebs"])),
                    ("SupportedVirtualizationTypes", Value::list(["hvm"])),
                    (
                        "ProcessorInfo",
                        Value::obj([("SupportedArchitectures", Value::list(["x86_64"]))]),
                    ),
                    (
                        "VCpuInfo",
                        Value::obj([
                            ("DefaultVCpus", i64::from(t.vcpus).into()),
                            ("DefaultCores", i64::from(t.vcpus).into()),
                            ("DefaultThreadsPerCore", 1i64.into()),
                        ]),
                    ),
                    (
                        "MemoryInfo",
                        Value::obj([("SizeInMiB", i64::from(t.memory_mib).into())]),
                    ),
                    (
                        "InstanceStorageSupported",
                        (t.instance_store_gib > 0).into(),
                    ),
                    (
                        "InstanceStorageInfo",
                        if t.instance_store_gib > 0 {
                            Value::obj([("TotalSizeInGB", i64::from(t.instance_store_gib).into())])
                        } else {
                            Value::Null
                        },
                    ),
                ])
            })),
        ),
        ("NextToken", next),
    ]))
}
