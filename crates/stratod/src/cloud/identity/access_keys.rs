//! Access keys: long-term credentials of the EC2 Query API, one account each, as IAM users'
//! keys are. CreateAccessKey returns the secret once; Describe never shows it. An account
//! manages its own keys; the admin account may create, list and delete any account's.

use rand_core::{OsRng, RngCore};

use super::super::Cloud;
use crate::db::access_keys::AccessKey;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Keys an account may hold at once (IAM's limit per user).
pub const KEYS_PER_ACCOUNT: u32 = 2;

/// An access key as Describe shows it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `AKIA…`
    pub id: String,
    /// The account it speaks for.
    pub account: String,
    /// Unix seconds.
    pub created: i64,
}

/// What the authenticator may learn of a key: the account and the secret to verify with.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The account the key speaks for.
    pub account: String,
    /// The secret access key.
    pub secret: String,
}

impl From<&AccessKey> for KeyInfo {
    fn from(k: &AccessKey) -> KeyInfo {
        KeyInfo {
            id: k.id.clone(),
            account: k.owner.clone(),
            created: k.created,
        }
    }
}

/// Base32 (RFC 4648) letters, as AWS key IDs use.
pub(super) const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The secret's alphabet: base64's.
pub(super) const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn random_string(alphabet: &[u8], len: usize) -> ApiResult<String> {
    let mut buf = vec![0u8; len];
    OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| ApiError::internal(format!("The kernel's random source failed: {e}")))?;
    // Both alphabets have a power-of-two size, so the modulo keeps every letter as likely.
    Ok(buf
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

/// Checks an access key ID's form: `AKIA` and 16 base32 letters.
pub fn check_id(id: &str) -> ApiResult<()> {
    let ok = id.len() == 20
        && id.starts_with("AKIA")
        && id[4..].bytes().all(|b| ID_ALPHABET.contains(&b));
    if ok {
        Ok(())
    } else {
        let shown: String = id.chars().take(64).collect();
        Err(ApiError::new(
            ErrorCode::InvalidAccessKeyIdMalformed,
            format!("Invalid access key ID: \"{shown}\" (expecting \"AKIA...\")"),
        ))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidAccessKeyIdNotFound,
        format!("The access key ID '{id}' does not exist"),
    )
}

fn check_account(account: &str) -> ApiResult<()> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "The account ID '{account}' is not a 12-digit account ID."
        )))
    }
}

impl Cloud {
    fn is_admin(&self, account: &str) -> bool {
        account == self.cfg.admin_account
    }

    /// The account a caller acts on: its own, or (for the admin only) the one it names.
    fn key_account(&self, caller: &str, named: &str) -> ApiResult<String> {
        if named.is_empty() || named == caller {
            return Ok(caller.to_string());
        }
        check_account(named)?;
        if !self.is_admin(caller) {
            return Err(ApiError::new(
                ErrorCode::UnauthorizedOperation,
                "Only the admin account may manage another account's access keys.",
            ));
        }
        Ok(named.to_string())
    }

    /// Creates an access key for the caller, or for `account` when the admin names one;
    /// returns it with its secret, which is never shown again.
    pub fn create_access_key(&self, caller: &str, account: &str) -> ApiResult<AccessKey> {
        let owner = self.key_account(caller, account)?;
        let key = AccessKey {
            id: format!("AKIA{}", random_string(ID_ALPHABET, 16)?),
            owner,
            secret: random_string(SECRET_ALPHABET, 40)?,
            created: crate::db::now_s(),
        };
        if !self.db.insert_access_key(&key, KEYS_PER_ACCOUNT)? {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "Cannot exceed quota for AccessKeysPerUser: {KEYS_PER_ACCOUNT} (delete one first)."
                ),
            ));
        }
        tracing::info!(key = %key.id, account = %key.owner, "access key created");
        Ok(key)
    }

    /// The caller's access keys; the admin sees the named account's, or every account's
    /// with `all`.
    pub fn describe_access_keys(
        &self,
        caller: &str,
        account: &str,
        all: bool,
    ) -> ApiResult<Vec<KeyInfo>> {
        let keys = if all {
            if !self.is_admin(caller) {
                return Err(ApiError::new(
                    ErrorCode::UnauthorizedOperation,
                    "Only the admin account may list every account's access keys.",
                ));
            }
            self.db.access_keys(None)?
        } else {
            self.db
                .access_keys(Some(&self.key_account(caller, account)?))?
        };
        Ok(keys.iter().map(KeyInfo::from).collect())
    }

    /// Deletes one of the caller's access keys (the admin: anyone's).
    pub fn delete_access_key(&self, caller: &str, id: &str) -> ApiResult<()> {
        check_id(id)?;
        match self.db.access_key(id)? {
            Some(k) if k.owner == caller || self.is_admin(caller) => {
                self.db.delete_access_key(id)?;
                tracing::info!(key = %id, account = %k.owner, "access key deleted");
                Ok(())
            }
            _ => Err(not_found(id)),
        }
    }

    /// The account and secret of an access key, for the Query API's authenticator; `None`
    /// for a key that does not exist.
    pub fn access_key_credential(&self, id: &str) -> ApiResult<Option<Credential>> {
        Ok(self.db.access_key(id)?.map(|k| Credential {
            account: k.owner,
            secret: k.secret,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_belong_to_their_account_and_the_admin_manages_all() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let admin = cloud.cfg.admin_account.clone();
        let user = "222222222222";
        let k = cloud.create_access_key(user, "").unwrap();
        check_id(&k.id).unwrap();
        assert_eq!(k.secret.len(), 40);
        assert_eq!(k.owner, user);
        let c = cloud.access_key_credential(&k.id).unwrap().unwrap();
        assert_eq!(
            (c.account.as_str(), c.secret.as_str()),
            (user, k.secret.as_str())
        );
        // Another account may neither create for, list nor delete the user's keys.
        let other = "333333333333";
        assert_eq!(
            cloud.create_access_key(other, user).unwrap_err().code,
            ErrorCode::UnauthorizedOperation
        );
        assert!(cloud
            .describe_access_keys(other, "", false)
            .unwrap()
            .is_empty());
        assert_eq!(
            cloud
                .describe_access_keys(other, "", true)
                .unwrap_err()
                .code,
            ErrorCode::UnauthorizedOperation
        );
        assert_eq!(
            cloud.delete_access_key(other, &k.id).unwrap_err().code,
            ErrorCode::InvalidAccessKeyIdNotFound
        );
        // The admin may.
        let k2 = cloud.create_access_key(&admin, user).unwrap();
        assert_eq!(k2.owner, user);
        assert_eq!(
            cloud.create_access_key(&admin, user).unwrap_err().code,
            ErrorCode::LimitExceeded
        );
        let listed = cloud.describe_access_keys(&admin, user, false).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            cloud.describe_access_keys(&admin, "", true).unwrap().len(),
            2
        );
        cloud.delete_access_key(&admin, &k2.id).unwrap();
        cloud.delete_access_key(user, &k.id).unwrap();
        assert!(cloud.access_key_credential(&k.id).unwrap().is_none());
        assert_eq!(
            cloud.delete_access_key(user, "nope").unwrap_err().code,
            ErrorCode::InvalidAccessKeyIdMalformed
        );
        assert_eq!(
            cloud.create_access_key(&admin, "12").unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
    }
}
