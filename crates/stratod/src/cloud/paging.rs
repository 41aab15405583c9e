//! Paging of Describe listings as in the AWS API: MaxResults (5 to 1000; 0 for all) and an
//! opaque NextToken (here the offset of the next item), over a listing already filtered.

use crate::error::{ApiError, ApiResult, ErrorCode};

/// What a caller asks of a listing's paging: all of it by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// MaxResults: 0 for everything.
    pub max_results: i32,
    /// NextToken of the previous page, or empty for the first.
    pub next_token: String,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The token of the next page; empty on the last.
    pub next_token: String,
}

impl<T> Page<T> {
    /// The page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_token: self.next_token,
        }
    }
}

/// Applies MaxResults / NextToken (an offset) to a listing.
pub fn paginate<T>(items: Vec<T>, page: &PageRequest) -> ApiResult<Page<T>> {
    let start: usize = if page.next_token.is_empty() {
        0
    } else {
        page.next_token.parse().map_err(|_| {
            ApiError::new(ErrorCode::InvalidNextToken, "The NextToken is not valid.")
        })?
    };
    let max = page.max_results;
    if max < 0 || (max > 0 && max < 5) || max > 1000 {
        return Err(ApiError::invalid("MaxResults must be between 5 and 1000."));
    }
    let take = if max == 0 { usize::MAX } else { max as usize };
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(start).take(take).collect();
    let next_token = if start.saturating_add(items.len()) < total {
        (start + items.len()).to_string()
    } else {
        String::new()
    };
    Ok(Page { items, next_token })
}

/// EC2's refusal of MaxResults beside an ID list (`param`, e.g. `VolumeIds`).
pub fn check_ids_without_page_size(
    param: &str,
    ids: &[String],
    page: &PageRequest,
) -> ApiResult<()> {
    if page.max_results != 0 && !ids.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterCombination,
            format!("The parameter {param} cannot be used with the parameter MaxResults."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paginate(items: Vec<i32>, max: i32, token: &str) -> ApiResult<(Vec<i32>, String)> {
        let p = super::paginate(
            items,
            &PageRequest {
                max_results: max,
                next_token: token.into(),
            },
        )?;
        Ok((p.items, p.next_token))
    }

    #[test]
    fn pages() {
        let (p, next) = paginate((0..12).collect(), 5, "").unwrap();
        assert_eq!((p, next.as_str()), (vec![0, 1, 2, 3, 4], "5"));
        let (p, next) = paginate((0..12).collect(), 5, "10").unwrap();
        assert_eq!((p, next.as_str()), (vec![10, 11], ""));
        assert_eq!(
            paginate(vec![1], 0, "x").unwrap_err().code,
            "InvalidNextToken"
        );
        assert!(paginate(vec![1], 2, "").is_err());
        assert!(paginate(vec![1], -1, "").is_err());
    }
}
