//! Tags: their rules (EC2's limits), and CreateTags, DeleteTags and DescribeTags over every
//! taggable kind of resource, each found by its ID prefix.

use super::filters::{self, Filter};
use super::paging::{self, Page, PageRequest};
use super::Cloud;
use crate::db::instances::Tag;
use crate::db::tags::{TagChange, MAX_TAGS};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// A kind of taggable resource.
#[derive(Debug)]
struct Taggable {
    kind: Kind,
    /// DescribeTags' `ResourceType`.
    resource_type: &'static str,
}

/// Every taggable kind. An ENI attachment ID shares the `eni-` prefix, so kinds are matched
/// by full ID check, not by prefix alone.
const TAGGABLE: &[Taggable] = &[
    Taggable {
        kind: Kind::Instance,
        resource_type: "instance",
    },
    Taggable {
        kind: Kind::Image,
        resource_type: "image",
    },
    Taggable {
        kind: Kind::Volume,
        resource_type: "volume",
    },
    Taggable {
        kind: Kind::Snapshot,
        resource_type: "snapshot",
    },
    Taggable {
        kind: Kind::Vpc,
        resource_type: "vpc",
    },
    Taggable {
        kind: Kind::Subnet,
        resource_type: "subnet",
    },
    Taggable {
        kind: Kind::NetworkInterface,
        resource_type: "network-interface",
    },
    Taggable {
        kind: Kind::SecurityGroup,
        resource_type: "security-group",
    },
    Taggable {
        kind: Kind::Allocation,
        resource_type: "elastic-ip",
    },
    Taggable {
        kind: Kind::KeyPair,
        resource_type: "key-pair",
    },
    Taggable {
        kind: Kind::PlacementGroup,
        resource_type: "placement-group",
    },
    Taggable {
        kind: Kind::LaunchTemplate,
        resource_type: "launch-template",
    },
];

/// DescribeTags' filters.
const TAG_FILTERS: &[&str] = &["key", "value", "resource-id", "resource-type"];

/// One tag of one resource, as DescribeTags lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDescription {
    /// The resource.
    pub resource_id: String,
    /// Its type (`instance`, `volume`, …).
    pub resource_type: &'static str,
    /// The tag.
    pub tag: Tag,
}

/// A tag to delete: by key, and only with this value if one is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagKey {
    /// Key.
    pub key: String,
    /// Value the tag must have to go.
    pub value: Option<String>,
}

/// Checks tags as EC2 does: keys of 1 to 128 characters not starting with `aws:`, values
/// of at most 256, each key once, at most 50.
pub fn check(tags: &[Tag]) -> ApiResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::new(
            ErrorCode::TagLimitExceeded,
            format!("At most {MAX_TAGS} tags may be given."),
        ));
    }
    for (k, t) in tags.iter().enumerate() {
        check_key(&t.key)?;
        if t.value.chars().count() > 256 {
            return Err(ApiError::invalid(format!(
                "The value of tag '{}' is longer than 256 characters.",
                short(&t.key)
            )));
        }
        if tags[..k].iter().any(|o| o.key == t.key) {
            return Err(ApiError::invalid(format!(
                "The tag key '{}' is given twice.",
                short(&t.key)
            )));
        }
    }
    Ok(())
}

fn check_key(key: &str) -> ApiResult<()> {
    let n = key.chars().count();
    if n == 0 || n > 128 {
        return Err(ApiError::invalid(
            "Tag keys must be 1 to 128 characters long.",
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::invalid(format!(
            "Tag keys starting with 'aws:' are reserved: '{}'.",
            short(key)
        )));
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The kind of a resource ID; `InvalidID` when it is no taggable resource's.
fn taggable(id: &str) -> ApiResult<&'static Taggable> {
    if let Some(t) = TAGGABLE.iter().find(|t| ids::check(t.kind, id).is_ok()) {
        return Ok(t);
    }
    // A known prefix with a bad body gets that kind's Malformed code.
    let by_prefix = TAGGABLE
        .iter()
        .filter(|t| id.starts_with(t.kind.prefix()))
        .max_by_key(|t| t.kind.prefix().len());
    match by_prefix {
        Some(t) => Err(ids::check(t.kind, id)
            .err()
            .unwrap_or_else(|| invalid_id(id))),
        None => Err(invalid_id(id)),
    }
}

fn invalid_id(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidId,
        format!("The ID '{}' is not valid", short(id)),
    )
}

impl Cloud {
    /// Whether `account` may tag (and see the tags of) a resource owned by `owner`: its own,
    /// and for the host's admin account also what every account shares (the default VPC).
    fn may_tag(&self, account: &str, owner: &str) -> bool {
        owner == account || (owner.is_empty() && account == self.cfg.admin_account)
    }

    fn tag_targets(&self, resources: &[String]) -> ApiResult<Vec<(Kind, String)>> {
        if resources.is_empty() {
            return Err(ApiError::missing("ResourceId"));
        }
        if resources.len() > 1000 {
            return Err(ApiError::invalid("At most 1000 resources per call."));
        }
        resources
            .iter()
            .map(|id| taggable(id).map(|t| (t.kind, id.clone())))
            .collect()
    }

    fn apply_tag_change(
        &self,
        account: &str,
        targets: Vec<(Kind, String)>,
        change: impl Fn(&mut Vec<Tag>),
    ) -> ApiResult<()> {
        let kind_of = |id: &str| {
            targets
                .iter()
                .find(|(_, i)| i == id)
                .map_or(Kind::Instance, |(k, _)| *k)
        };
        match self
            .db
            .change_tags(&targets, |owner| self.may_tag(account, owner), change)?
        {
            TagChange::Done => Ok(()),
            TagChange::NotFound(id) => Err(kind_of(&id).not_found(&id)),
            TagChange::TooMany(id) => Err(ApiError::new(
                ErrorCode::TagLimitExceeded,
                format!("The resource {id} would have more than {MAX_TAGS} tags."),
            )),
        }
    }

    /// The checks of a CreateTags that need no resource: the tags, and the IDs' form.
    pub fn check_create_tags(&self, resources: &[String], tags: &[Tag]) -> ApiResult<()> {
        if tags.is_empty() {
            return Err(ApiError::missing("Tag"));
        }
        check(tags)?;
        self.tag_targets(resources).map(drop)
    }

    /// The checks of a DeleteTags that need no resource: the keys, and the IDs' form.
    pub fn check_delete_tags(&self, resources: &[String], tags: &[TagKey]) -> ApiResult<()> {
        for t in tags {
            check_key(&t.key)?;
        }
        self.tag_targets(resources).map(drop)
    }

    /// CreateTags: adds or overwrites tags on every resource, all or none.
    pub fn create_tags(&self, account: &str, resources: &[String], tags: &[Tag]) -> ApiResult<()> {
        self.check_create_tags(resources, tags)?;
        let targets = self.tag_targets(resources)?;
        self.apply_tag_change(account, targets, |have| {
            for t in tags {
                match have.iter_mut().find(|h| h.key == t.key) {
                    Some(h) => h.value = t.value.clone(),
                    None => have.push(t.clone()),
                }
            }
        })
    }

    /// DeleteTags: removes the named tags (those with the given value, when one is given), or
    /// every tag when none is named.
    pub fn delete_tags(
        &self,
        account: &str,
        resources: &[String],
        tags: &[TagKey],
    ) -> ApiResult<()> {
        self.check_delete_tags(resources, tags)?;
        let targets = self.tag_targets(resources)?;
        self.apply_tag_change(account, targets, |have| {
            if tags.is_empty() {
                have.clear();
            } else {
                have.retain(|h| {
                    !tags
                        .iter()
                        .any(|t| t.key == h.key && t.value.as_ref().is_none_or(|v| *v == h.value))
                });
            }
        })
    }

    /// DescribeTags: the caller's tags the filters pick, one page.
    pub fn describe_tags(
        &self,
        account: &str,
        f: &[Filter],
        page: &PageRequest,
    ) -> ApiResult<Page<TagDescription>> {
        paging::paginate(self.matching_tags(account, f)?, page)
    }

    /// The caller's tags (and those of what every account shares) the filters pick, by
    /// resource type, resource and key.
    pub fn matching_tags(&self, account: &str, f: &[Filter]) -> ApiResult<Vec<TagDescription>> {
        filters::check_names(f, TAG_FILTERS)?;
        let mut out = Vec::new();
        for t in TAGGABLE {
            for r in self.db.all_tags(t.kind)? {
                if !(r.owner == account || r.owner.is_empty()) {
                    continue;
                }
                for tag in r.tags {
                    let ok = filters::matches(f, |name| {
                        let one = |s: &str| Some(vec![s.to_string()]);
                        match name {
                            "key" => one(&tag.key),
                            "value" => one(&tag.value),
                            "resource-id" => one(&r.id),
                            "resource-type" => one(t.resource_type),
                            _ => Some(vec![]),
                        }
                    })?;
                    if ok {
                        out.push(TagDescription {
                            resource_id: r.id.clone(),
                            resource_type: t.resource_type,
                            tag,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (a.resource_type, &a.resource_id, &a.tag.key).cmp(&(
                b.resource_type,
                &b.resource_id,
                &b.tag.key,
            ))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::test_cloud;
    use crate::db::instances::tests::sample;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn tag_rules() {
        assert!(check(&[tag("Name", "web"), tag("env", "")]).is_ok());
        for bad in [
            vec![tag("", "x")],
            vec![tag(&"k".repeat(129), "x")],
            vec![tag("k", &"v".repeat(257))],
            vec![tag("aws:cloudformation", "x")],
            vec![tag("AWS:x", "x")],
            vec![tag("a", "1"), tag("a", "2")],
        ] {
            assert_eq!(
                check(&bad).unwrap_err().code,
                "InvalidParameterValue",
                "{bad:?}"
            );
        }
        let many: Vec<Tag> = (0..51).map(|k| tag(&k.to_string(), "")).collect();
        assert_eq!(check(&many).unwrap_err().code, "TagLimitExceeded");
    }

    #[test]
    fn ids_find_their_kind() {
        assert_eq!(
            taggable("i-0123456789abcdef0").unwrap().resource_type,
            "instance"
        );
        assert_eq!(
            taggable("eipalloc-0123456789abcdef0")
                .unwrap()
                .resource_type,
            "elastic-ip"
        );
        assert_eq!(
            taggable("eni-0123456789abcdef0").unwrap().resource_type,
            "network-interface"
        );
        assert_eq!(
            taggable("vol-xyz").unwrap_err().code,
            "InvalidVolumeID.Malformed"
        );
        assert_eq!(
            taggable("r-0123456789abcdef0").unwrap_err().code,
            "InvalidID"
        );
        assert_eq!(taggable("nonsense").unwrap_err().code, "InvalidID");
    }

    #[test]
    fn create_delete_and_describe() {
        let (_d, c) = test_cloud();
        let a = "111111111111";
        c.db.insert_instance(&sample("i-0000000000000000a", a))
            .unwrap();
        c.db.insert_instance(&sample("i-0000000000000000b", "222222222222"))
            .unwrap();
        let ids = ["i-0000000000000000a".to_string()];
        c.create_tags(a, &ids, &[tag("Name", "web"), tag("env", "prod")])
            .unwrap();
        // Overwrite one value.
        c.create_tags(a, &ids, &[tag("env", "dev")]).unwrap();
        let got = c.matching_tags(a, &[]).unwrap();
        let kv: Vec<(&str, &str)> = got
            .iter()
            .map(|d| (d.tag.key.as_str(), d.tag.value.as_str()))
            .collect();
        // The sample instance carries Name=x already; CreateTags replaced it.
        assert_eq!(kv, [("Name", "web"), ("env", "dev")]);
        // Another account's instance: not found, and nothing changed anywhere.
        let both = [
            "i-0000000000000000a".to_string(),
            "i-0000000000000000b".to_string(),
        ];
        let e = c.create_tags(a, &both, &[tag("x", "y")]).unwrap_err();
        assert_eq!(e.code, "InvalidInstanceID.NotFound");
        assert!(e.message.contains("i-0000000000000000b"));
        assert_eq!(c.matching_tags(a, &[]).unwrap().len(), 2);
        // Delete by key and value: a wrong value keeps the tag.
        c.delete_tags(
            a,
            &ids,
            &[TagKey {
                key: "env".into(),
                value: Some("prod".into()),
            }],
        )
        .unwrap();
        assert_eq!(c.matching_tags(a, &[]).unwrap().len(), 2);
        c.delete_tags(
            a,
            &ids,
            &[TagKey {
                key: "env".into(),
                value: None,
            }],
        )
        .unwrap();
        let f = [Filter {
            name: "key".into(),
            values: vec!["Name".into()],
        }];
        assert_eq!(c.matching_tags(a, &f).unwrap().len(), 1);
        c.delete_tags(a, &ids, &[]).unwrap();
        assert!(c.matching_tags(a, &[]).unwrap().is_empty());
        // 50 is the most a resource holds.
        let fifty: Vec<Tag> = (0..50).map(|k| tag(&format!("k{k}"), "")).collect();
        c.create_tags(a, &ids, &fifty).unwrap();
        let e = c.create_tags(a, &ids, &[tag("one-more", "")]).unwrap_err();
        assert_eq!(e.code, "TagLimitExceeded");
    }
}
