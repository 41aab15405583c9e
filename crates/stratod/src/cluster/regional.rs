//! The calls that create, change and delete region-scoped resources (key pairs, placement
//! groups), for both front ends: each runs on the host asked, then the region's record
//! follows ([`Cloud::share_new`] and the rest, in `mirror`). Without a region they are the
//! single host's calls.

use crate::cloud::shared::{KeyPairs, PlacementGroups};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::key_pairs::KeyPair;
use crate::db::placement::PlacementGroup;
use crate::error::{ApiError, ApiResult, ErrorCode};

impl Cloud {
    /// CreateKeyPair, unique by name in the region.
    pub async fn create_key_pair_regional(
        &self,
        account: &str,
        name: &str,
        key_type: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<(KeyPair, String)> {
        let (k, private_key) = self.create_key_pair(account, name, key_type, tags)?;
        self.share_new(&KeyPairs, &k.id).await?;
        Ok((k, private_key))
    }

    /// ImportKeyPair, unique by name in the region.
    pub async fn import_key_pair_regional(
        &self,
        account: &str,
        name: &str,
        material: &[u8],
        tags: Vec<Tag>,
    ) -> ApiResult<KeyPair> {
        let k = self.import_key_pair(account, name, material, tags)?;
        self.share_new(&KeyPairs, &k.id).await?;
        Ok(k)
    }

    /// DeleteKeyPair, on every host of the region.
    pub async fn delete_key_pair_regional(
        &self,
        account: &str,
        name: &str,
        id: &str,
    ) -> ApiResult<Option<String>> {
        let target = match (name.is_empty() && id.is_empty(), self.cluster.is_some()) {
            (false, true) => self.key_pair_id(account, name, id)?,
            _ => None,
        };
        self.share_delete(&KeyPairs, target.as_deref(), || {
            self.delete_key_pair(account, name, id)
        })
        .await
    }

    /// CreatePlacementGroup, unique by name in the region.
    pub async fn create_placement_group_regional(
        &self,
        account: &str,
        name: &str,
        strategy: &str,
        partition_count: i32,
        spread_level: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<PlacementGroup> {
        let g = self.create_placement_group(
            account,
            name,
            strategy,
            partition_count,
            spread_level,
            tags,
        )?;
        self.share_new(&PlacementGroups, &g.id).await?;
        Ok(g)
    }

    /// DeletePlacementGroup: refused while an instance of the group runs on any host of
    /// the region (its capacity reservation names the group), then deleted on every host.
    pub async fn delete_placement_group_regional(
        &self,
        account: &str,
        name: &str,
    ) -> ApiResult<()> {
        let Some(region) = self.cluster.clone() else {
            return self.delete_placement_group(account, name);
        };
        let g = self.placement_group_named(account, name)?;
        let snap = region.snapshot().await.map_err(|e| region.cut_off(&e))?;
        let key = format!("{account}/{name}");
        if let Some(r) = snap.reservations.iter().find(|r| r.group == key) {
            return Err(ApiError::new(
                ErrorCode::InvalidPlacementGroupInUse,
                format!(
                    "The placement group '{name}' is in use and may not be deleted: {} on host {} \
                     is in it.",
                    r.instance_id, r.host
                ),
            ));
        }
        self.share_delete(&PlacementGroups, Some(&g.id), || {
            self.delete_placement_group(account, name)
        })
        .await
    }
}
