//! The Usage service: metering records for the calling account.

use strato_proto::v1 as pb;
use strato_proto::v1::usage_server::Usage;
use tonic::{Request, Response, Status};

use super::Api;
use crate::error::ApiError;
use crate::metering;

#[tonic::async_trait]
impl Usage for Api {
    async fn describe_usage(
        &self,
        req: Request<pb::DescribeUsageRequest>,
    ) -> Result<Response<pb::DescribeUsageResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = (|| {
            let now = crate::db::now_ms();
            let start = r.start_unix.saturating_mul(1000);
            let end = if r.end_unix == 0 {
                now
            } else {
                r.end_unix.saturating_mul(1000).min(now)
            };
            if r.start_unix < 0 || r.end_unix < 0 || end < start {
                return Err(ApiError::invalid(
                    "The time window is not valid: 0 <= start <= end.",
                ));
            }
            let periods = self.cloud.db.periods(&account, start, end)?;
            Ok(pb::DescribeUsageResponse {
                records: metering::summarize(&periods, start, end)
                    .into_iter()
                    .map(|u| pb::UsageRecord {
                        resource_id: u.resource_id,
                        resource_type: u.resource_type,
                        kind: u.kind,
                        seconds: u.seconds,
                        gib_seconds: u.gib_seconds,
                    })
                    .collect(),
            })
        })();
        self.finish("DescribeUsage", result)
    }
}
