//! Client tokens (EC2's idempotency): the claims a front end takes before running an
//! idempotent call and the answers it keeps, durable across restarts. The rules (what a
//! fingerprint covers, when a replay is allowed) belong to the front end that knows the
//! call's wire form; this is the domain's record of them.

pub use crate::db::client_tokens::{Claim, TokenKey};

use crate::cloud::Cloud;
use crate::error::ApiResult;

impl Cloud {
    /// Claims `k` for a call with `fingerprint` by daemon run `boot`, unless someone holds
    /// it; claims older than `expire_before` are dropped first.
    pub fn claim_client_token(
        &self,
        k: TokenKey<'_>,
        fingerprint: &str,
        boot: &str,
        now: i64,
        expire_before: i64,
    ) -> ApiResult<Claim> {
        Ok(self
            .db
            .claim_client_token(k, fingerprint, boot, now, expire_before)?)
    }

    /// Takes over a pending claim left by an earlier daemon run; false when another
    /// caller took it first.
    pub fn take_over_client_token(&self, k: TokenKey<'_>, boot: &str) -> ApiResult<bool> {
        Ok(self.db.take_over_client_token(k, boot)?)
    }

    /// Keeps the answer of the call that held `k`.
    pub fn finish_client_token(
        &self,
        k: TokenKey<'_>,
        response: &str,
        request_id: &str,
    ) -> ApiResult<()> {
        Ok(self.db.finish_client_token(k, response, request_id)?)
    }

    /// Releases an unfinished claim (the call was dropped midway).
    pub fn release_client_token(&self, k: TokenKey<'_>) -> ApiResult<()> {
        Ok(self.db.release_client_token(k)?)
    }
}
