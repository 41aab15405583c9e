//! The Usage service: metering records for the calling account.

use strato_proto::v1 as pb;
use strato_proto::v1::usage_server::Usage;
use tonic::{Request, Response, Status};

use super::Api;

#[tonic::async_trait]
impl Usage for Api {
    async fn describe_usage(
        &self,
        req: Request<pb::DescribeUsageRequest>,
    ) -> Result<Response<pb::DescribeUsageResponse>, Status> {
        self.handle("DescribeUsage", req, |account, r| {
            self.cloud
                .describe_usage(account, r.start_unix, r.end_unix)
                .map(|records| pb::DescribeUsageResponse {
                    records: records
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
        })
    }
}
