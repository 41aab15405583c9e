//! Tags on any resource.

use strato_proto::v1::{CreateTagsRequest, DeleteTagsRequest, DescribeTagsRequest};

use crate::args::tags::{CreateTags, DeleteTags, DescribeTags};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{ControlView, View};
use crate::parse::flatten;

/// `create-tags`
pub async fn create_tags(conn: &Conn, a: CreateTags) -> Result<View, CliError> {
    let request = CreateTagsRequest {
        resources: a.resources,
        tags: flatten(a.tags),
    };
    conn.tags()
        .create_tags(request)
        .await
        .map_err(conn.error("CreateTags"))?;
    Ok(View::Empty)
}

/// `delete-tags`
pub async fn delete_tags(conn: &Conn, a: DeleteTags) -> Result<View, CliError> {
    let request = DeleteTagsRequest {
        resources: a.resources,
        tags: flatten(a.tags),
    };
    conn.tags()
        .delete_tags(request)
        .await
        .map_err(conn.error("DeleteTags"))?;
    Ok(View::Empty)
}

/// `describe-tags`, following every page.
pub async fn describe_tags(conn: &Conn, a: DescribeTags) -> Result<View, CliError> {
    let request = DescribeTagsRequest {
        filters: flatten(a.filters),
        max_results: a.page_size.unwrap_or_default(),
        next_token: String::new(),
    };
    let client = conn.tags();
    let err = conn.error("DescribeTags");
    let items = super::all_pages(|next_token| {
        let mut client = client.clone();
        let request = DescribeTagsRequest {
            next_token,
            ..request.clone()
        };
        let err = &err;
        async move {
            let page = client
                .describe_tags(request)
                .await
                .map_err(err)?
                .into_inner();
            Ok((page.tags, page.next_token))
        }
    })
    .await?;
    Ok(View::Control(ControlView::Tags(items)))
}
