//! Describe* filters as in the AWS API: a resource matches when, for every filter, one of
//! the filter's values matches the named attribute; `*` and `?` are wildcards.

use crate::db::instances::Tag;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// One filter.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Attribute name, e.g. `instance-state-name` or `tag:Name`.
    pub name: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// Matches `text` against a pattern with `*` (any run) and `?` (any one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a resource passes every filter. `attr` gives the resource's values for a filter
/// name (`None`: the name is not a filter of this resource, which is an error).
pub fn matches(filters: &[Filter], attr: impl Fn(&str) -> Option<Vec<String>>) -> ApiResult<bool> {
    for f in filters {
        let values = attr(&f.name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The filter '{}' is invalid",
                    f.name.chars().take(64).collect::<String>()
                ),
            )
        })?;
        if !f
            .values
            .iter()
            .any(|want| values.iter().any(|v| glob(want, v)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The values the tag filters see: the keys for `tag-key`, the values of key K for `tag:K`;
/// `None` for any other filter name.
pub fn tag_values(tags: &[Tag], name: &str) -> Option<Vec<String>> {
    if name == "tag-key" {
        return Some(tags.iter().map(|t| t.key.clone()).collect());
    }
    let key = name.strip_prefix("tag:")?;
    Some(
        tags.iter()
            .filter(|t| t.key == key)
            .map(|t| t.value.clone())
            .collect(),
    )
}

/// Checks the filter names alone (so that an empty listing still refuses a bad filter).
pub fn check_names(filters: &[Filter], known: &[&str]) -> ApiResult<()> {
    for f in filters {
        if !(known.contains(&f.name.as_str()) || f.name.starts_with("tag:")) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The filter '{}' is invalid",
                    f.name.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("run*", "running"));
        assert!(glob("*", ""));
        assert!(glob("i-?bc", "i-abc"));
        assert!(!glob("i-?bc", "i-abcd"));
        assert!(glob("*a*b", "xxaxxb"));
        assert!(!glob("stopped", "stopping"));
    }

    #[test]
    fn all_filters_must_match() {
        let f = vec![
            Filter {
                name: "state".into(),
                values: vec!["running".into(), "stopped".into()],
            },
            Filter {
                name: "tag:Name".into(),
                values: vec!["web*".into()],
            },
        ];
        let attr = |state: &'static str, name: &'static str| {
            move |n: &str| match n {
                "state" => Some(vec![state.to_string()]),
                "tag:Name" => Some(vec![name.to_string()]),
                _ => None,
            }
        };
        assert!(matches(&f, attr("running", "web1")).unwrap());
        assert!(!matches(&f, attr("running", "db1")).unwrap());
        assert!(!matches(&f, attr("pending", "web1")).unwrap());
        let bad = vec![Filter {
            name: "colour".into(),
            values: vec![],
        }];
        assert!(matches(&bad, attr("running", "web1")).is_err());
    }
}
