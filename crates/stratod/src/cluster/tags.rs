//! Tags in a region of hosts, for both front ends: CreateTags and DeleteTags split the
//! resource IDs by owner (instances by their reservations or route records, volumes,
//! snapshots and network interfaces by the owner index), tag this host's part here and
//! forward each other host's part to it; the region-scoped kinds (AMIs, key pairs,
//! placement groups, VPCs, …) are tagged here and their records published; IDs of the other
//! kinds are per host and stay here.
//! A DescribeTags covers the instances, volumes, snapshots and network interfaces of every
//! available host, paged over the region's listing.

use std::collections::BTreeMap;

use strato_proto::v1 as pb;

use super::forward::{pb_filters, Link, Tags};
use super::route::{Origin, Resource, Route};
use crate::cloud::filters::Filter;
use crate::cloud::paging::{paginate, Page, PageRequest};
use crate::cloud::tags::{TagDescription, TagKey};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::error::ApiResult;

/// The kinds whose tags live with the resource on its host and are routed there (the
/// others are per host).
const ROUTED: [(Resource, &str, &str); 4] = [
    (Resource::Instance, "i-", "instance"),
    (Resource::Volume, "vol-", "volume"),
    (Resource::Snapshot, "snap-", "snapshot"),
    (Resource::NetworkInterface, "eni-", "network-interface"),
];

/// The routed kind of `id`, by its prefix.
fn routed_kind(id: &str) -> Option<Resource> {
    ROUTED
        .iter()
        .find(|(_, prefix, _)| id.starts_with(prefix))
        .map(|(kind, _, _)| *kind)
}

/// DescribeTags' resource type of another host's tag, if it is one of the routed kinds
/// (that host's per-host resources are not this host's to show).
fn routed_type(resource_type: &str) -> Option<&'static str> {
    ROUTED
        .iter()
        .find(|(_, _, t)| *t == resource_type)
        .map(|(_, _, t)| *t)
}

/// The resources of one tag call: each kind's route merged into one (an ID another host
/// owns goes there, every other ID stays here, in the request's order).
pub fn merge(resources: &[String], routes: Vec<Route>) -> Route {
    let mut remote: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in routes {
        for (host, ids) in r.remote {
            let group = remote.entry(host).or_default();
            for id in ids {
                if !group.contains(&id) {
                    group.push(id);
                }
            }
        }
    }
    let local = resources
        .iter()
        .filter(|id| !remote.values().any(|owned| owned.contains(id)))
        .cloned()
        .collect();
    Route { local, remote }
}

/// The tags of the region: this host's and the others' (`there`, of the routed kinds
/// only), in one host's listing order, one page.
fn region_tags(
    mut here: Vec<TagDescription>,
    there: Vec<pb::TagDescription>,
    page: &PageRequest,
) -> ApiResult<Page<TagDescription>> {
    here.extend(there.into_iter().filter_map(|t| {
        Some(TagDescription {
            resource_type: routed_type(&t.resource_type)?,
            resource_id: t.resource_id,
            tag: Tag {
                key: t.key,
                value: t.value,
            },
        })
    }));
    here.sort_by(|a, b| {
        (a.resource_type, &a.resource_id, &a.tag.key).cmp(&(
            b.resource_type,
            &b.resource_id,
            &b.tag.key,
        ))
    });
    paginate(here, page)
}

/// A region-scoped resource as it was before a tag call: its kind, ID and record.
type SharedRow = (
    &'static dyn crate::cluster::mirror::SharedKind,
    String,
    crate::cluster::shared::Shared,
);

/// What a tag call changes on each host.
#[derive(Clone, Copy)]
enum Change<'a> {
    Create(&'a [Tag]),
    Delete(&'a [TagKey]),
}

impl Cloud {
    /// Where the resources of a tag call go.
    async fn tag_route(&self, account: &str, resources: &[String], origin: Origin) -> Route {
        let mut routes = Vec::new();
        for (kind, _, _) in ROUTED {
            let ids: Vec<String> = resources
                .iter()
                .filter(|id| routed_kind(id) == Some(kind))
                .cloned()
                .collect();
            if !ids.is_empty() {
                routes.push(self.route_of(kind, account, &ids, origin).await);
            }
        }
        merge(resources, routes)
    }

    /// CreateTags, each resource tagged on its host. A call over several hosts is not
    /// atomic: a host's refusal leaves the parts already tagged (each host's part is all or
    /// none).
    pub async fn create_tags_routed(
        &self,
        account: &str,
        resources: &[String],
        tags: &[Tag],
        origin: Origin,
    ) -> ApiResult<()> {
        // Refused before anything is forwarded, as one host refuses it.
        self.check_create_tags(resources, tags)?;
        self.change_tags_routed(account, resources, Change::Create(tags), origin)
            .await
    }

    /// DeleteTags, each resource's on its host (not atomic over hosts, as CreateTags).
    pub async fn delete_tags_routed(
        &self,
        account: &str,
        resources: &[String],
        tags: &[TagKey],
        origin: Origin,
    ) -> ApiResult<()> {
        self.check_delete_tags(resources, tags)?;
        self.change_tags_routed(account, resources, Change::Delete(tags), origin)
            .await
    }

    async fn change_tags_routed(
        &self,
        account: &str,
        resources: &[String],
        change: Change<'_>,
        origin: Origin,
    ) -> ApiResult<()> {
        let here = |ids: &[String]| match change {
            Change::Create(tags) => self.create_tags(account, ids, tags),
            Change::Delete(keys) => self.delete_tags(account, ids, keys),
        };
        let route = self.tag_route(account, resources, origin).await;
        let link = match self.link() {
            Some(link) if !route.remote.is_empty() => link,
            _ => {
                let saved = self.shared_rows(resources)?;
                here(resources)?;
                return self.share_tag_changes(saved, here).await;
            }
        };
        if !route.local.is_empty() {
            let saved = self.shared_rows(&route.local)?;
            here(&route.local)?;
            self.share_tag_changes(saved, here).await?;
        }
        for (host, ids) in route.remote {
            match change {
                Change::Create(tags) => link.create_tags(&host, account, ids, tags).await?,
                Change::Delete(keys) => link.delete_tags(&host, account, ids, keys).await?,
            }
        }
        Ok(())
    }

    /// The region-scoped resources among `ids` (key pairs, placement groups) as they are
    /// before a tag call changes them (none without a region).
    fn shared_rows(&self, ids: &[String]) -> ApiResult<Vec<SharedRow>> {
        if self.cluster.is_none() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::new();
        for id in ids {
            if let Some(kind) = crate::cloud::shared::kind_of(id) {
                if let Some(before) = kind.export(self, id)? {
                    rows.push((kind, id.clone(), before));
                }
            }
        }
        Ok(rows)
    }

    /// Publishes the tags of the region-scoped resources `saved`, already changed here by
    /// `here`: their records carry their tags, so every host shows them. `here` runs again
    /// for each one, so a record another host changed first keeps this change too. When a
    /// record cannot be published (etcd away), it and the ones after it are put back as
    /// they were, so this host's copy never differs from the region's.
    async fn share_tag_changes(
        &self,
        saved: Vec<SharedRow>,
        here: impl Fn(&[String]) -> ApiResult<()>,
    ) -> ApiResult<()> {
        for (n, (kind, id, _)) in saved.iter().enumerate() {
            let one = std::slice::from_ref(id);
            if let Err(e) = self.share_change(*kind, id, || here(one)).await {
                for (kind, id, before) in &saved[n..] {
                    kind.import(self, id, before)?;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// DescribeTags across the region: this host's tags and those of every other available
    /// host's instances, volumes and snapshots (one that does not answer is left out), paged
    /// over the region's listing; one another host sent covers this host only.
    pub async fn describe_tags_routed(
        &self,
        account: &str,
        filters: &[Filter],
        page: &PageRequest,
        origin: Origin,
    ) -> ApiResult<Page<TagDescription>> {
        if self.cluster.is_none() || origin == Origin::RegionHost {
            return self.describe_tags(account, filters, page);
        }
        // A page or filter this host would refuse is refused before the others are asked.
        paginate(Vec::<()>::new(), page)?;
        let here = self.matching_tags(account, filters)?;
        let there = super::fanout::tags_of_other_hosts(self, account, filters).await;
        region_tags(here, there, page)
    }
}

impl Link {
    /// CreateTags of `host`'s resources.
    pub async fn create_tags(
        &self,
        host: &str,
        account: &str,
        resources: Vec<String>,
        tags: &[Tag],
    ) -> ApiResult<()> {
        let msg = pb::CreateTagsRequest {
            resources,
            tags: crate::api::convert::tags(tags),
        };
        self.on(host, account, msg, |mut c: Tags, r| async move {
            c.create_tags(r).await
        })
        .await
        .map(drop)
    }

    /// DeleteTags of `host`'s resources.
    pub async fn delete_tags(
        &self,
        host: &str,
        account: &str,
        resources: Vec<String>,
        keys: &[TagKey],
    ) -> ApiResult<()> {
        let msg = pb::DeleteTagsRequest {
            resources,
            tags: keys
                .iter()
                .map(|k| pb::DeleteTag {
                    key: k.key.clone(),
                    value: k.value.clone(),
                })
                .collect(),
        };
        self.on(host, account, msg, |mut c: Tags, r| async move {
            c.delete_tags(r).await
        })
        .await
        .map(drop)
    }

    /// DescribeTags of `host`'s own resources (a call from a region host covers that host
    /// only).
    pub async fn describe_tags(
        &self,
        host: &str,
        account: &str,
        filters: &[Filter],
    ) -> ApiResult<Vec<pb::TagDescription>> {
        let msg = pb::DescribeTagsRequest {
            filters: pb_filters(filters),
            ..Default::default()
        };
        self.on(host, account, msg, |mut c: Tags, r| async move {
            c.describe_tags(r).await
        })
        .await
        .map(|r| r.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn route(local: &[&str], remote: &[(&str, &[&str])]) -> Route {
        Route {
            local: ids(local),
            remote: remote
                .iter()
                .map(|(h, i)| (h.to_string(), ids(i)))
                .collect(),
        }
    }

    #[test]
    fn each_kind_goes_to_its_owner_and_the_rest_stays_here() {
        assert_eq!(routed_kind("i-0123"), Some(Resource::Instance));
        assert_eq!(routed_kind("vol-0123"), Some(Resource::Volume));
        assert_eq!(routed_kind("snap-0123"), Some(Resource::Snapshot));
        assert_eq!(routed_kind("eni-0123"), Some(Resource::NetworkInterface));
        assert_eq!(routed_kind("igw-0123"), None);
        assert_eq!(routed_kind("sg-0123"), None);
        let asked = ids(&["sg-1", "i-1", "vol-1", "i-2", "snap-1", "vpc-1"]);
        let got = merge(
            &asked,
            vec![
                route(&["i-1"], &[("h2", &["i-2"])]),
                route(&[], &[("h2", &["vol-1"])]),
                route(&[], &[("h3", &["snap-1"])]),
            ],
        );
        assert_eq!(got.local, ids(&["sg-1", "i-1", "vpc-1"]));
        assert_eq!(got.remote.len(), 2, "{got:?}");
        assert_eq!(got.remote["h2"], ids(&["i-2", "vol-1"]));
        assert_eq!(got.remote["h3"], ids(&["snap-1"]));
        // Nothing elsewhere: every ID here, as asked.
        let plain = merge(&asked, vec![route(&["i-1", "i-2"], &[])]);
        assert_eq!(plain.local, asked);
        assert!(plain.remote.is_empty());
    }

    fn mine(id: &str, t: &'static str, key: &str) -> TagDescription {
        TagDescription {
            resource_id: id.into(),
            resource_type: t,
            tag: Tag {
                key: key.into(),
                value: String::new(),
            },
        }
    }

    fn theirs(id: &str, t: &str, key: &str) -> pb::TagDescription {
        pb::TagDescription {
            key: key.into(),
            value: String::new(),
            resource_id: id.into(),
            resource_type: t.into(),
        }
    }

    #[test]
    fn the_regions_tags_page_in_one_order_without_the_others_per_host_kinds() {
        let here = || {
            vec![
                mine("i-b", "instance", "Name"),
                mine("sg-a", "security-group", "Name"),
                mine("vol-c", "volume", "k"),
            ]
        };
        let there = || {
            vec![
                theirs("i-a", "instance", "Name"),
                theirs("vpc-z", "vpc", "Name"),
                theirs("snap-a", "snapshot", "k"),
                theirs("i-a", "instance", "env"),
                theirs("vol-a", "volume", "k"),
            ]
        };
        let shown = |p: &Page<TagDescription>| -> Vec<(String, String)> {
            p.items
                .iter()
                .map(|t| (t.resource_id.clone(), t.tag.key.clone()))
                .collect()
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        let all = region_tags(here(), there(), &PageRequest::default()).unwrap();
        assert_eq!(
            shown(&all),
            [
                pair("i-a", "Name"),
                pair("i-a", "env"),
                pair("i-b", "Name"),
                pair("sg-a", "Name"),
                pair("snap-a", "k"),
                pair("vol-a", "k"),
                pair("vol-c", "k"),
            ],
            "another host's VPC is its own, not the region's"
        );
        let page = |token: &str| PageRequest {
            max_results: 5,
            next_token: token.into(),
        };
        let first = region_tags(here(), there(), &page("")).unwrap();
        assert_eq!(first.items.len(), 5);
        let second = region_tags(here(), there(), &page(&first.next_token)).unwrap();
        assert_eq!(shown(&second), [pair("vol-a", "k"), pair("vol-c", "k")]);
        assert!(second.next_token.is_empty());
    }
}
