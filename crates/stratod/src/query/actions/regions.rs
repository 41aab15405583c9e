//! DescribeRegions and DescribeAvailabilityZones.

use super::super::value::Value;
use super::super::Ctx;
use super::filters;
use crate::cloud::placement::regions;
use crate::error::ApiResult;

/// EC2's opt-in status of regions and zones that need no opt-in.
const OPT_IN: &str = "opt-in-not-required";

/// DescribeRegions.
pub fn describe_regions(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list =
        regions::describe_regions(&ctx.cloud.cfg, &input.strs("RegionNames"), &filters(input))?;
    Ok(Value::obj([(
        "Regions",
        Value::list(list.into_iter().map(|r| {
            Value::obj([
                ("RegionName", r.name.into()),
                ("Endpoint", r.endpoint.into()),
                ("OptInStatus", OPT_IN.into()),
            ])
        })),
    )]))
}

/// DescribeAvailabilityZones.
pub fn describe_zones(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = regions::describe_zones(
        &ctx.cloud.cfg,
        &input.strs("ZoneNames"),
        &input.strs("ZoneIds"),
        &filters(input),
    )?;
    Ok(Value::obj([(
        "AvailabilityZones",
        Value::list(list.into_iter().map(|z| {
            Value::obj([
                ("ZoneName", z.name.into()),
                ("ZoneId", z.id.into()),
                ("GroupName", z.region.clone().into()),
                ("NetworkBorderGroup", z.region.clone().into()),
                ("RegionName", z.region.into()),
                ("State", "available".into()),
                ("ZoneType", "availability-zone".into()),
                ("OptInStatus", OPT_IN.into()),
            ])
        })),
    )]))
}
