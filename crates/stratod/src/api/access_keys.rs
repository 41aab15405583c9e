//! The AccessKeys service: the EC2 Query API's credentials.

use strato_proto::v1 as pb;
use strato_proto::v1::access_keys_server::AccessKeys;
use tonic::{Request, Response, Status};

use super::Api;

#[tonic::async_trait]
impl AccessKeys for Api {
    async fn create_access_key(
        &self,
        req: Request<pb::CreateAccessKeyRequest>,
    ) -> Result<Response<pb::CreateAccessKeyResponse>, Status> {
        self.handle("CreateAccessKey", req, |account, r| {
            self.cloud
                .create_access_key(account, &r.account_id)
                .map(|k| pb::CreateAccessKeyResponse {
                    access_key_id: k.id,
                    secret_access_key: k.secret,
                    account_id: k.owner,
                    create_time_unix: k.created,
                })
        })
    }

    async fn describe_access_keys(
        &self,
        req: Request<pb::DescribeAccessKeysRequest>,
    ) -> Result<Response<pb::DescribeAccessKeysResponse>, Status> {
        self.handle("DescribeAccessKeys", req, |account, r| {
            self.cloud
                .describe_access_keys(account, &r.account_id, r.all)
                .map(|list| pb::DescribeAccessKeysResponse {
                    access_keys: list
                        .into_iter()
                        .map(|k| pb::AccessKeyInfo {
                            access_key_id: k.id,
                            account_id: k.account,
                            create_time_unix: k.created,
                        })
                        .collect(),
                })
        })
    }

    async fn delete_access_key(
        &self,
        req: Request<pb::DeleteAccessKeyRequest>,
    ) -> Result<Response<pb::DeleteAccessKeyResponse>, Status> {
        self.handle("DeleteAccessKey", req, |account, r| {
            self.cloud
                .delete_access_key(account, &r.access_key_id)
                .map(|()| pb::DeleteAccessKeyResponse {})
        })
    }
}
