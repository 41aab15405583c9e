//! Whole-ruleset applies (the firewall, the NAT table) that coalesce: each caller has made
//! its change in the database before it asks, and an apply renders from the database as it
//! is when the apply starts, so one apply covers every request made before it began. A
//! caller whose request such an apply already covered returns at once; when 20 instances
//! boot together, a few applies serve them all instead of 20 in a row.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ApiResult;

/// One kind of apply.
#[derive(Debug, Default)]
pub struct Applies {
    lock: tokio::sync::Mutex<()>,
    /// Requests so far.
    requested: AtomicU64,
    /// Requests covered by a successful apply.
    applied: AtomicU64,
}

impl Applies {
    /// Makes sure an apply that started after this call succeeds (running `apply` unless
    /// another one covered this request meanwhile).
    pub async fn run<F, Fut>(&self, apply: F) -> ApiResult<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<()>>,
    {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _g = self.lock.lock().await;
        if self.applied.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every request counted so far made its change before it was counted, so the state
        // this apply reads includes them all.
        let covers = self.requested.load(Ordering::SeqCst);
        apply().await?;
        self.applied.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_requests_share_applies_and_failures_do_not_count() {
        let a = Arc::new(Applies::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (a, runs) = (Arc::clone(&a), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                a.run(|| async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(())
                })
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = runs.load(Ordering::SeqCst);
        assert!((1..20).contains(&n), "{n} applies for 20 requests");
        // A later request always gets an apply of its own.
        a.run(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), n + 1);
        // A failed apply covers nothing: the next request applies again.
        let err = a
            .run(|| async { Err(crate::error::ApiError::internal("nft failed")) })
            .await;
        assert!(err.is_err());
        a.run(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), n + 2);
    }
}
