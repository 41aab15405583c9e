//! Security groups and their rules.

use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page, tag_list, tags_for};
use crate::cloud::network::security_groups::{GroupView, Permission};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The permissions of a rules request: `IpPermissions`, or the older flat form
/// (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`, `SourceSecurityGroupName`) that the aws
/// CLI's `--protocol/--port/--cidr` and older SDKs send.
pub(super) fn permissions_in(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Vec<Permission>> {
    let mut out = Vec::new();
    for p in input.items("IpPermissions") {
        let mut groups = Vec::new();
        for pair in p.items("UserIdGroupPairs") {
            groups.push(peer_group(ctx, pair.str("GroupId"), pair.str("GroupName"))?);
        }
        out.push(Permission {
            protocol: p.str("IpProtocol").to_string(),
            from_port: p.int("FromPort").map(port).transpose()?,
            to_port: p.int("ToPort").map(port).transpose()?,
            cidrs: p
                .items("IpRanges")
                .iter()
                .map(|r| r.str("CidrIp").to_string())
                .collect(),
            cidrs6: p
                .items("Ipv6Ranges")
                .iter()
                .map(|r| r.str("CidrIpv6").to_string())
                .collect(),
            groups,
        });
    }
    let flat = [
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SourceSecurityGroupName",
    ];
    if flat.iter().any(|k| input.get(k).is_some()) {
        if !out.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "IpPermissions and the flat rule parameters (IpProtocol, CidrIp, ...) cannot be used together.",
            ));
        }
        let source = input.str("SourceSecurityGroupName");
        out.push(Permission {
            protocol: input.str("IpProtocol").to_string(),
            from_port: input.int("FromPort").map(port).transpose()?,
            to_port: input.int("ToPort").map(port).transpose()?,
            cidrs: input
                .opt_str("CidrIp")
                .map(str::to_string)
                .into_iter()
                .collect(),
            cidrs6: Vec::new(),
            groups: if source.is_empty() {
                vec![]
            } else {
                vec![peer_group(ctx, "", source)?]
            },
        });
    }
    Ok(out)
}

fn port(p: i64) -> ApiResult<i32> {
    i32::try_from(p).map_err(|_| ApiError::invalid(format!("Invalid port {p}.")))
}

/// A peer group by ID, or by name as EC2 resolves names.
fn peer_group(ctx: &Ctx<'_>, id: &str, name: &str) -> ApiResult<String> {
    if !id.is_empty() {
        return Ok(id.to_string());
    }
    Ok(ctx.cloud.group_by_id_or_name(ctx.account(), "", name)?.id)
}

fn permissions(p: &[Permission], owner: &str) -> Value {
    Value::list(p.iter().map(|p| {
        Value::obj([
            ("IpProtocol", (&p.protocol).into()),
            ("FromPort", p.from_port.map(Value::from).into()),
            ("ToPort", p.to_port.map(Value::from).into()),
            (
                "IpRanges",
                Value::list(p.cidrs.iter().map(|c| Value::obj([("CidrIp", c.into())]))),
            ),
            (
                "Ipv6Ranges",
                Value::list(
                    p.cidrs6
                        .iter()
                        .map(|c| Value::obj([("CidrIpv6", c.into())])),
                ),
            ),
            ("PrefixListIds", Value::List(vec![])),
            (
                "UserIdGroupPairs",
                Value::list(
                    p.groups
                        .iter()
                        .map(|g| Value::obj([("GroupId", g.into()), ("UserId", owner.into())])),
                ),
            ),
        ])
    }))
}

fn group(v: GroupView) -> Value {
    let g = v.group;
    Value::obj([
        ("GroupId", (&g.id).into()),
        ("GroupName", (&g.name).into()),
        ("Description", (&g.description).into()),
        ("VpcId", (&g.vpc_id).into()),
        ("OwnerId", (&g.owner).into()),
        ("IpPermissions", permissions(&v.ingress, &g.owner)),
        ("IpPermissionsEgress", permissions(&v.egress, &g.owner)),
        ("Tags", tag_list(&g.tags)),
    ])
}

/// CreateSecurityGroup.
pub async fn create(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let g = ctx
        .cloud
        .create_security_group_regional(
            ctx.account(),
            input.str("GroupName"),
            input.str("Description"),
            input.str("VpcId"),
            tags_for(input, "security-group"),
        )
        .await?;
    Ok(Value::obj([
        ("GroupId", (&g.id).into()),
        ("Tags", tag_list(&g.tags)),
    ]))
}

/// DeleteSecurityGroup.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let g = ctx.cloud.group_by_id_or_name(
        ctx.account(),
        input.str("GroupId"),
        input.str("GroupName"),
    )?;
    ctx.cloud
        .delete_security_group_regional(ctx.account(), &g.id, "")
        .await?;
    Ok(Value::obj([
        ("GroupId", g.id.into()),
        ("Return", true.into()),
    ]))
}

/// DescribeSecurityGroups.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_security_groups(
        ctx.account(),
        &input.strs("GroupIds"),
        &input.strs("GroupNames"),
        &filters(input),
    )?;
    let (list, next) = page(list, input)?;
    Ok(Value::obj([
        ("SecurityGroups", Value::list(list.into_iter().map(group))),
        ("NextToken", next),
    ]))
}

/// Authorize / Revoke, Ingress / Egress.
pub async fn rules(
    ctx: &Ctx<'_>,
    input: &Value,
    authorize: bool,
    egress: bool,
) -> ApiResult<Value> {
    if !input.strs("SecurityGroupRuleIds").is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "Security group rule IDs are not supported by strato: name the rule by its permissions.",
        ));
    }
    let perms = permissions_in(ctx, input)?;
    let (id, name) = (input.str("GroupId"), input.str("GroupName"));
    if authorize {
        ctx.cloud
            .authorize_regional(ctx.account(), id, name, egress, &perms)
            .await?;
    } else {
        ctx.cloud
            .revoke_regional(ctx.account(), id, name, egress, &perms)
            .await?;
    }
    Ok(Value::obj([("Return", true.into())]))
}
