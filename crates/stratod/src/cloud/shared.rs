//! The region-scoped kinds (`cluster::mirror`): how each one's rows leave and enter this
//! host's database as the region's records, and the notes of which rows mirror a record.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::Cloud;
use crate::cluster::mirror::SharedKind;
use crate::cluster::shared::Shared;
use crate::db::key_pairs::KeyPair;
use crate::db::launch_templates::{Template, Version};
use crate::db::placement::PlacementGroup;
use crate::error::{ApiError, ApiResult, ErrorCode};

fn body<T: serde::Serialize>(v: &T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(format!("cannot encode a record: {e}")))
}

fn from_body<T: serde::de::DeserializeOwned>(s: &Shared) -> ApiResult<T> {
    serde_json::from_value(s.body.clone())
        .map_err(|e| ApiError::internal(format!("the region's record does not decode: {e}")))
}

/// Key pairs.
pub struct KeyPairs;

impl SharedKind for KeyPairs {
    fn name(&self) -> &'static str {
        "key-pair"
    }
    fn id_prefix(&self) -> &'static str {
        "key-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.key_pair_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(k) = cloud.db.key_pair(id)? else {
            return Ok(None);
        };
        Ok(Some(Shared {
            account: k.owner.clone(),
            name: k.name.clone(),
            body: body(&k)?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let k: KeyPair = from_body(s)?;
        if k.id != id {
            return Err(ApiError::internal(format!(
                "the region's record of {id} names {}",
                k.id
            )));
        }
        Ok(cloud.db.upsert_key_pair(&k)?)
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        if let Some(k) = cloud.db.key_pair(id)? {
            cloud.db.delete_key_pair(&k.owner, "", id)?;
        }
        Ok(())
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidKeyPairDuplicate,
            format!("The keypair '{name}' already exists in the region."),
        )
    }
}

/// Placement groups.
pub struct PlacementGroups;

impl SharedKind for PlacementGroups {
    fn name(&self) -> &'static str {
        "placement-group"
    }
    fn id_prefix(&self) -> &'static str {
        "pg-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.placement_group_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(g) = cloud.db.placement_group(id)? else {
            return Ok(None);
        };
        Ok(Some(Shared {
            account: g.owner.clone(),
            name: g.name.clone(),
            body: body(&g)?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let g: PlacementGroup = from_body(s)?;
        if g.id != id {
            return Err(ApiError::internal(format!(
                "the region's record of {id} names {}",
                g.id
            )));
        }
        Ok(cloud.db.upsert_placement_group(&g)?)
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        if !cloud.db.delete_placement_group(id)? && cloud.db.placement_group(id)?.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidPlacementGroupInUse,
                format!("Placement group {id} still has instances on this host."),
            ));
        }
        Ok(())
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidPlacementGroupDuplicate,
            format!("The Placement Group '{name}' already exists in the region."),
        )
    }
}

/// Every region-scoped kind, in the order they are mirrored.
pub static KINDS: &[&dyn SharedKind] = &[
    &KeyPairs,
    &PlacementGroups,
    &LaunchTemplates,
    &crate::cloud::storage::shared_images::Images,
    &super::network::region::Vpcs,
    &super::network::region::Subnets,
    &super::network::region::SecurityGroups,
    &super::network::shared_addresses::Addresses,
];

/// The kind of a resource ID, if it is region-scoped.
pub fn kind_of(id: &str) -> Option<&'static dyn SharedKind> {
    KINDS
        .iter()
        .copied()
        .find(|k| id.starts_with(k.id_prefix()))
}

impl Cloud {
    /// The rows of `kind` that mirror a record: ID → revision last applied or published.
    pub fn mirror_notes(&self, kind: &str) -> ApiResult<std::collections::BTreeMap<String, i64>> {
        Ok(self.db.mirrored(kind)?)
    }

    /// Notes that row `id` of `kind` mirrors the record at `revision`.
    pub fn note_mirrored(&self, kind: &str, id: &str, revision: i64) -> ApiResult<()> {
        Ok(self.db.set_mirrored(kind, id, revision)?)
    }

    /// Forgets that row `id` of `kind` mirrors a record.
    pub fn forget_mirrored(&self, kind: &str, id: &str) -> ApiResult<()> {
        Ok(self.db.drop_mirrored(kind, id)?)
    }
}

/// Launch templates: the record carries the template with every version (versions are
/// immutable, but a host may add one, so the record is the whole list).
pub struct LaunchTemplates;

/// A launch template as the region's record carries it.
#[derive(serde::Serialize, serde::Deserialize)]
struct TemplateRecord {
    template: Template,
    versions: Vec<VersionRecord>,
}

/// One version and its user data (base64, as EC2 carries user data).
#[derive(serde::Serialize, serde::Deserialize)]
struct VersionRecord {
    version: Version,
    user_data: String,
}

impl SharedKind for LaunchTemplates {
    fn name(&self) -> &'static str {
        "launch-template"
    }
    fn id_prefix(&self) -> &'static str {
        "lt-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.template_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(t) = cloud.db.template(id)? else {
            return Ok(None);
        };
        let versions = cloud
            .db
            .template_versions(id)?
            .into_iter()
            .map(|v| VersionRecord {
                user_data: BASE64.encode(&v.data.user_data),
                version: v,
            })
            .collect();
        Ok(Some(Shared {
            account: t.owner.clone(),
            name: t.name.clone(),
            body: body(&TemplateRecord {
                template: t,
                versions,
            })?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let r: TemplateRecord = from_body(s)?;
        if r.template.id != id {
            return Err(ApiError::internal(format!(
                "the region's record of {id} names {}",
                r.template.id
            )));
        }
        let mut versions = Vec::with_capacity(r.versions.len());
        for v in r.versions {
            let mut version = v.version;
            version.data.user_data = BASE64.decode(&v.user_data).map_err(|e| {
                ApiError::internal(format!(
                    "the region's record of {id} has bad user data: {e}"
                ))
            })?;
            versions.push(version);
        }
        Ok(cloud.db.upsert_template(&r.template, &versions)?)
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        cloud.db.delete_template(id)?;
        Ok(())
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidLaunchTemplateNameAlreadyExistsException,
            format!("Launch template name already in use in the region: {name}."),
        )
    }
}
