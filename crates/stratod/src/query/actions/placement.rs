//! Placement groups and ModifyInstancePlacement.

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::{filters, tag_list, tags_for};
use crate::db::placement::PlacementGroup;
use crate::error::{ApiError, ApiResult, ErrorCode};

fn group(g: PlacementGroup) -> Value {
    Value::obj([
        ("GroupName", g.name.into()),
        ("GroupId", g.id.into()),
        ("Strategy", g.strategy.into()),
        (
            "PartitionCount",
            if g.partition_count > 0 {
                g.partition_count.into()
            } else {
                Value::Null
            },
        ),
        ("SpreadLevel", nonempty(&g.spread_level)),
        ("State", "available".into()),
        ("Tags", tag_list(&g.tags)),
    ])
}

/// CreatePlacementGroup.
pub async fn create(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if input.opt_str("LinkedGroupId").is_some() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "LinkedGroupId is not supported by strato.",
        ));
    }
    let partitions = i32::try_from(input.int("PartitionCount").unwrap_or(0))
        .map_err(|_| ApiError::invalid("PartitionCount is out of range."))?;
    let g = ctx
        .cloud
        .create_placement_group_regional(
            ctx.account(),
            input.str("GroupName"),
            input.str("Strategy"),
            partitions,
            input.str("SpreadLevel"),
            tags_for(input, "placement-group"),
        )
        .await?;
    Ok(Value::obj([("PlacementGroup", group(g))]))
}

/// DescribePlacementGroups.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_placement_groups(
        ctx.account(),
        &input.strs("GroupNames"),
        &input.strs("GroupIds"),
        &filters(input),
    )?;
    Ok(Value::obj([(
        "PlacementGroups",
        Value::list(list.into_iter().map(group)),
    )]))
}

/// DeletePlacementGroup.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_placement_group_regional(ctx.account(), input.str("GroupName"))
        .await?;
    Ok(Value::obj([]))
}

/// ModifyInstancePlacement (the placement group and partition; hosts and tenancy are
/// not strato's).
pub fn modify_instance_placement(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    for m in ["Affinity", "HostId", "HostResourceGroupArn", "Tenancy"] {
        if input
            .opt_str(m)
            .is_some_and(|v| !(m == "Tenancy" && v == "default"))
        {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!("{m} is not supported by strato: it has no dedicated hosts."),
            ));
        }
    }
    ctx.cloud.modify_instance_placement(
        ctx.account(),
        input.str("InstanceId"),
        input.str("GroupName"),
        input.str("GroupId"),
        i32::try_from(input.int("PartitionNumber").unwrap_or(0))
            .map_err(|_| ApiError::invalid("PartitionNumber is out of range."))?,
    )?;
    Ok(Value::obj([("Return", true.into())]))
}
