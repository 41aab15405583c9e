//! Room on the data directory's disk: a request that would fill it is refused up front
//! with a clear EC2 error, rather than failing half-way (a torn copy, a volume file without
//! its record, a database that cannot commit). Volumes are thin (sparse files), so a blank
//! one needs only the reserve; a snapshot or image copies what its volumes hold wherever the
//! file system cannot share extents.

use std::path::Path;

use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::storage;

/// Room kept free for the database, logs and console output.
pub const RESERVE: u64 = 16 << 20;

impl Cloud {
    /// Refuses with `code` unless `need` bytes and the reserve are free for `what`.
    pub fn ensure_space(&self, need: u64, code: ErrorCode, what: &str) -> ApiResult<()> {
        let free = match storage::free_bytes(&self.cfg.data_dir) {
            Ok(f) => f,
            // No figure: let the operation itself tell.
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the free space of the data directory");
                return Ok(());
            }
        };
        if free < need.saturating_add(RESERVE) {
            return Err(ApiError::new(
                code,
                format!(
                    "There is not enough free disk space on this host for {what}: {} MiB free, {} MiB needed (with a {} MiB reserve).",
                    free >> 20,
                    need.saturating_add(RESERVE).div_ceil(1 << 20),
                    RESERVE >> 20
                ),
            ));
        }
        Ok(())
    }

    /// What copies of these files could take: their allocated bytes.
    pub fn copy_need<P: AsRef<Path>>(&self, files: impl IntoIterator<Item = P>) -> u64 {
        files
            .into_iter()
            .map(|p| storage::allocated_bytes(p.as_ref()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_disk_cannot_hold_and_names_the_figures() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        assert!(cloud
            .ensure_space(0, ErrorCode::InsufficientVolumeCapacity, "a volume")
            .is_ok());
        let e = cloud
            .ensure_space(
                u64::MAX / 2,
                ErrorCode::InsufficientVolumeCapacity,
                "a volume",
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientVolumeCapacity);
        assert!(
            e.message.contains("not enough free disk space"),
            "{}",
            e.message
        );
        assert!(e.message.contains("MiB free"), "{}", e.message);
    }
}
