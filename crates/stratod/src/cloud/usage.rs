//! DescribeUsage: the metering records of the caller over a time window
//! (`crate::metering` sums the periods).

use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult};
use crate::metering::{self, Usage};

impl Cloud {
    /// DescribeUsage over `[start_unix, end_unix)` in Unix seconds; an end of 0 means now,
    /// and a window is never read past now.
    pub fn describe_usage(
        &self,
        account: &str,
        start_unix: i64,
        end_unix: i64,
    ) -> ApiResult<Vec<Usage>> {
        let now = crate::db::now_ms();
        let start = start_unix.saturating_mul(1000);
        let end = if end_unix == 0 {
            now
        } else {
            end_unix.saturating_mul(1000).min(now)
        };
        if start_unix < 0 || end_unix < 0 || end < start {
            return Err(ApiError::invalid(
                "The time window is not valid: 0 <= start <= end.",
            ));
        }
        let periods = self.db.periods(account, start, end)?;
        Ok(metering::summarize(&periods, start, end))
    }
}
