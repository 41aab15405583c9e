//! Each Query action: the parsed input to one domain call, its result to the model's
//! output members. Grouped like the domain (`cloud/`).

use super::value::Value;
use super::Ctx;
use crate::error::{ApiError, ApiResult, ErrorCode};

mod regions;

/// Answers an EC2 action.
pub async fn ec2(ctx: &Ctx<'_>, action: &str, input: &Value) -> ApiResult<Value> {
    let out = match action {
        "DescribeRegions" => regions::describe_regions(ctx, input),
        "DescribeAvailabilityZones" => regions::describe_zones(ctx, input),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidAction,
                format!("The action {action} is not valid for this web service."),
            ))
        }
    }?;
    dry_run(input, out)
}

/// Answers an STS action.
pub fn sts(ctx: &Ctx<'_>, action: &str, _input: &Value) -> ApiResult<Value> {
    match action {
        "GetCallerIdentity" => {
            let account = ctx.account();
            Ok(Value::obj([
                ("Account", account.into()),
                ("Arn", format!("arn:aws:iam::{account}:root").into()),
                ("UserId", account.into()),
            ]))
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

/// A read-only call with DryRun ran its checks and answers DryRunOperation instead.
fn dry_run(input: &Value, out: Value) -> ApiResult<Value> {
    if input.bool("DryRun") == Some(true) {
        return Err(dry_run_ok());
    }
    Ok(out)
}

/// EC2's answer to a dry run that would have succeeded.
pub fn dry_run_ok() -> ApiError {
    ApiError::new(
        ErrorCode::DryRunOperation,
        "Request would have succeeded, but DryRun flag is set.",
    )
}

/// Filters of a Describe call, for the domain.
pub fn filters(input: &Value) -> Vec<crate::cloud::filters::Filter> {
    input
        .items("Filters")
        .iter()
        .map(|f| crate::cloud::filters::Filter {
            name: f.str("Name").to_string(),
            values: f.strs("Values"),
        })
        .collect()
}
