//! The instance profile associations: Associate, Replace, Disassociate and Describe
//! IamInstanceProfileAssociations.

use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page};
use crate::cloud::identity::associations::AssociationInfo;
use crate::error::{ApiError, ApiResult};

fn association(a: AssociationInfo) -> Value {
    Value::obj([
        ("AssociationId", a.id.into()),
        ("InstanceId", a.instance_id.into()),
        (
            "IamInstanceProfile",
            Value::obj([("Arn", a.profile_arn.into()), ("Id", a.profile_id.into())]),
        ),
        ("State", a.state.into()),
        ("Timestamp", Value::Time(a.created)),
    ])
}

/// The profile an `IamInstanceProfileSpecification` names: its ARN or its name.
pub(super) fn profile(input: &Value) -> ApiResult<String> {
    let p = input
        .get("IamInstanceProfile")
        .ok_or_else(|| ApiError::missing("IamInstanceProfile"))?;
    match (p.opt_str("Arn"), p.opt_str("Name")) {
        (Some(arn), _) if !arn.is_empty() => Ok(arn.to_string()),
        (_, Some(name)) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(ApiError::missing("IamInstanceProfile.Name")),
    }
}

/// AssociateIamInstanceProfile.
pub fn associate(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let a = ctx.cloud.associate_iam_instance_profile(
        ctx.account(),
        input.str("InstanceId"),
        &profile(input)?,
    )?;
    Ok(Value::obj([(
        "IamInstanceProfileAssociation",
        association(a),
    )]))
}

/// ReplaceIamInstanceProfileAssociation.
pub fn replace(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let a = ctx.cloud.replace_iam_instance_profile_association(
        ctx.account(),
        input.str("AssociationId"),
        &profile(input)?,
    )?;
    Ok(Value::obj([(
        "IamInstanceProfileAssociation",
        association(a),
    )]))
}

/// DisassociateIamInstanceProfile.
pub fn disassociate(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let a = ctx
        .cloud
        .disassociate_iam_instance_profile(ctx.account(), input.str("AssociationId"))?;
    Ok(Value::obj([(
        "IamInstanceProfileAssociation",
        association(a),
    )]))
}

/// DescribeIamInstanceProfileAssociations.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_iam_instance_profile_associations(
        ctx.account(),
        &input.strs("AssociationIds"),
        &filters(input),
    )?;
    let (items, next) = page(list, input)?;
    Ok(Value::obj([
        (
            "IamInstanceProfileAssociations",
            Value::list(items.into_iter().map(association)),
        ),
        ("NextToken", next),
    ]))
}
