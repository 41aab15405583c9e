//! Temporary credentials of instance roles, as EC2 hands them to instances through the
//! metadata service: an `ASIA…` key, its secret and a session token, valid for six hours
//! and replaced by a fresh one an hour before they expire (botocore refreshes 15 minutes
//! before expiry, so it always finds the next key waiting). The Query API accepts them with
//! `X-Amz-Security-Token` for as long as the instance keeps the profile, and limits them to
//! the role's actions, read at each call so that a changed role applies at once.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::super::Cloud;
use super::access_keys::{random_string, ID_ALPHABET, SECRET_ALPHABET};
use super::roles::profile_arn;
use crate::db::sessions::SessionCredential;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long an issued credential is accepted.
pub const LIFETIME_SECS: i64 = 6 * 3600;
/// How long before its expiry a credential is replaced by the next.
pub const ROTATE_BEFORE_SECS: i64 = 3600;

/// What the metadata service shows an instance with a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCredentials {
    /// `arn:aws:iam::<account>:instance-profile/<name>`
    pub profile_arn: String,
    /// `AIPA…`, stable for the profile.
    pub profile_id: String,
    /// The current credential (its role named inside).
    pub credential: SessionCredential,
}

/// A caller speaking with temporary credentials: the role it is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    /// The instance the credential was issued to.
    pub instance_id: String,
    /// The role's name.
    pub role: String,
    /// The role's allowed actions, as they are now.
    pub actions: Vec<String>,
}

impl RoleSession {
    /// The ARN STS names an instance's role session by.
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:sts::{account}:assumed-role/{}/{}",
            self.role, self.instance_id
        )
    }
}

/// The verified identity behind an `ASIA…` key: its account, its secret and its session.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    /// The account.
    pub account: String,
    /// The secret SigV4 verifies with.
    pub secret: String,
    /// The role it speaks for.
    pub session: RoleSession,
}

/// IAM's unique-ID form (`AIPA`, `AROA` and 17 base32 letters), derived from `what` so
/// that it stays the same across restarts.
fn unique_id(prefix: &str, what: &str) -> String {
    let digest = Sha256::digest(what.as_bytes());
    let letters: String = digest
        .iter()
        .take(17)
        .map(|b| ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{letters}")
}

/// The unique ID of an account's instance profile (`AIPA…`).
pub fn profile_id(account: &str, profile: &str) -> String {
    unique_id("AIPA", &format!("{account}/{profile}"))
}

/// The unique ID of an account's role (as `UserId` shows it: `AROA…:<session>`).
pub fn role_id(account: &str, role: &str) -> String {
    unique_id("AROA", &format!("role/{account}/{role}"))
}

fn invalid_token() -> ApiError {
    ApiError::new(
        ErrorCode::AuthFailure,
        "AWS was not able to validate the provided access credentials: the security token included in the request is invalid.",
    )
}

impl Cloud {
    /// The current credentials of an instance's profile, issuing the next ones when the
    /// current ones are within [`ROTATE_BEFORE_SECS`] of expiry; `None` without a profile.
    pub fn instance_credentials(
        &self,
        instance_id: &str,
        now: i64,
    ) -> ApiResult<Option<InstanceCredentials>> {
        let Some(assoc) = self.db.iam_association_of(instance_id)? else {
            return Ok(None);
        };
        let Some(profile) = self.db.instance_profile(&assoc.account, &assoc.profile)? else {
            return Ok(None);
        };
        let current = self
            .db
            .newest_session_credential(instance_id, &profile.role, now)?;
        let credential = match current {
            Some(c) if c.expires - now > ROTATE_BEFORE_SECS => c,
            _ => {
                let c = SessionCredential {
                    access_key: format!("ASIA{}", random_string(ID_ALPHABET, 16)?),
                    secret: random_string(SECRET_ALPHABET, 40)?,
                    token: random_string(SECRET_ALPHABET, 256)?,
                    instance_id: instance_id.to_string(),
                    account: assoc.account.clone(),
                    role: profile.role.clone(),
                    issued: now,
                    expires: now + LIFETIME_SECS,
                };
                self.db.insert_session_credential(&c, now)?;
                crate::metrics::inc(&self.metrics.role_credentials_issued_total);
                tracing::info!(
                    instance = instance_id,
                    role = %c.role,
                    key = %c.access_key,
                    "role credentials issued"
                );
                c
            }
        };
        Ok(Some(InstanceCredentials {
            profile_arn: profile_arn(&profile.account, &profile.name),
            profile_id: profile_id(&profile.account, &profile.name),
            credential,
        }))
    }

    /// Verifies a temporary credential as the Query API receives it: the key must exist,
    /// the token match (in constant time), the key be unexpired, and its instance still
    /// have a profile naming the key's role. `None`: not a session key at all.
    pub fn session_caller(
        &self,
        access_key: &str,
        token: Option<&str>,
        now: i64,
    ) -> ApiResult<Option<SessionCaller>> {
        let Some(c) = self.db.session_credential(access_key)? else {
            return Ok(None);
        };
        let token = token.ok_or_else(|| {
            ApiError::new(
                ErrorCode::AuthFailure,
                "AWS was not able to validate the provided access credentials: temporary credentials need X-Amz-Security-Token.",
            )
        })?;
        if !bool::from(token.as_bytes().ct_eq(c.token.as_bytes())) {
            return Err(invalid_token());
        }
        if c.expires <= now {
            return Err(ApiError::new(
                ErrorCode::RequestExpired,
                "Request has expired: the temporary credentials have expired.",
            ));
        }
        let profile = match self.db.iam_association_of(&c.instance_id)? {
            Some(a) if a.account == c.account => {
                self.db.instance_profile(&a.account, &a.profile)?
            }
            _ => None,
        };
        if profile.map(|p| p.role) != Some(c.role.clone()) {
            return Err(invalid_token());
        }
        let role = self
            .db
            .role(&c.account, &c.role)?
            .ok_or_else(invalid_token)?;
        Ok(Some(SessionCaller {
            account: c.account,
            secret: c.secret,
            session: RoleSession {
                instance_id: c.instance_id,
                role: c.role,
                actions: role.actions,
            },
        }))
    }

    /// Revokes an instance's temporary credentials (its profile went away).
    pub fn revoke_instance_credentials(&self, instance_id: &str) {
        match self.db.delete_session_credentials(instance_id) {
            Ok(0) => {}
            Ok(n) => tracing::info!(instance = instance_id, keys = n, "role credentials revoked"),
            Err(e) => {
                tracing::warn!(instance = instance_id, error = %e, "cannot revoke role credentials")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::instances::tests::sample;

    const A: &str = "111111111111";
    const I: &str = "i-0000000000000000a";

    fn setup() -> (tempfile::TempDir, std::sync::Arc<Cloud>) {
        let (dir, cloud) = crate::cloud::test_cloud();
        cloud.db.insert_instance(&sample(I, A)).unwrap();
        cloud
            .create_role(A, "reader", &["ec2:Describe*".to_string()])
            .unwrap();
        let p = cloud.create_instance_profile(A, "web", "reader").unwrap();
        cloud.associate_profile(I, &p).unwrap();
        (dir, cloud)
    }

    #[test]
    fn credentials_are_kept_then_rotated_before_they_expire() {
        let (_d, cloud) = setup();
        assert_eq!(
            cloud
                .instance_credentials("i-0000000000000000b", 100)
                .unwrap(),
            None
        );
        let first = cloud.instance_credentials(I, 100).unwrap().unwrap();
        let c = &first.credential;
        assert!(c.access_key.starts_with("ASIA") && c.access_key.len() == 20);
        assert_eq!(
            (c.role.as_str(), c.expires),
            ("reader", 100 + LIFETIME_SECS)
        );
        assert_eq!(
            first.profile_arn,
            "arn:aws:iam::111111111111:instance-profile/web"
        );
        assert!(first.profile_id.starts_with("AIPA") && first.profile_id.len() == 21);
        // Asked again before the rotation point: the same key.
        let later = 100 + LIFETIME_SECS - ROTATE_BEFORE_SECS - 1;
        let again = cloud.instance_credentials(I, later).unwrap().unwrap();
        assert_eq!(again, first);
        // Within the last hour: a new key, while the old one still verifies.
        let rotated = cloud.instance_credentials(I, later + 2).unwrap().unwrap();
        assert_ne!(rotated.credential.access_key, c.access_key);
        assert_eq!(rotated.profile_id, first.profile_id);
        let old = cloud
            .session_caller(&c.access_key, Some(&c.token), later + 2)
            .unwrap()
            .unwrap();
        assert_eq!(old.session.actions, vec!["ec2:Describe*".to_string()]);
        assert_eq!(
            old.session.arn(A),
            "arn:aws:sts::111111111111:assumed-role/reader/i-0000000000000000a"
        );
    }

    #[test]
    fn a_session_key_needs_its_token_time_and_profile() {
        let (_d, cloud) = setup();
        let c = cloud
            .instance_credentials(I, 100)
            .unwrap()
            .unwrap()
            .credential;
        let check = |token: Option<&str>, now| {
            cloud
                .session_caller(&c.access_key, token, now)
                .map(|s| s.map(|s| s.account))
                .map_err(|e| e.code)
        };
        assert_eq!(check(Some(&c.token), 200), Ok(Some(A.to_string())));
        assert_eq!(check(None, 200), Err(ErrorCode::AuthFailure));
        assert_eq!(check(Some("forged"), 200), Err(ErrorCode::AuthFailure));
        assert_eq!(
            check(Some(&c.token), c.expires),
            Err(ErrorCode::RequestExpired)
        );
        assert_eq!(
            cloud
                .session_caller("AKIAUNKNOWN", None, 200)
                .unwrap()
                .map(|s| s.account),
            None
        );
        // The profile taken away: the key dies with it.
        assert!(cloud.db.delete_iam_association(I).unwrap());
        assert!(cloud
            .session_caller(&c.access_key, Some(&c.token), 200)
            .unwrap()
            .is_none());
        assert_eq!(cloud.instance_credentials(I, 300).unwrap(), None);
    }
}
