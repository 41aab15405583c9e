//! Launch templates are the region's (`mirror`): CreateLaunchTemplate,
//! CreateLaunchTemplateVersion, ModifyLaunchTemplate and DeleteLaunchTemplate run on the host
//! asked, then the region's record follows, for both front ends. Two hosts adding a version
//! at once get consecutive numbers: the later one applies the newer record and adds its
//! version again. Without a region they are the single host's calls.

use crate::cloud::shared::LaunchTemplates;
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::launch_templates::{Template, TemplateData, Version};
use crate::error::ApiResult;

impl Cloud {
    /// CreateLaunchTemplate, its name unique per account in the region.
    pub async fn create_launch_template_regional(
        &self,
        account: &str,
        name: &str,
        description: &str,
        data: TemplateData,
        tags: Vec<Tag>,
    ) -> ApiResult<Template> {
        let t = self.create_launch_template(account, name, description, data, tags)?;
        self.share_new(&LaunchTemplates, &t.id).await?;
        Ok(t)
    }

    /// CreateLaunchTemplateVersion, numbered in the region's record.
    pub async fn create_launch_template_version_regional(
        &self,
        account: &str,
        id: &str,
        name: &str,
        source: &str,
        description: &str,
        data: TemplateData,
    ) -> ApiResult<(Template, Version)> {
        let t = self.owned_template(account, id, name)?;
        self.share_change(&LaunchTemplates, &t.id, || {
            self.create_launch_template_version(
                account,
                &t.id,
                "",
                source,
                description,
                data.clone(),
            )
        })
        .await
    }

    /// ModifyLaunchTemplate (the default version), in the region's record.
    pub async fn modify_launch_template_regional(
        &self,
        account: &str,
        id: &str,
        name: &str,
        default_version: &str,
    ) -> ApiResult<Template> {
        let t = self.owned_template(account, id, name)?;
        self.share_change(&LaunchTemplates, &t.id, || {
            self.modify_launch_template(account, &t.id, "", default_version)
        })
        .await
    }

    /// DeleteLaunchTemplate, on every host of the region.
    pub async fn delete_launch_template_regional(
        &self,
        account: &str,
        id: &str,
        name: &str,
    ) -> ApiResult<Template> {
        let t = self.owned_template(account, id, name)?;
        self.share_delete(&LaunchTemplates, Some(&t.id), || {
            self.delete_launch_template(account, &t.id, "")
        })
        .await
    }
}
