//! Metering.

use strato_proto::v1::DescribeUsageRequest;

use crate::args::Usage;
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::View;

/// `usage` (also `describe-usage`)
pub async fn describe_usage(conn: &Conn, a: Usage) -> Result<View, CliError> {
    if let (Some(start), Some(end)) = (a.start, a.end) {
        if start > end {
            return Err(CliError::Usage("--start is after --end".into()));
        }
    }
    // 0 means "since the beginning" and "now".
    let request = DescribeUsageRequest {
        start_unix: a.start.unwrap_or_default(),
        end_unix: a.end.unwrap_or_default(),
    };
    let response = conn
        .usage()
        .describe_usage(request)
        .await
        .map_err(conn.error("DescribeUsage"))?;
    Ok(View::Usage(response.into_inner().records))
}
