//! The Tags service.

use strato_proto::v1 as pb;
use strato_proto::v1::tags_server::Tags;
use tonic::{Request, Response, Status};

use super::{convert, Api};
use crate::cloud::paging::PageRequest;
use crate::cloud::tags::TagKey;

#[tonic::async_trait]
impl Tags for Api {
    async fn create_tags(
        &self,
        req: Request<pb::CreateTagsRequest>,
    ) -> Result<Response<pb::CreateTagsResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("CreateTags", req, |account, r| async move {
            self.cloud
                .create_tags_routed(&account, &r.resources, &convert::tags_in(&r.tags), origin)
                .await
                .map(|_| pb::CreateTagsResponse {})
        })
        .await
    }

    async fn delete_tags(
        &self,
        req: Request<pb::DeleteTagsRequest>,
    ) -> Result<Response<pb::DeleteTagsResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DeleteTags", req, |account, r| async move {
            let keys: Vec<TagKey> = r
                .tags
                .into_iter()
                .map(|t| TagKey {
                    key: t.key,
                    value: t.value,
                })
                .collect();
            self.cloud
                .delete_tags_routed(&account, &r.resources, &keys, origin)
                .await
                .map(|_| pb::DeleteTagsResponse {})
        })
        .await
    }

    async fn describe_tags(
        &self,
        req: Request<pb::DescribeTagsRequest>,
    ) -> Result<Response<pb::DescribeTagsResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DescribeTags", req, |account, r| async move {
            self.cloud
                .describe_tags_routed(
                    &account,
                    &convert::filters(&r.filters),
                    &PageRequest {
                        max_results: r.max_results,
                        next_token: r.next_token,
                    },
                    origin,
                )
                .await
                .map(|page| pb::DescribeTagsResponse {
                    tags: page
                        .items
                        .into_iter()
                        .map(|d| pb::TagDescription {
                            key: d.tag.key,
                            value: d.tag.value,
                            resource_id: d.resource_id,
                            resource_type: d.resource_type.into(),
                        })
                        .collect(),
                    next_token: page.next_token,
                })
        })
        .await
    }
}
