//! The calls that create, change and delete AMIs in a region of hosts, for both front ends:
//! each runs on the host asked, then the region's record follows (`mirror`); without a
//! region they are the single host's calls. The AMI's files stay on the host that made it
//! until another host's launch pulls them (`cloud::storage::pull`). CreateImage runs on the
//! instance's host, where its volumes' files are, and the AMI is that host's.

use std::sync::Arc;

use strato_proto::v1 as pb;

use super::forward;
use super::route::{Origin, Resource};
use super::volumes::Place;
use crate::cloud::storage::images::RegisterRequest;
use crate::cloud::storage::shared_images::Images;
use crate::cloud::Cloud;
use crate::db::images::Image;
use crate::error::ApiResult;

impl Cloud {
    /// Publishes an image just made here; a name the account has in the region already
    /// refuses it, and removes it here again with the snapshot rows the call made.
    async fn share_image(&self, image: Image) -> ApiResult<Image> {
        if let Err(e) = self.share_new(&Images, &image.id).await {
            for m in image.mappings.iter().filter(|m| !m.snapshot_id.is_empty()) {
                self.forget_made_snapshot(&m.snapshot_id);
            }
            return Err(e);
        }
        Ok(image)
    }

    /// RegisterImage, unique by name in the region.
    pub async fn register_image_regional(
        self: &Arc<Self>,
        account: &str,
        req: RegisterRequest,
    ) -> ApiResult<Image> {
        let i = self.register_image(account, req)?;
        self.share_image(i).await
    }

    /// CreateImage, unique by name in the region.
    pub async fn create_image_regional(
        self: &Arc<Self>,
        account: &str,
        instance_id: &str,
        name: &str,
        description: &str,
        no_reboot: bool,
    ) -> ApiResult<Image> {
        let i = self.create_image(account, instance_id, name, description, no_reboot)?;
        self.share_image(i).await
    }

    /// CreateImage on the instance's host (its volumes are files there), which publishes
    /// the AMI; the answer is the new AMI's ID.
    pub async fn create_image_routed(
        self: &Arc<Self>,
        account: &str,
        instance_id: &str,
        name: &str,
        description: &str,
        no_reboot: bool,
        origin: Origin,
    ) -> ApiResult<String> {
        let place = self
            .place(Resource::Instance, account, instance_id, origin)
            .await;
        if let (Place::Host(host), Some(link)) = (place, self.link()) {
            let msg = pb::CreateImageRequest {
                instance_id: instance_id.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                no_reboot,
            };
            let r = link
                .on(
                    &host,
                    account,
                    msg,
                    |mut c: forward::Images, r| async move { c.create_image(r).await },
                )
                .await?;
            return Ok(r.image_id);
        }
        let i = Box::pin(self.create_image_regional(
            account,
            instance_id,
            name,
            description,
            no_reboot,
        ))
        .await?;
        Ok(i.id)
    }

    /// CopyImage (from a peer region into this one), unique by name in the region.
    pub async fn copy_image_regional(
        self: &Arc<Self>,
        account: &str,
        token: Option<String>,
        source_region: &str,
        source_image_id: &str,
        name: &str,
        description: &str,
    ) -> ApiResult<Image> {
        let i = self
            .copy_image(
                account,
                token,
                source_region,
                source_image_id,
                name,
                description,
            )
            .await?;
        self.share_image(i).await
    }

    /// DeregisterImage, on every host of the region (each drops the files it pulled).
    pub async fn deregister_image_regional(&self, account: &str, id: &str) -> ApiResult<()> {
        let target = match self.cluster {
            Some(_) => self.owned_image(account, id).ok().map(|i| i.id),
            None => None,
        };
        self.share_delete(&Images, target.as_deref(), || {
            self.deregister_image(account, id)
        })
        .await
    }

    /// ModifyImageAttribute (launch permissions), on every host of the region.
    pub async fn modify_launch_permissions_regional(
        &self,
        account: &str,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> ApiResult<()> {
        if self.cluster.is_none() {
            return self.modify_launch_permissions(account, id, add, remove);
        }
        // Checked first: a refusal is not a change to publish.
        self.owned_image(account, id)?;
        self.share_change(&Images, id, || {
            self.modify_launch_permissions(account, id, add, remove)
        })
        .await
    }
}
